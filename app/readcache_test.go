package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// staleCache is a read cache that has kept an out-of-date row: it answers
// ServableAuthTokens with stale (GetAuthTokens reads the repository, as
// the port requires).
type staleCache struct {
	ports.TokenRepository
	mu    sync.Mutex
	stale *domain.SealedAuthTokens
}

func (c *staleCache) ServableAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.ServableAuthTokens, error) {
	c.mu.Lock()
	stale := c.stale
	c.mu.Unlock()
	if stale != nil {
		return stale.Servable(), nil
	}
	row, err := c.TokenRepository.GetAuthTokens(ctx, user, provider)
	return row.Servable(), err
}

// TestKeptRowIsServedOnlyAsItIs: a row the read cache kept is acted on
// only when the refresh rule serves it; any other decision (refresh,
// re-authorization) is taken again on the database's row, under its lock,
// so a stale "re-authorize" or "expired" never reaches the caller and
// never calls the provider when another instance already refreshed.
func TestKeptRowIsServedOnlyAsItIs(t *testing.T) {
	t.Parallel()
	for name, makeStale := range map[string]func(f *fixture) domain.SealedAuthTokens{
		"needs re-authorization": func(f *fixture) domain.SealedAuthTokens {
			row := f.row("u1", gitlab)
			row.Refresh.ReauthRequired, row.Refresh.LastError = true, domain.CodeGrantRevoked
			return row
		},
		"expired": func(f *fixture) domain.SealedAuthTokens {
			row := f.row("u1", gitlab)
			row.AccessExpiry = domain.At(time.Now().Add(-time.Minute))
			return row
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, app.Config{})
			f.putFresh("u1", gitlab, time.Hour, "r1") // the database's row: valid for an hour
			stale := makeStale(f)
			cache := &staleCache{TokenRepository: f.repo, stale: &stale}
			f.svc = app.NewTokenService(f.cfg, nil, f.ring, cache, f.provider, nil)
			if _, err := f.get("u1", gitlab); err != nil {
				t.Fatalf("the database's row is valid for an hour: %v", err)
			}
			f.wantCalls(0)
		})
	}
}

func (c *staleCache) AuthTokensChanged(domain.UserID, domain.Provider) (<-chan struct{}, func()) {
	return nil, func() {}
}

// TestWaiterWakesWhenTheRefreshIsHeard: a caller waiting for another
// instance's refresh wakes when the change is heard, not at its next poll
// (an hour here: without the wake-up it would give up after WaitTimeout).
func TestWaiterWakesWhenTheRefreshIsHeard(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{Refresh: app.RefreshConfig{PollInterval: time.Hour, WaitTimeout: time.Minute}})
	f.putFresh("alice", gitlab, time.Hour, "r")
	refreshed := f.row("alice", gitlab) // what the other instance will store
	f.put("alice", gitlab, -time.Minute, "r")
	f.setRefresh("alice", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(time.Hour)})
	cache := readcache.New(f.repo, synced{}, readcache.Options{})
	f.repo.NotifyChanges(cache)
	f.svc = app.NewTokenService(f.cfg, nil, f.ring, cache, f.provider, nil)

	done := make(chan error, 1)
	go func() {
		got, err := f.get("alice", gitlab)
		if err == nil && got != "access-alice" { // the row's token, valid again
			err = errors.New("served " + got)
		}
		done <- err
	}()
	// Another instance ends its refresh: here by storing the user's tokens
	// straight into storage, which tells the cache as PostgreSQL would.
	for cache.Stats().Waiting == 0 { // the caller is inside its wait
		time.Sleep(time.Millisecond)
	}
	if _, err := f.repo.PutAuthTokens(context.Background(), refreshed); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.wantCalls(0)
}

// TestGivenUpWaitLeavesNoWaiter: a caller that gives up waiting for
// another instance's refresh (WaitTimeout) stops its waits, so the cache
// counts (and holds) no wait for the row.
func TestGivenUpWaitLeavesNoWaiter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{Refresh: app.RefreshConfig{PollInterval: 5 * time.Millisecond, WaitTimeout: 50 * time.Millisecond}})
	f.put("alice", gitlab, -time.Minute, "r")
	f.setRefresh("alice", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(time.Hour)})
	cache := readcache.New(f.repo, synced{}, readcache.Options{})
	f.repo.NotifyChanges(cache)
	f.svc = app.NewTokenService(f.cfg, nil, f.ring, cache, f.provider, nil)
	if _, err := f.get("alice", gitlab); !errors.Is(err, domain.ErrUnavailable) {
		t.Fatalf("a lease held for an hour: %v, want ErrUnavailable after WaitTimeout", err)
	}
	// The attempt outlives its callers by a moment: its own wait ends at
	// its own deadline.
	if err := f.svc.Refreshes().Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w := cache.Stats().Waiting; w != 0 {
		t.Fatalf("after the caller gave up, the cache still counts %d waits", w)
	}
	f.wantCalls(0)
}

// synced is the barrier of a repository that tells its cache of every
// change before the write returns: always up to date.
type synced struct{}

func (synced) Sync(context.Context) error { return nil }
