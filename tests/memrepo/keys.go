package memrepo

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var (
	_ ports.ReencryptionRepository = (*Repository)(nil)
	_ ports.KeyInventory           = (*Repository)(nil)
)

// CountValuesByKey implements ports.ReencryptionRepository: an auth
// tokens row seals one or two values, an offline token one, an event's
// kept tokens (outbox.sealed) one or two.
func (r *Repository) CountValuesByKey(ctx context.Context) ([]domain.KeyUsage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := r.valuesByKey()
	out := make([]domain.KeyUsage, 0, len(counts))
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, domain.KeyUsage{KeyID: id, Values: counts[id]})
	}
	return out, nil
}

// valuesByKey counts every stored value by key. r.mu is held.
func (r *Repository) valuesByKey() map[domain.KeyID]int64 {
	counts := map[domain.KeyID]int64{}
	for _, row := range r.auth {
		counts[row.KeyID]++
		if row.RefreshToken != nil {
			counts[row.KeyID]++
		}
	}
	for _, row := range r.offline {
		counts[row.KeyID]++
	}
	for _, kept := range r.outbox.sealed {
		counts[kept.KeyID]++
		if kept.RefreshToken != nil {
			counts[kept.KeyID]++
		}
	}
	return counts
}

// KeyIDsInUse implements ports.KeyInventory.
func (r *Repository) KeyIDsInUse(ctx context.Context) ([]domain.KeyID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.valuesByKey())), nil
}

// CountValuesOfKeys implements ports.KeyInventory.
func (r *Repository) CountValuesOfKeys(ctx context.Context, ids []domain.KeyID) ([]domain.KeyUsage, error) {
	usage, err := r.CountValuesByKey(ctx)
	return slices.DeleteFunc(usage, func(u domain.KeyUsage) bool { return !slices.Contains(ids, u.KeyID) }), err
}

// AuthTokensByKey implements ports.ReencryptionRepository.
func (r *Repository) AuthTokensByKey(ctx context.Context, key domain.KeyID, afterID int64, limit int) ([]domain.SealedAuthTokens, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []domain.SealedAuthTokens{}
	for _, row := range r.auth {
		if row.KeyID == key && row.ID > afterID {
			out = append(out, clone(row))
		}
	}
	slices.SortFunc(out, func(a, b domain.SealedAuthTokens) int { return cmp.Compare(a.ID, b.ID) })
	return out[:min(max(limit, 0), 10_000, len(out))], nil
}

// OfflineTokensByKey implements ports.ReencryptionRepository.
func (r *Repository) OfflineTokensByKey(ctx context.Context, key domain.KeyID, afterUser domain.UserID, limit int) ([]domain.SealedOfflineToken, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []domain.SealedOfflineToken{}
	for _, row := range r.offline {
		if row.KeyID == key && row.User > afterUser {
			row.Token = bytes.Clone(row.Token)
			out = append(out, row)
		}
	}
	slices.SortFunc(out, func(a, b domain.SealedOfflineToken) int { return cmp.Compare(a.User, b.User) })
	return out[:min(max(limit, 0), 10_000, len(out))], nil
}

// KeptTokensByKey implements ports.ReencryptionRepository.
func (r *Repository) KeptTokensByKey(ctx context.Context, key domain.KeyID, afterEvent int64, limit int) ([]domain.KeptTokens, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []domain.KeptTokens{}
	for _, e := range r.outbox.events { // in id (Seq) order
		kept, ok := r.outbox.sealed[e.Cursor.Seq]
		if !ok || kept.KeyID != key || e.Cursor.Seq <= afterEvent {
			continue
		}
		if len(out) >= min(max(limit, 0), 10_000) {
			break
		}
		out = append(out, domain.KeptTokens{Event: e.Cursor.Seq, User: e.User, Provider: e.Provider,
			Tokens: cloneSealed(kept), Read: cloneSealed(kept)})
	}
	return out, nil
}

func cloneSealed(s domain.SealedRevocation) domain.SealedRevocation {
	s.AccessToken, s.RefreshToken = bytes.Clone(s.AccessToken), bytes.Clone(s.RefreshToken)
	return s
}

// StoreReencryptedAuthTokens implements ports.ReencryptionRepository. It
// takes the rows' locks (in key order) as the PostgreSQL adapter's
// UPDATEs do, so an UpdateAuthTokens in flight finishes first and bumps
// the version.
func (r *Repository) StoreReencryptedAuthTokens(ctx context.Context, rows []domain.SealedAuthTokens, audit ...domain.AuditEvent) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	keys := make([]key, 0, len(rows))
	for _, t := range rows {
		keys = append(keys, key{t.User, t.Provider})
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.provider, b.provider)) })
	for _, k := range slices.Compact(keys) {
		unlock, err := r.lock(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("store re-encrypted values: %w", err)
		}
		defer unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	return r.storeEach(len(rows), audit, func(i int) func() {
		t := rows[i]
		k := key{t.User, t.Provider}
		cur, ok := r.auth[k]
		if !ok || cur.ID != t.ID || cur.Version != t.Version || cur.Refresh.Leased(now) {
			return nil
		}
		return func() {
			cur.KeyID, cur.AccessToken, cur.RefreshToken = t.KeyID, bytes.Clone(t.AccessToken), bytes.Clone(t.RefreshToken)
			cur.Version, cur.CreatedAt, cur.UpdatedAt = r.stamp(true, cur.Version, cur.CreatedAt)
			r.setAuth(k, cur)
		}
	})
}

// StoreReencryptedOfflineTokens implements ports.ReencryptionRepository.
func (r *Repository) StoreReencryptedOfflineTokens(ctx context.Context, rows []domain.SealedOfflineToken, audit ...domain.AuditEvent) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.storeEach(len(rows), audit, func(i int) func() {
		t := rows[i]
		cur, ok := r.offline[t.User]
		if !ok || cur.Version != t.Version || !cur.CreatedAt.Equal(t.CreatedAt) {
			return nil
		}
		return func() {
			cur.KeyID, cur.Token = t.KeyID, bytes.Clone(t.Token)
			cur.Version, cur.CreatedAt, cur.UpdatedAt = r.stamp(true, cur.Version, cur.CreatedAt)
			r.setOffline(t.User, cur)
		}
	})
}

// StoreReencryptedKeptTokens implements ports.ReencryptionRepository.
func (r *Repository) StoreReencryptedKeptTokens(ctx context.Context, rows []domain.KeptTokens, audit ...domain.AuditEvent) ([]bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.storeEach(len(rows), audit, func(i int) func() {
		t := rows[i]
		cur, ok := r.outbox.sealed[t.Event]
		if !ok || cur.KeyID != t.Read.KeyID || !bytes.Equal(cur.AccessToken, t.Read.AccessToken) ||
			!bytes.Equal(cur.RefreshToken, t.Read.RefreshToken) || (cur.RefreshToken == nil) != (t.Read.RefreshToken == nil) {
			return nil
		}
		return func() { r.outbox.sealed[t.Event] = cloneSealed(t.Tokens) }
	})
}

// storeEach is one batch of re-encrypted rows as one transaction: check(i)
// returns how to write row i, or nil when the row changed since it was
// read; the audit events (Count: the rows written) are recorded first,
// and a log that fails them writes nothing. r.mu is held.
func (r *Repository) storeEach(n int, audit []domain.AuditEvent, check func(i int) func()) ([]bool, error) {
	done := make([]bool, n)
	writes := make([]func(), 0, n)
	for i := range n {
		if w := check(i); w != nil {
			done[i] = true
			writes = append(writes, w)
		}
	}
	events := make([]domain.AuditEvent, len(audit))
	for i, e := range audit {
		events[i] = e
		events[i].Count = int64(len(writes))
	}
	if err := r.audit.record(events); err != nil {
		return nil, fmt.Errorf("store re-encrypted values: %w", err)
	}
	for _, w := range writes {
		w()
	}
	return done, nil
}
