package app

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// inventory is memStore as a ports.KeyInventory, derived from its
// CountValuesByKey (the PostgreSQL queries are tested in tests/keys).
type inventory struct {
	*memStore
	asked [][]domain.KeyID // CountValuesOfKeys calls
}

var _ ports.KeyInventory = (*inventory)(nil)

func (s *inventory) KeyIDsInUse(ctx context.Context) ([]domain.KeyID, error) {
	usage, err := s.CountValuesByKey(ctx)
	ids := make([]domain.KeyID, len(usage))
	for i, u := range usage {
		ids[i] = u.KeyID
	}
	return ids, err
}

func (s *inventory) CountValuesOfKeys(ctx context.Context, ids []domain.KeyID) ([]domain.KeyUsage, error) {
	s.asked = append(s.asked, ids)
	usage, err := s.CountValuesByKey(ctx)
	return slices.DeleteFunc(usage, func(u domain.KeyUsage) bool { return !slices.Contains(ids, u.KeyID) }), err
}

// TestCheckKeyring: a keyring lacking keys that seal stored values is
// reported with each missing id and its count of values (and only then
// are values counted); one holding every such key, or more, passes.
func TestCheckKeyring(t *testing.T) {
	t.Parallel()
	store := &inventory{memStore: newMemStore()}
	for _, put := range []struct {
		key     domain.KeyID
		user    domain.UserID
		refresh string
	}{{"k1", "alice", "r"}, {"k1", "bob", ""}, {"k2", "carol", "r"}, {"k3", "dave", ""}} {
		tok := domain.AuthTokens{User: put.user, Provider: "github", AccessToken: domain.NewSecret("a"), RefreshToken: domain.NewSecret(put.refresh)}
		if err := store.putAuth(newFakeKeyring(put.key), tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.putOffline(newFakeKeyring("k3"), domain.OfflineToken{User: "erin", Token: domain.NewSecret("o")}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for _, keys := range [][]domain.KeyID{{"k1", "k2", "k3"}, {"k9", "k3", "k2", "k1"}} {
		if err := CheckKeyring(ctx, store, keys); err != nil {
			t.Errorf("keyring %v holding every key in use: %v", keys, err)
		}
	}
	if len(store.asked) != 0 {
		t.Errorf("values were counted although no key is missing: %v", store.asked)
	}

	err := CheckKeyring(ctx, store, []domain.KeyID{"k9", "k2"})
	missing, ok := errors.AsType[*MissingKeysError](err)
	if !ok {
		t.Fatalf("keyring lacking k1 and k3: err = %v, want *MissingKeysError", err)
	}
	want := []domain.KeyUsage{{KeyID: "k1", Values: 3}, {KeyID: "k3", Values: 2}}
	if !slices.Equal(missing.Missing, want) {
		t.Errorf("missing = %v, want %v", missing.Missing, want)
	}
	for _, s := range []string{"lacks 2 keys", "key k1 seals 3 stored values", "key k3 seals 2 stored values", "add the missing keys"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if got := store.asked; len(got) != 1 || !slices.Equal(got[0], []domain.KeyID{"k1", "k3"}) {
		t.Errorf("counted the values of %v, want only the missing keys [k1 k3]", got)
	}
}

// TestCheckKeyringQuotesStrangeIDs: a key id read from a corrupt column
// cannot forge a log line through the error.
func TestCheckKeyringQuotesStrangeIDs(t *testing.T) {
	t.Parallel()
	err := (&MissingKeysError{Missing: []domain.KeyUsage{{KeyID: "x\nlevel=ERROR", Values: 1}}}).Error()
	if strings.Contains(err, "\n") || !strings.Contains(err, `key "x\nlevel=ERROR" seals 1 stored values`) {
		t.Errorf("error = %q, want the id quoted", err)
	}
}

// registry is an in-memory ports.KeyringRegistry with a settable clock.
type registry struct {
	mu   sync.Mutex
	now  time.Time
	rows map[string]domain.InstanceKeyring
	err  error
}

var _ ports.KeyringRegistry = (*registry)(nil)

func newRegistry() *registry {
	return &registry{now: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC), rows: map[string]domain.InstanceKeyring{}}
}

func (r *registry) RecordKeyring(_ context.Context, k domain.InstanceKeyring, ttl time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	k.HeartbeatAt, k.ExpiresAt = r.now, r.now.Add(ttl)
	r.rows[k.Instance] = k
	return nil
}

func (r *registry) ForgetKeyring(_ context.Context, instance string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.rows, instance)
	return nil
}

func (r *registry) LiveKeyrings(context.Context) ([]domain.InstanceKeyring, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []domain.InstanceKeyring
	for _, k := range r.rows {
		if k.ExpiresAt.After(r.now) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b domain.InstanceKeyring) int { return strings.Compare(a.Instance, b.Instance) })
	return out, r.err
}

// TestKeyringHeartbeat records the ring as it is at each beat (a reload
// shows at the next one), lives KeyringLiveBeats intervals, and deletes its
// record on Stop.
func TestKeyringHeartbeat(t *testing.T) {
	t.Parallel()
	reg := newRegistry()
	ring := newFakeKeyring("k1", "k0")
	h := NewKeyringHeartbeat(KeyringHeartbeatConfig{Instance: "inst-a", Interval: time.Hour}, nil, ring, reg)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	live, _ := reg.LiveKeyrings(context.Background())
	if len(live) != 1 || live[0].Instance != "inst-a" || live[0].Primary != "k1" || !slices.Equal(live[0].Keys, []domain.KeyID{"k1", "k0"}) ||
		live[0].ExpiresAt.Sub(live[0].HeartbeatAt) != KeyringLiveBeats*time.Hour {
		t.Fatalf("after Start: %+v", live)
	}
	ring.keys = []domain.KeyID{"k2", "k1"}
	if err := h.Beat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if live, _ = reg.LiveKeyrings(context.Background()); live[0].Primary != "k2" {
		t.Errorf("after a reload and a beat: primary %s, want k2", live[0].Primary)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if live, _ = reg.LiveKeyrings(context.Background()); len(live) != 0 {
		t.Errorf("after Stop: %+v, want no record", live)
	}
}

// TestKeyringFleet: retiring a key is refused while a live instance seals
// with it (naming it), allowed once its record expired, and instances
// holding it only as an older key are named but do not stop it; rotate's
// warning appears exactly when the primaries differ.
func TestKeyringFleet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := newRegistry()
	fleet := NewKeyringFleet(reg)
	beat := func(name string, keys ...domain.KeyID) {
		if err := reg.RecordKeyring(ctx, domain.InstanceKeyring{Instance: name, Primary: keys[0], Keys: keys}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	beat("a", "new", "old")
	beat("b", "old")

	if _, err := fleet.CheckRetire(ctx, "old"); !errors.Is(err, ErrKeyInUse) || !strings.Contains(err.Error(), "primary key of 1 live instances: b (last heartbeat 2026-11-30T10:00:00Z)") {
		t.Errorf("retire old while b seals with it: %v", err)
	}
	warning, err := fleet.PrimaryWarning(ctx, "new")
	if err != nil || !strings.Contains(warning, "a seals with new; b seals with old") {
		t.Errorf("rotate warning with a on new, b on old = %q, %v", warning, err)
	}

	reg.now = reg.now.Add(30 * time.Second)
	beat("a", "new", "old") // b stopped beating
	reg.now = reg.now.Add(31 * time.Second)
	holders, err := fleet.CheckRetire(ctx, "old")
	if err != nil || !slices.Equal(holders, []string{"a"}) {
		t.Errorf("retire old once b's record expired = %v, %v; want allowed, naming a (older key)", holders, err)
	}
	if warning, err := fleet.PrimaryWarning(ctx, "new"); err != nil || warning != "" {
		t.Errorf("rotate warning with every live instance on new = %q, %v", warning, err)
	}
	if warning, _ := fleet.PrimaryWarning(ctx, "newer"); !strings.Contains(warning, "primary key newer (a seals with new)") {
		t.Errorf("rotate warning when the command's own primary differs = %q", warning)
	}

	reg.err = errors.New("database down")
	if _, err := fleet.CheckRetire(ctx, "old"); err == nil {
		t.Error("retire with the registry unreadable: allowed, want refused")
	}
}

// switchingOnce changes its primary once, after the first encryption, as
// a keyring reloaded between the two values of one row would.
type switchingOnce struct {
	*fakeKeyring
	switched bool
}

func (s *switchingOnce) Seal(msg []byte) (domain.Ciphertext, error) {
	c, err := s.fakeKeyring.Seal(msg)
	if !s.switched {
		s.switched = true
		s.keys[0], s.keys[1] = s.keys[1], s.keys[0]
	}
	return c, err
}

// TestSealAuthTokensAcrossAReload: a reload between the two values of a row
// seals both again under the new primary instead of failing the write.
func TestSealAuthTokensAcrossAReload(t *testing.T) {
	t.Parallel()
	ring := &switchingOnce{fakeKeyring: newFakeKeyring("k1", "k2")}
	sealed, err := sealAuthTokens(ring, EnvelopeBinary, domain.AuthTokens{User: "u", Provider: "github",
		AccessToken: domain.NewSecret("a"), RefreshToken: domain.NewSecret("r")})
	if err != nil || sealed.KeyID != "k2" {
		t.Fatalf("sealAuthTokens across one reload = key %s, %v; want both under k2", sealed.KeyID, err)
	}
	if _, _, err := unsealAuthTokens(newFakeKeyring("k2"), EnvelopeBinary, sealed); err != nil {
		t.Errorf("the row does not open with k2 alone: %v", err)
	}
}
