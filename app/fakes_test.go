package app

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// fakeKeyring is a ports.Keyring that "encrypts" by copying: enough to test
// what app does with keys, places and envelopes, with no crypto adapter.
// It opens only values whose key id it holds, as a real keyring does, and
// hands out copies, as a real one does (callers clear what Open returns).
type fakeKeyring struct {
	keys []domain.KeyID // primary first
}

var _ ports.Keyring = (*fakeKeyring)(nil)

func newFakeKeyring(keys ...domain.KeyID) *fakeKeyring { return &fakeKeyring{keys: keys} }

func (f *fakeKeyring) Seal(msg []byte) (domain.Ciphertext, error) {
	return domain.Ciphertext{KeyID: f.keys[0], Data: bytes.Clone(msg)}, nil
}

func (f *fakeKeyring) Open(c domain.Ciphertext) ([]byte, error) {
	if !slices.Contains(f.keys, c.KeyID) {
		return nil, fmt.Errorf("%w: unknown key id %s", domain.ErrDecrypt, c.KeyID)
	}
	return bytes.Clone(c.Data), nil
}

func (f *fakeKeyring) PrimaryKeyID() domain.KeyID { return f.keys[0] }
func (f *fakeKeyring) Keys() []domain.KeyID       { return slices.Clone(f.keys) }

// memStore is an in-memory ports.ReencryptionRepository (with the tokens
// events keep for revocation as a plain list) and
// ports.ImportRepository with PostgreSQL's row rules: ids and versions set
// by storage, a version bump on every update, conditional writes, and
// batch methods that fail once ctx is done.
type memStore struct {
	mu      sync.Mutex
	nextID  int64
	auth    []domain.SealedAuthTokens // in ID order
	offline map[domain.UserID]domain.SealedOfflineToken
	kept    []domain.KeptTokens // in event order; Read unset
	// onKeptStore, when set, runs (store lock held) before kept tokens
	// re-encrypted are stored: what the delivery worker does meanwhile.
	onKeptStore func()
	// busy rows refuse re-encrypted writes, as if changed or leased each
	// time; by user (and provider).
	busy map[string]bool
	// events are the audit events the batch writes stored; auditDown, when
	// set, refuses them (and so the batch).
	events    []domain.AuditEvent
	auditDown error
	// envelope is the format putAuth, putOffline and putKept seal in.
	envelope EnvelopeFormat
}

var (
	_ ports.ReencryptionRepository = (*memStore)(nil)
	_ ports.ImportRepository       = (*memStore)(nil)
)

func newMemStore() *memStore {
	return &memStore{offline: map[domain.UserID]domain.SealedOfflineToken{}, busy: map[string]bool{}}
}

func rowKey(u domain.UserID, p domain.Provider) string { return string(u) + "\x00" + string(p) }

func (m *memStore) CountValuesByKey(ctx context.Context) ([]domain.KeyUsage, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	counts := map[domain.KeyID]int64{}
	for _, r := range m.auth {
		counts[r.KeyID]++
		if r.RefreshToken != nil {
			counts[r.KeyID]++
		}
	}
	for _, r := range m.offline {
		counts[r.KeyID]++
	}
	for _, r := range m.kept {
		counts[r.Tokens.KeyID]++
		if r.Tokens.RefreshToken != nil {
			counts[r.Tokens.KeyID]++
		}
	}
	var out []domain.KeyUsage
	for id, n := range counts {
		out = append(out, domain.KeyUsage{KeyID: id, Values: n})
	}
	slices.SortFunc(out, func(a, b domain.KeyUsage) int { return cmp.Compare(a.KeyID, b.KeyID) })
	return out, nil
}

func (m *memStore) AuthTokensByKey(ctx context.Context, key domain.KeyID, afterID int64, limit int) ([]domain.SealedAuthTokens, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []domain.SealedAuthTokens
	for _, r := range m.auth {
		if r.KeyID == key && r.ID > afterID && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) OfflineTokensByKey(ctx context.Context, key domain.KeyID, afterUser domain.UserID, limit int) ([]domain.SealedOfflineToken, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []domain.SealedOfflineToken
	for _, r := range m.offline {
		if r.KeyID == key && r.User > afterUser {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b domain.SealedOfflineToken) int { return cmp.Compare(a.User, b.User) })
	return out[:min(limit, len(out))], nil
}

func (m *memStore) StoreReencryptedAuthTokens(ctx context.Context, rows []domain.SealedAuthTokens, audit ...domain.AuditEvent) ([]bool, error) {
	return eachRow(ctx, m, rows, audit, func(t domain.SealedAuthTokens) bool {
		j := slices.IndexFunc(m.auth, func(r domain.SealedAuthTokens) bool { return r.ID == t.ID })
		if j < 0 || m.auth[j].Version != t.Version || m.auth[j].Refresh.Leased(time.Now()) || m.busy[rowKey(t.User, t.Provider)] {
			return false
		}
		cur := &m.auth[j]
		cur.KeyID, cur.AccessToken, cur.RefreshToken = t.KeyID, t.AccessToken, t.RefreshToken
		cur.Version++
		return true
	})
}

func (m *memStore) StoreReencryptedOfflineTokens(ctx context.Context, rows []domain.SealedOfflineToken, audit ...domain.AuditEvent) ([]bool, error) {
	return eachRow(ctx, m, rows, audit, func(t domain.SealedOfflineToken) bool {
		cur, ok := m.offline[t.User]
		if !ok || cur.Version != t.Version || !cur.CreatedAt.Equal(t.CreatedAt) || m.busy[rowKey(t.User, "")] {
			return false
		}
		cur.KeyID, cur.Token = t.KeyID, t.Token
		cur.Version++
		m.offline[t.User] = cur
		return true
	})
}

func (m *memStore) KeptTokensByKey(ctx context.Context, key domain.KeyID, afterEvent int64, limit int) ([]domain.KeptTokens, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []domain.KeptTokens
	for _, r := range m.kept {
		if r.Tokens.KeyID == key && r.Event > afterEvent && len(out) < limit {
			r.Read = r.Tokens
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memStore) StoreReencryptedKeptTokens(ctx context.Context, rows []domain.KeptTokens, audit ...domain.AuditEvent) ([]bool, error) {
	if m.onKeptStore != nil {
		m.mu.Lock()
		m.onKeptStore()
		m.mu.Unlock()
	}
	return eachRow(ctx, m, rows, audit, func(t domain.KeptTokens) bool {
		j := slices.IndexFunc(m.kept, func(r domain.KeptTokens) bool { return r.Event == t.Event })
		if j < 0 || !sameSealed(m.kept[j].Tokens, t.Read) {
			return false
		}
		m.kept[j].Tokens = t.Tokens
		return true
	})
}

func sameSealed(a, b domain.SealedRevocation) bool {
	return a.KeyID == b.KeyID && bytes.Equal(a.AccessToken, b.AccessToken) && bytes.Equal(a.RefreshToken, b.RefreshToken) &&
		(a.RefreshToken == nil) == (b.RefreshToken == nil)
}

// forgetKept clears event's kept tokens, as the delivery worker does once
// they are revoked. The store's lock is held.
func (m *memStore) forgetKept(event int64) {
	m.kept = slices.DeleteFunc(m.kept, func(r domain.KeptTokens) bool { return r.Event == event })
}

// putKept keeps t sealed by c as a delete with revocation would: sealed
// at its auth_tokens places, in a new event. It returns the event's id.
func (m *memStore) putKept(c ports.TokenCrypter, t domain.AuthTokens) (int64, error) {
	sealed, err := sealAuthTokens(c, m.envelope, t)
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	m.kept = append(m.kept, domain.KeptTokens{Event: m.nextID, User: t.User, Provider: t.Provider,
		Tokens: domain.SealedRevocation{KeyID: sealed.KeyID, AccessToken: sealed.AccessToken, RefreshToken: sealed.RefreshToken}})
	return m.nextID, nil
}

func (m *memStore) InsertAuthTokensBatch(ctx context.Context, rows []domain.SealedAuthTokens, audit ...domain.AuditEvent) ([]bool, error) {
	return eachRow(ctx, m, rows, audit, func(t domain.SealedAuthTokens) bool {
		if m.findAuth(t.User, t.Provider) >= 0 {
			return false
		}
		m.nextID++
		t.ID, t.Version, t.CreatedAt = m.nextID, 1, time.Now()
		m.auth = append(m.auth, t)
		return true
	})
}

func (m *memStore) InsertOfflineTokensBatch(ctx context.Context, rows []domain.SealedOfflineToken, audit ...domain.AuditEvent) ([]bool, error) {
	return eachRow(ctx, m, rows, audit, func(t domain.SealedOfflineToken) bool {
		if _, ok := m.offline[t.User]; ok {
			return false
		}
		t.Version, t.CreatedAt = 1, time.Now()
		m.offline[t.User] = t
		return true
	})
}

// eachRow applies write to every row under the store's lock, as one
// transaction with the audit events (each with Count the rows written),
// unless ctx is done or the audit store is down; it reports which rows
// write changed.
func eachRow[T any](ctx context.Context, m *memStore, rows []T, audit []domain.AuditEvent, write func(T) bool) ([]bool, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if len(audit) > 0 && m.auditDown != nil {
		return nil, fmt.Errorf("%w: %w: %w", domain.ErrStorageUnavailable, domain.ErrAuditUnavailable, m.auditDown)
	}
	done := make([]bool, len(rows))
	var n int64
	for i, row := range rows {
		done[i] = write(row)
		if done[i] {
			n++
		}
	}
	for _, e := range audit {
		e.Count = n
		m.events = append(m.events, e)
	}
	return done, nil
}

func (m *memStore) GetAuthTokens(_ context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.findAuth(user, provider); i >= 0 {
		return m.auth[i], nil
	}
	return domain.SealedAuthTokens{}, domain.ErrNotFound
}

func (m *memStore) GetOfflineToken(_ context.Context, user domain.UserID) (domain.SealedOfflineToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.offline[user]; ok {
		return t, nil
	}
	return domain.SealedOfflineToken{}, domain.ErrNotFound
}

// lock takes the store's lock unless ctx is done, as a query would fail.
func (m *memStore) lock(ctx context.Context) (unlock func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	return m.mu.Unlock, nil
}

func (m *memStore) findAuth(user domain.UserID, provider domain.Provider) int {
	return slices.IndexFunc(m.auth, func(r domain.SealedAuthTokens) bool { return r.User == user && r.Provider == provider })
}

// putAuth stores t sealed by c, as the service would.
func (m *memStore) putAuth(c ports.TokenCrypter, t domain.AuthTokens) error {
	sealed, err := sealAuthTokens(c, m.envelope, t)
	if err != nil {
		return err
	}
	_, err = m.InsertAuthTokensBatch(context.Background(), []domain.SealedAuthTokens{sealed})
	return err
}

// putOffline stores t sealed by c.
func (m *memStore) putOffline(c ports.TokenCrypter, t domain.OfflineToken) error {
	sealed, err := sealOfflineToken(c, m.envelope, t)
	if err != nil {
		return err
	}
	_, err = m.InsertOfflineTokensBatch(context.Background(), []domain.SealedOfflineToken{sealed})
	return err
}
