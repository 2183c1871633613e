// Package repotest is the contract every ports.TokenRepository (and the
// ports.RefreshQueue, DeliveryQueue, ReencryptionRepository and
// KeyInventory the same storage serves) must meet, written once and
// run against each adapter: PostgreSQL (tests/storage) and the in-memory
// one the app unit tests use (tests/memrepo). It checks
// behaviour through the port only; adapter-specific checks (raw columns,
// locks) live beside the adapter's own test.
package repotest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Repository is storage as both the service and the worker see it, with
// the audit trail its writes record into.
type Repository interface {
	ports.TokenRepository
	ports.RefreshQueue
	ports.AuditReader
	ports.EventFeed
	ports.DeliveryQueue
	ports.DeliveryAdmin
	ports.ReencryptionRepository
	ports.KeyInventory
}

// Setup returns a repository backed by fresh, empty storage for t.
type Setup func(t *testing.T) Repository

// Run runs the contract against the repositories setup returns.
func Run(t *testing.T, setup Setup) {
	tests := []struct {
		name string
		fn   func(t *testing.T, repo Repository)
	}{
		{"PutThenGet", testPutThenGet},
		{"PutReplacesEveryField", testPutReplaces},
		{"GetMissing", testGetMissing},
		{"Delete", testDelete},
		{"ListProviders", testListProviders},
		{"UpdateStoresWhatFnReturns", testUpdateStores},
		{"UpdateNilLeavesRow", testUpdateNil},
		{"UpdateErrorRollsBack", testUpdateError},
		{"UpdatePanicRollsBack", testUpdatePanic},
		{"UpdateMissing", testUpdateMissing},
		{"UpdateStoresEventsWithRow", testUpdateEvents},
		{"ConcurrentPutsLeaveOneCompleteRow", testConcurrentPuts},
		{"OfflineToken", testOfflineToken},
		{"CanceledContext", testCanceledContext},
		{"ClaimDueRefreshes", testClaimDue},
		{"ClaimOrderAndLimit", testClaimOrderAndLimit},
		{"ClaimSkipsCoordinatedRows", testClaimSkipsCoordinated},
		{"ConcurrentClaimsAreDisjoint", testConcurrentClaims},
		{"MarkLapsedLeases", testMarkLapsedLeases},
		{"EventsOfWrites", testEventsOfWrites},
		{"EventsOfLapsedLeases", testEventsOfLapsedLeases},
		{"EventFilter", testEventFilter},
		{"FanOut", testFanOut},
		{"ClaimOrder", testClaimOrder},
		{"LapsedDeliveryLease", testLapsedLease},
		{"ConcurrentDeliveryClaims", testConcurrentDeliveryClaims},
		{"Redeliver", testRedeliver},
		{"TargetGone", testTargetGone},
		{"RevocationDelivery", testRevocationDelivery},
		{"KeptTokensCountedPerKey", testKeptTokensCounted},
		{"ReencryptKeptTokens", testReencryptKeptTokens},
		{"ReencryptRows", testReencryptRows},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, setup(t))
		})
	}
}

// sampleNow is fixed so that two Sample calls with the same tag are equal.
var sampleNow = time.Now().UTC().Truncate(time.Second)

// Sample returns sealed tokens for user and provider with recognisable
// bytes; calls with equal arguments return equal values.
func Sample(user domain.UserID, provider domain.Provider, tag string) domain.SealedAuthTokens {
	now := sampleNow
	return domain.SealedAuthTokens{
		User:          user,
		Provider:      provider,
		KeyID:         "key-" + domain.KeyID(tag),
		AccessToken:   []byte("sealed-access-" + tag),
		RefreshToken:  []byte("sealed-refresh-" + tag),
		AccessExpiry:  domain.At(now.Add(time.Hour)),
		RefreshExpiry: domain.At(now.Add(30 * 24 * time.Hour)),
	}
}

// AssertSameTokens fails t unless got holds want's caller-supplied fields.
func AssertSameTokens(t *testing.T, got, want domain.SealedAuthTokens) {
	t.Helper()
	if got.User != want.User || got.Provider != want.Provider || got.KeyID != want.KeyID {
		t.Errorf("identity: got (%q, %q, %q), want (%q, %q, %q)",
			got.User, got.Provider, got.KeyID, want.User, want.Provider, want.KeyID)
	}
	if string(got.AccessToken) != string(want.AccessToken) {
		t.Errorf("access token: got %q, want %q", got.AccessToken, want.AccessToken)
	}
	if string(got.RefreshToken) != string(want.RefreshToken) || (got.RefreshToken == nil) != (want.RefreshToken == nil) {
		t.Errorf("refresh token: got %q, want %q", got.RefreshToken, want.RefreshToken)
	}
	if !got.AccessExpiry.Equal(want.AccessExpiry) {
		t.Errorf("access expiry: got %v, want %v", got.AccessExpiry, want.AccessExpiry)
	}
	if !got.RefreshExpiry.Equal(want.RefreshExpiry) {
		t.Errorf("refresh expiry: got %v, want %v", got.RefreshExpiry, want.RefreshExpiry)
	}
}

func put(t *testing.T, repo ports.TokenRepository, tok domain.SealedAuthTokens) domain.SealedAuthTokens {
	t.Helper()
	stored, err := repo.PutAuthTokens(context.Background(), tok)
	if err != nil {
		t.Fatalf("PutAuthTokens: %v", err)
	}
	return stored
}

func get(t *testing.T, repo ports.TokenRepository, u domain.UserID, p domain.Provider) domain.SealedAuthTokens {
	t.Helper()
	got, err := repo.GetAuthTokens(context.Background(), u, p)
	if err != nil {
		t.Fatalf("GetAuthTokens(%q, %q): %v", u, p, err)
	}
	return got
}

func testPutThenGet(t *testing.T, repo Repository) {
	want := Sample("alice", domain.ProviderGitLab, "1")
	stored := put(t, repo, want)
	if stored.Version != 1 {
		t.Errorf("version after insert = %d, want 1", stored.Version)
	}
	if stored.CreatedAt.IsZero() || !stored.UpdatedAt.Equal(stored.CreatedAt) {
		t.Errorf("timestamps after insert: created %v, updated %v", stored.CreatedAt, stored.UpdatedAt)
	}
	got := get(t, repo, "alice", domain.ProviderGitLab)
	AssertSameTokens(t, got, want)
	if got.Version != 1 || !got.CreatedAt.Equal(stored.CreatedAt) {
		t.Errorf("read back version %d created %v, stored %d %v", got.Version, got.CreatedAt, stored.Version, stored.CreatedAt)
	}

	// Never-expiring tokens without a refresh token are stored as such.
	never := domain.SealedAuthTokens{
		User: "alice", Provider: domain.ProviderGitHub, KeyID: "k",
		AccessToken: []byte("sealed-github"),
	}
	put(t, repo, never)
	got = get(t, repo, "alice", domain.ProviderGitHub)
	AssertSameTokens(t, got, never)
	if !got.AccessExpiry.IsNever() || !got.RefreshExpiry.IsNever() || got.RefreshToken != nil {
		t.Errorf("never-expiring tokens read back as %v / %v / refresh %q", got.AccessExpiry, got.RefreshExpiry, got.RefreshToken)
	}
}

func testPutReplaces(t *testing.T, repo Repository) {
	first := put(t, repo, Sample("bob", domain.ProviderBitbucket, "old"))
	next := domain.SealedAuthTokens{
		User: "bob", Provider: domain.ProviderBitbucket, KeyID: "key-new",
		AccessToken: []byte("sealed-access-new"),
	}
	second := put(t, repo, next)
	if second.Version != first.Version+1 {
		t.Errorf("version after upsert = %d, want %d", second.Version, first.Version+1)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("created_at changed on upsert: %v -> %v", first.CreatedAt, second.CreatedAt)
	}
	if !second.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("updated_at did not advance on upsert: %v -> %v", first.UpdatedAt, second.UpdatedAt)
	}
	AssertSameTokens(t, get(t, repo, "bob", domain.ProviderBitbucket), next)
}

func testGetMissing(t *testing.T, repo Repository) {
	put(t, repo, Sample("carol", domain.ProviderGitHub, "1"))
	for _, tc := range []struct {
		user     domain.UserID
		provider domain.Provider
	}{{"carol", domain.ProviderGitLab}, {"dave", domain.ProviderGitHub}} {
		_, err := repo.GetAuthTokens(context.Background(), tc.user, tc.provider)
		if !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("GetAuthTokens(%q, %q) = %v, want ErrNotFound", tc.user, tc.provider, err)
		}
	}
}

func testDelete(t *testing.T, repo Repository) {
	ctx := context.Background()
	put(t, repo, Sample("erin", domain.ProviderGitHub, "1"))
	put(t, repo, Sample("erin", domain.ProviderGitLab, "2"))
	put(t, repo, Sample("frank", domain.ProviderGitHub, "3"))

	if err := repo.DeleteAuthTokens(ctx, "erin", domain.ProviderGitHub); err != nil {
		t.Fatalf("DeleteAuthTokens: %v", err)
	}
	if _, err := repo.GetAuthTokens(ctx, "erin", domain.ProviderGitHub); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("after delete, Get = %v, want ErrNotFound", err)
	}
	if err := repo.DeleteAuthTokens(ctx, "erin", domain.ProviderGitHub); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("second delete = %v, want ErrNotFound", err)
	}
	// Neighbours are untouched.
	get(t, repo, "erin", domain.ProviderGitLab)
	get(t, repo, "frank", domain.ProviderGitHub)
}

func testListProviders(t *testing.T, repo Repository) {
	ctx := context.Background()
	empty, err := repo.ListProviders(ctx, "nobody")
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("ListProviders(unknown) = %v, %v; want an empty, non-nil list", empty, err)
	}
	gitlab := Sample("gina", domain.ProviderGitLab, "1")
	put(t, repo, gitlab)
	put(t, repo, domain.SealedAuthTokens{User: "gina", Provider: domain.ProviderGitHub, KeyID: "k", AccessToken: []byte("x")})
	put(t, repo, Sample("henry", domain.ProviderKeycloak, "2"))

	list, err := repo.ListProviders(ctx, "gina")
	if err != nil {
		t.Fatalf("ListProviders: %v", err)
	}
	if len(list) != 2 || list[0].Provider != domain.ProviderGitHub || list[1].Provider != domain.ProviderGitLab {
		t.Fatalf("ListProviders(gina) = %+v, want github then gitlab", list)
	}
	if list[0].HasRefreshToken || !list[0].AccessExpiry.IsNever() {
		t.Errorf("github entry = %+v, want no refresh token and never-expiring", list[0])
	}
	if !list[1].HasRefreshToken || !list[1].AccessExpiry.Equal(gitlab.AccessExpiry) ||
		!list[1].RefreshExpiry.Equal(gitlab.RefreshExpiry) || list[1].UpdatedAt.IsZero() {
		t.Errorf("gitlab entry = %+v, want refresh token and the stored expiries", list[1])
	}
}

func testUpdateStores(t *testing.T, repo Repository) {
	stored := put(t, repo, Sample("ivan", domain.ProviderGitLab, "1"))
	next := Sample("ivan", domain.ProviderGitLab, "2")
	var seen domain.SealedAuthTokens
	updated, err := repo.UpdateAuthTokens(context.Background(), "ivan", domain.ProviderGitLab,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			seen = cur
			return &next, nil, nil
		})
	if err != nil {
		t.Fatalf("UpdateAuthTokens: %v", err)
	}
	AssertSameTokens(t, seen, Sample("ivan", domain.ProviderGitLab, "1"))
	if seen.Version != stored.Version {
		t.Errorf("fn saw version %d, want %d", seen.Version, stored.Version)
	}
	if updated.Version != stored.Version+1 {
		t.Errorf("returned version %d, want %d", updated.Version, stored.Version+1)
	}
	got := get(t, repo, "ivan", domain.ProviderGitLab)
	AssertSameTokens(t, got, next)
	if got.Version != updated.Version {
		t.Errorf("stored version %d, returned %d", got.Version, updated.Version)
	}
}

func testUpdateNil(t *testing.T, repo Repository) {
	stored := put(t, repo, Sample("judy", domain.ProviderGitLab, "1"))
	got, err := repo.UpdateAuthTokens(context.Background(), "judy", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			return nil, nil, nil
		})
	if err != nil {
		t.Fatalf("UpdateAuthTokens: %v", err)
	}
	if got.Version != stored.Version {
		t.Errorf("no-op update returned version %d, want %d", got.Version, stored.Version)
	}
	if v := get(t, repo, "judy", domain.ProviderGitLab).Version; v != stored.Version {
		t.Errorf("no-op update bumped version to %d", v)
	}
}

func testUpdateError(t *testing.T, repo Repository) {
	put(t, repo, Sample("kim", domain.ProviderGitLab, "1"))
	boom := errors.New("provider said no")
	_, err := repo.UpdateAuthTokens(context.Background(), "kim", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			return nil, nil, boom
		})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateAuthTokens = %v, want the fn's error", err)
	}
	AssertSameTokens(t, get(t, repo, "kim", domain.ProviderGitLab), Sample("kim", domain.ProviderGitLab, "1"))
	// The lock was released: another unit of work proceeds.
	if _, err := repo.UpdateAuthTokens(context.Background(), "kim", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			return nil, nil, nil
		}); err != nil {
		t.Fatalf("update after a failed one: %v", err)
	}
}

func testUpdatePanic(t *testing.T, repo Repository) {
	put(t, repo, Sample("leo", domain.ProviderGitLab, "1"))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the fn's panic re-raised", r)
			}
		}()
		_, _ = repo.UpdateAuthTokens(context.Background(), "leo", domain.ProviderGitLab,
			func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
				panic("boom")
			})
	}()
	next := Sample("leo", domain.ProviderGitLab, "2")
	if _, err := repo.UpdateAuthTokens(context.Background(), "leo", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			return &next, nil, nil
		}); err != nil {
		t.Fatalf("update after a panicking one (lock still held?): %v", err)
	}
	AssertSameTokens(t, get(t, repo, "leo", domain.ProviderGitLab), next)
}

func testUpdateMissing(t *testing.T, repo Repository) {
	called := false
	_, err := repo.UpdateAuthTokens(context.Background(), "mia", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			called = true
			return nil, nil, nil
		})
	if !errors.Is(err, domain.ErrNotFound) || called {
		t.Fatalf("UpdateAuthTokens(missing) = %v (fn called: %v), want ErrNotFound without calling fn", err, called)
	}
}

func testConcurrentPuts(t *testing.T, repo Repository) {
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := repo.PutAuthTokens(context.Background(), Sample("nina", domain.ProviderGitLab, fmt.Sprint(i)))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent PutAuthTokens: %v", err)
		}
	}
	list, err := repo.ListProviders(context.Background(), "nina")
	if err != nil || len(list) != 1 {
		t.Fatalf("after concurrent puts: %d rows (%v), want 1", len(list), err)
	}
	got := get(t, repo, "nina", domain.ProviderGitLab)
	// Whichever writer won, its values are whole: key, access and refresh
	// tokens all carry the same writer's tag.
	tag := string(got.KeyID[len("key-"):])
	AssertSameTokens(t, got, Sample("nina", domain.ProviderGitLab, tag))
	if got.Version != writers {
		t.Errorf("version after %d writes = %d", writers, got.Version)
	}
}

func testOfflineToken(t *testing.T, repo Repository) {
	ctx := context.Background()
	if _, err := repo.GetOfflineToken(ctx, "olga"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("GetOfflineToken(missing) = %v, want ErrNotFound", err)
	}
	first, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "olga", KeyID: "k1", Token: []byte("sealed-1")})
	if err != nil {
		t.Fatalf("PutOfflineToken: %v", err)
	}
	second, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "olga", KeyID: "k2", Token: []byte("sealed-2")})
	if err != nil {
		t.Fatalf("PutOfflineToken (replace): %v", err)
	}
	if second.Version != first.Version+1 || !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
		t.Errorf("replace: first %+v, second %+v", first, second)
	}
	got, err := repo.GetOfflineToken(ctx, "olga")
	if err != nil {
		t.Fatalf("GetOfflineToken: %v", err)
	}
	if got.User != "olga" || got.KeyID != "k2" || string(got.Token) != "sealed-2" || got.Version != second.Version {
		t.Errorf("GetOfflineToken = %+v", got)
	}
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "pete", KeyID: "k1", Token: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if err := repo.DeleteOfflineToken(ctx, "olga"); err != nil {
		t.Fatalf("DeleteOfflineToken: %v", err)
	}
	if _, err := repo.GetOfflineToken(ctx, "olga"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("after delete = %v, want ErrNotFound", err)
	}
	if err := repo.DeleteOfflineToken(ctx, "olga"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("second delete = %v, want ErrNotFound", err)
	}
	if _, err := repo.GetOfflineToken(ctx, "pete"); err != nil {
		t.Errorf("neighbour's offline token: %v", err)
	}
}

func testCanceledContext(t *testing.T, repo Repository) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := repo.PutAuthTokens(ctx, Sample("quinn", domain.ProviderGitLab, "1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with canceled context = %v, want context.Canceled", err)
	}
	if _, err := repo.GetAuthTokens(context.Background(), "quinn", domain.ProviderGitLab); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("a canceled put stored something: %v", err)
	}
}

// setRefresh stores st as the row's refresh state through the unit of work,
// as the refresh protocol does, and returns the row as stored.
func setRefresh(t *testing.T, repo Repository, u domain.UserID, p domain.Provider, st domain.RefreshState) domain.SealedAuthTokens {
	t.Helper()
	row, err := repo.UpdateAuthTokens(context.Background(), u, p,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			cur.Refresh = st
			return &cur, nil, nil
		})
	if err != nil {
		t.Fatalf("UpdateAuthTokens(%q, %q): %v", u, p, err)
	}
	return row
}

// expiring returns Sample(u, p, tag) whose access token expires in d.
func expiring(u domain.UserID, p domain.Provider, tag string, d time.Duration) domain.SealedAuthTokens {
	tok := Sample(u, p, tag)
	tok.AccessExpiry = domain.At(time.Now().Add(d).Truncate(time.Second))
	return tok
}

func claim(t *testing.T, repo Repository, c RefreshClaim) []domain.SealedAuthTokens {
	t.Helper()
	rows, err := repo.ClaimDueRefreshes(context.Background(), c)
	if err != nil {
		t.Fatalf("ClaimDueRefreshes: %v", err)
	}
	return rows
}

// RefreshClaim is ports.RefreshClaim with the contract's defaults filled in
// by claimFor.
type RefreshClaim = ports.RefreshClaim

func claimFor(owner string, providers ...domain.Provider) RefreshClaim {
	return RefreshClaim{Owner: owner, Providers: providers, Lease: time.Minute, Horizon: time.Hour, Limit: 100}
}

// users names the claimed rows, sorted: a claim returns them in no
// particular order.
func users(rows []domain.SealedAuthTokens) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = string(r.User) + "/" + string(r.Provider)
	}
	slices.Sort(out)
	return out
}

func testClaimDue(t *testing.T, repo Repository) {
	gl, gh := domain.ProviderGitLab, domain.ProviderGitHub
	due := put(t, repo, expiring("due", gl, "1", time.Minute))
	expired := put(t, repo, expiring("expired", gl, "2", -time.Hour))
	put(t, repo, expiring("later", gl, "3", 2*time.Hour))
	put(t, repo, expiring("other-provider", gh, "4", time.Minute))
	never := Sample("never", gl, "5")
	never.AccessExpiry = domain.Never()
	put(t, repo, never)
	noRefresh := expiring("no-refresh", gl, "6", time.Minute)
	noRefresh.RefreshToken, noRefresh.RefreshExpiry = nil, domain.Never()
	put(t, repo, noRefresh)
	refreshExpired := expiring("refresh-expired", gl, "7", time.Minute)
	refreshExpired.RefreshExpiry = domain.At(time.Now().Add(-time.Minute))
	put(t, repo, refreshExpired)

	before := time.Now()
	rows := claim(t, repo, claimFor("owner-1", gl))
	if got := users(rows); len(got) != 2 || got[0] != "due/gitlab" || got[1] != "expired/gitlab" {
		t.Fatalf("claimed %v, want [due/gitlab expired/gitlab]", got)
	}
	for _, got := range rows {
		want := due
		if got.User == expired.User {
			want = expired
		}
		if got.Refresh.LeaseOwner != "owner-1" || !got.Refresh.LeaseUntil.After(before) ||
			got.Refresh.LeaseUntil.After(time.Now().Add(2*time.Minute)) {
			t.Errorf("%s claimed with lease %q until %v, want owner-1 for about a minute", got.User, got.Refresh.LeaseOwner, got.Refresh.LeaseUntil)
		}
		if got.Version != want.Version+1 {
			t.Errorf("%s claimed at version %d, want %d", got.User, got.Version, want.Version+1)
		}
		AssertSameTokens(t, got, want)
		stored := get(t, repo, got.User, gl)
		if stored.Version != got.Version || stored.Refresh.LeaseOwner != "owner-1" || !stored.Refresh.LeaseUntil.Equal(got.Refresh.LeaseUntil) {
			t.Errorf("%s stored as version %d lease %q until %v; claim returned %d %q %v", got.User,
				stored.Version, stored.Refresh.LeaseOwner, stored.Refresh.LeaseUntil, got.Version, got.Refresh.LeaseOwner, got.Refresh.LeaseUntil)
		}
	}
	if again := claim(t, repo, claimFor("owner-2", gl)); len(again) != 0 {
		t.Errorf("second claim took leased rows %v", users(again))
	}
	if none := claim(t, repo, claimFor("owner-3")); len(none) != 0 {
		t.Errorf("a claim for no provider took %v", users(none))
	}
	wide := claimFor("owner-4", gl, gh)
	wide.Horizon = 3 * time.Hour
	if got := users(claim(t, repo, wide)); len(got) != 2 || got[0] != "later/gitlab" || got[1] != "other-provider/github" {
		t.Errorf("wider claim took %v, want [later/gitlab other-provider/github]", got)
	}
}

func testClaimOrderAndLimit(t *testing.T, repo Repository) {
	gl := domain.ProviderGitLab
	put(t, repo, expiring("c", gl, "3", 30*time.Minute))
	put(t, repo, expiring("a", gl, "1", 10*time.Minute))
	put(t, repo, expiring("b", gl, "2", 20*time.Minute))
	c := claimFor("o", gl)
	c.Limit = 0
	if got := claim(t, repo, c); len(got) != 0 {
		t.Fatalf("limit 0 claimed %v", users(got))
	}
	c.Limit = 2
	if got := users(claim(t, repo, c)); len(got) != 2 || got[0] != "a/gitlab" || got[1] != "b/gitlab" {
		t.Fatalf("claimed %v, want the two soonest [a b]", got)
	}
	if got := users(claim(t, repo, c)); len(got) != 1 || got[0] != "c/gitlab" {
		t.Fatalf("then claimed %v, want [c]", got)
	}
}

func testClaimSkipsCoordinated(t *testing.T, repo Repository) {
	gl := domain.ProviderGitLab
	now := time.Now()
	for _, u := range []domain.UserID{"backoff", "backoff-over", "reauth", "live-lease", "lapsed-lease"} {
		put(t, repo, expiring(u, gl, string(u), -time.Minute))
	}
	setRefresh(t, repo, "backoff", gl, domain.RefreshState{NextAttemptAt: now.Add(time.Hour), LastError: domain.CodeProviderUnavailable})
	setRefresh(t, repo, "backoff-over", gl, domain.RefreshState{NextAttemptAt: now.Add(-time.Minute), LastError: domain.CodeProviderUnavailable})
	setRefresh(t, repo, "reauth", gl, domain.RefreshState{ReauthRequired: true, LastError: domain.CodeGrantRevoked})
	setRefresh(t, repo, "live-lease", gl, domain.RefreshState{LeaseOwner: "x", LeaseUntil: now.Add(time.Hour)})
	setRefresh(t, repo, "lapsed-lease", gl, domain.RefreshState{LeaseOwner: "x", LeaseUntil: now.Add(-time.Minute)})
	got := claim(t, repo, claimFor("o", gl))
	if len(got) != 1 || got[0].User != "backoff-over" {
		t.Fatalf("claimed %v, want only the row whose back-off is over", users(got))
	}
	// The claim keeps the row's failure record; only the lease is new.
	if got[0].Refresh.LastError != domain.CodeProviderUnavailable {
		t.Errorf("claimed row's last error %q, want it kept", got[0].Refresh.LastError)
	}
}

func testConcurrentClaims(t *testing.T, repo Repository) {
	gl := domain.ProviderGitLab
	const rows, claimers = 24, 6
	for i := range rows {
		put(t, repo, expiring(domain.UserID(fmt.Sprintf("u%02d", i)), gl, fmt.Sprint(i), time.Duration(i)*time.Second))
	}
	var (
		mu   sync.Mutex
		seen = map[domain.UserID]string{}
		wg   sync.WaitGroup
	)
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("claimer-", i)
			for {
				c := claimFor(owner, gl)
				c.Limit = 3
				got, err := repo.ClaimDueRefreshes(context.Background(), c)
				if err != nil {
					t.Errorf("ClaimDueRefreshes: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, r := range got {
					if prev, dup := seen[r.User]; dup {
						t.Errorf("%s claimed by %s and %s", r.User, prev, owner)
					}
					seen[r.User] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != rows {
		t.Errorf("claimed %d rows in all, want %d", len(seen), rows)
	}
	for u, owner := range seen {
		if got := get(t, repo, u, gl).Refresh.LeaseOwner; got != owner {
			t.Errorf("%s leased to %q, claimed by %q", u, got, owner)
		}
	}
}

func testMarkLapsedLeases(t *testing.T, repo Repository) {
	gl := domain.ProviderGitLab
	now := time.Now()
	for _, u := range []domain.UserID{"lapsed", "live", "free", "lapsed-fresh"} {
		put(t, repo, expiring(u, gl, string(u), -time.Minute))
	}
	lapsed := setRefresh(t, repo, "lapsed", gl, domain.RefreshState{LeaseOwner: "x", LeaseUntil: now.Add(-time.Minute), LastError: domain.CodeProviderUnavailable})
	setRefresh(t, repo, "lapsed-fresh", gl, domain.RefreshState{LeaseOwner: "y", LeaseUntil: now.Add(-time.Second)})
	setRefresh(t, repo, "live", gl, domain.RefreshState{LeaseOwner: "z", LeaseUntil: now.Add(time.Hour)})
	live := get(t, repo, "live", gl)
	event := domain.AuditEvent{Instance: "i-9", Action: domain.AuditReauthRequired, Status: 409, Code: domain.CodeRefreshInterrupted}
	marked, err := repo.MarkLapsedLeases(context.Background(), event, true)
	if err != nil || len(marked) != 2 {
		t.Fatalf("MarkLapsedLeases = %+v, %v; want 2 events", marked, err)
	}
	// One event per marked row, returned and stored: event with the row's
	// user and provider.
	var wantEvents []string
	for _, u := range []string{"lapsed", "lapsed-fresh"} {
		e := event
		e.User, e.Provider = domain.UserID(u), gl
		wantEvents = append(wantEvents, fmt.Sprintf("%+v", e))
	}
	var gotMarked, gotStored []string
	for _, e := range marked {
		gotMarked = append(gotMarked, fmt.Sprintf("%+v", e))
	}
	action := domain.AuditReauthRequired
	stored, _, err := repo.ListAuditEvents(context.Background(), domain.AuditFilter{Action: &action}, ports.AuditCursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stored {
		e.Time = time.Time{}
		gotStored = append(gotStored, fmt.Sprintf("%+v", e))
	}
	slices.Sort(gotMarked)
	slices.Sort(gotStored)
	if !slices.Equal(gotMarked, wantEvents) || !slices.Equal(gotStored, wantEvents) {
		t.Errorf("events of the sweep:\nreturned %v\nstored   %v\nwant     %v", gotMarked, gotStored, wantEvents)
	}
	got := get(t, repo, "lapsed", gl)
	want := domain.RefreshState{ReauthRequired: true, LastError: domain.CodeRefreshInterrupted}
	if got.Refresh.LeaseOwner != "" || !got.Refresh.LeaseUntil.IsZero() || !got.Refresh.ReauthRequired ||
		got.Refresh.LastError != want.LastError || got.Version != lapsed.Version+1 {
		t.Errorf("lapsed row after the sweep: %+v version %d, want %+v version %d", got.Refresh, got.Version, want, lapsed.Version+1)
	}
	AssertSameTokens(t, got, lapsed)
	if g := get(t, repo, "live", gl); g.Refresh.LeaseOwner != "z" || !g.Refresh.LeaseUntil.Equal(live.Refresh.LeaseUntil) ||
		g.Refresh.ReauthRequired || g.Version != live.Version {
		t.Errorf("live lease touched: %+v version %d", g.Refresh, g.Version)
	}
	if g := get(t, repo, "free", gl); g.Refresh.LeaseOwner != "" || g.Refresh.ReauthRequired || g.Version != 1 {
		t.Errorf("row without a lease touched: %+v version %d", g.Refresh, g.Version)
	}
	if marked, err := repo.MarkLapsedLeases(context.Background(), event, true); err != nil || len(marked) != 0 {
		t.Errorf("second sweep = %+v, %v; want none", marked, err)
	}
	// Without record, the events of the rows marked are returned, not stored.
	setRefresh(t, repo, "live", gl, domain.RefreshState{LeaseOwner: "z", LeaseUntil: now.Add(-time.Second)})
	marked, err = repo.MarkLapsedLeases(context.Background(), event, false)
	if err != nil || len(marked) != 1 || marked[0].User != "live" {
		t.Errorf("sweep without record = %+v, %v; want live's event", marked, err)
	}
	if g := get(t, repo, "live", gl); !g.Refresh.ReauthRequired {
		t.Errorf("sweep without record did not mark the row: %+v", g.Refresh)
	}
	if all, _, _ := repo.ListAuditEvents(context.Background(), domain.AuditFilter{Action: &action}, ports.AuditCursor{}, 100); len(all) != 2 {
		t.Errorf("%d reauth_required events stored, want the first sweep's 2", len(all))
	}
}

// testUpdateEvents: the audit events fn returns are stored with the row
// it returns, and with none (a nil row) too.
func testUpdateEvents(t *testing.T, repo Repository) {
	put(t, repo, Sample("nina", domain.ProviderGitLab, "1"))
	next := Sample("nina", domain.ProviderGitLab, "2")
	event := domain.AuditEvent{Instance: "i-1", Caller: "svc", Action: domain.AuditRefresh,
		User: "nina", Provider: domain.ProviderGitLab, Status: 200, RequestID: "req-u"}
	if _, err := repo.UpdateAuthTokens(context.Background(), "nina", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			return &next, []domain.AuditEvent{event}, nil
		}); err != nil {
		t.Fatal(err)
	}
	AssertSameTokens(t, get(t, repo, "nina", domain.ProviderGitLab), next)
	second := event
	second.Status, second.Code, second.RequestID = 503, domain.CodeProviderUnavailable, "req-v"
	if _, err := repo.UpdateAuthTokens(context.Background(), "nina", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			return nil, []domain.AuditEvent{second}, nil
		}); err != nil {
		t.Fatal(err)
	}
	// fn failing stores nothing.
	if _, err := repo.UpdateAuthTokens(context.Background(), "nina", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			return &next, []domain.AuditEvent{event}, errors.New("no")
		}); err == nil {
		t.Fatal("fn's error was not returned")
	}
	user := domain.UserID("nina")
	got, _, err := repo.ListAuditEvents(context.Background(), domain.AuditFilter{User: &user}, ports.AuditCursor{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("stored events %+v, want 2", got)
	}
	for i, want := range []domain.AuditEvent{event, second} {
		got[i].Time = time.Time{}
		if got[i] != want {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want)
		}
	}
}
