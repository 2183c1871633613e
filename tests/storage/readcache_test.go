package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/repotest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// heard is the sink between a listener and its cache: it forwards every
// call, records when each change was heard, and can hold the listener
// inside Disconnected until the test releases it.
type heard struct {
	cache *readcache.Repository

	mu           sync.Mutex
	changes      map[string]chan time.Time // by user/provider: when each change was heard
	all          chan struct{}
	disconnected chan struct{}
	holdDisc     chan struct{} // when set, Disconnected waits for it to close
	hold         chan struct{} // when set, TokensChanged waits for it to close
}

func (h *heard) ch(user domain.UserID, provider domain.Provider) chan time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := string(user) + "/" + string(provider)
	c, ok := h.changes[k]
	if !ok {
		c = make(chan time.Time, 1024)
		h.changes[k] = c
	}
	return c
}

func (h *heard) TokensChanged(user domain.UserID, provider domain.Provider, version int64) {
	h.mu.Lock()
	hold := h.hold
	h.mu.Unlock()
	if hold != nil {
		<-hold
	}
	h.cache.TokensChanged(user, provider, version)
	h.ch(user, provider) <- time.Now()
}

func (h *heard) AllTokensChanged() {
	h.cache.AllTokensChanged()
	select {
	case h.all <- struct{}{}:
	default:
	}
}

func (h *heard) Disconnected() {
	h.cache.Disconnected()
	select {
	case h.disconnected <- struct{}{}:
	default:
	}
	h.mu.Lock()
	hold := h.holdDisc
	h.mu.Unlock()
	if hold != nil {
		<-hold
	}
}

var _ ports.TokenChangeSink = (*heard)(nil)

// instance is one tokenstore instance's storage: the repository, its read
// cache and the listener that keeps the cache exact.
type instance struct {
	repo     *postgres.Repository
	cache    *readcache.Repository
	sink     *heard
	pool     *pgxpool.Pool
	listener *postgres.ChangeListener
}

// newInstance starts an instance on dsn; its listener stops when t ends.
func newInstance(t *testing.T, dsn string) *instance {
	t.Helper()
	return newInstanceWith(t, dsn, 10*time.Second)
}

// newInstanceWith is newInstance with the cache's SyncTimeout.
func newInstanceWith(t *testing.T, dsn string, syncTimeout time.Duration) *instance {
	t.Helper()
	pool := testdb.Pool(t, dsn, nil)
	repo := postgres.New(pool, postgres.Options{})
	l, err := postgres.NewChangeListener(postgres.Config{URL: dsn}, postgres.ListenerOptions{SyncTimeout: syncTimeout})
	if err != nil {
		t.Fatal(err)
	}
	cache := readcache.New(repo, l, readcache.Options{SyncTimeout: syncTimeout})
	sink := &heard{cache: cache, changes: map[string]chan time.Time{}, all: make(chan struct{}, 1), disconnected: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx, sink) }()
	t.Cleanup(func() {
		sink.mu.Lock()
		for _, hold := range []chan struct{}{sink.holdDisc, sink.hold} {
			if hold != nil {
				select {
				case <-hold:
				default:
					close(hold)
				}
			}
		}
		sink.mu.Unlock()
		cancel()
		<-done
	})
	waitFor(t, "the listener to listen", func() bool { return l.Sync(t.Context()) == nil })
	return &instance{repo: repo, cache: cache, sink: sink, pool: pool, listener: l}
}

func waitHeard(t *testing.T, in *instance, user domain.UserID, provider domain.Provider) time.Time {
	t.Helper()
	select {
	case at := <-in.sink.ch(user, provider):
		return at
	case <-time.After(30 * time.Second):
		t.Fatalf("the change to %s/%s was never heard", user, provider)
		return time.Time{}
	}
}

func sealedRow(user domain.UserID, token string) domain.SealedAuthTokens {
	return domain.SealedAuthTokens{User: user, Provider: "github", KeyID: "k1", AccessToken: []byte(token)}
}

// TestReadCacheContract holds the cache in front of PostgreSQL, kept exact
// by the real triggers and listener, to the repository contract.
func TestReadCacheContract(t *testing.T) {
	t.Parallel()
	repotest.Run(t, func(t *testing.T) repotest.Repository {
		in := newInstance(t, testdb.NewDSN(t))
		return struct {
			*readcache.Repository
			pgRepo
		}{in.cache, pgRepo{in.repo}}
	})
}

// pgRepo puts the PostgreSQL repository's methods one level deeper than
// the cache's, so the cache's win.
type pgRepo struct{ *postgres.Repository }

// TestReadCacheAcrossInstances: a change committed on one instance (or by
// hand in SQL) is never answered from another instance's memory by a read
// that begins after the commit, without waiting for the notification:
// re-stored, deleted, stored again, updated in psql, updated in bulk. It
// logs the measured time between a write's commit on A and B hearing it
// (how long B's notification takes; B's reads never depend on it).
func TestReadCacheAcrossInstances(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	a, b := newInstance(t, dsn), newInstance(t, dsn)
	ctx := t.Context()
	user := domain.UserID("alice")

	readB := func() (domain.ServableAuthTokens, error) { return b.cache.ServableAuthTokens(ctx, user, "github") }
	mustRead := func(want string) {
		t.Helper()
		got, err := readB()
		if err != nil || string(got.AccessToken) != want {
			t.Fatalf("B read %q, %v; want %q", got.AccessToken, err, want)
		}
	}

	if _, err := a.cache.PutAuthTokens(ctx, sealedRow(user, "v1")); err != nil {
		t.Fatal(err)
	}
	// A miss does not wait for a proof, so a row read while its own change
	// is still on its way is not kept: hear v1 first, so the next read
	// keeps it.
	waitHeard(t, b, user, "github")
	mustRead("v1")
	hits := b.cache.Stats().Hits
	mustRead("v1")
	if b.cache.Stats().Hits != hits+1 {
		t.Fatal("B's second read did not come from memory: the test would prove nothing")
	}

	// Re-stored on A: the window from A's commit to B hearing it.
	var window []time.Duration
	for i := range 50 {
		want := fmt.Sprintf("v%d", i+2)
		began := time.Now() // the commit is later: an upper bound
		if _, err := a.cache.PutAuthTokens(ctx, sealedRow(user, want)); err != nil {
			t.Fatal(err)
		}
		mustRead(want) // at once: the read's proof waits for the notification
		window = append(window, waitHeard(t, b, user, "github").Sub(began))
		mustRead(want) // kept again, from memory
	}
	slices.Sort(window)
	t.Logf("A's PUT sent to its change heard on B (commit included), 50 writes: p50 %s, p99 %s, max %s",
		window[len(window)/2], window[len(window)*99/100], window[len(window)-1])

	// Deleted on A, then stored again.
	if err := a.cache.DeleteAuthTokens(ctx, user, "github"); err != nil {
		t.Fatal(err)
	}
	if _, err := readB(); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("B after the delete: %v, want not found", err)
	}
	if _, err := a.cache.PutAuthTokens(ctx, sealedRow(user, "again")); err != nil {
		t.Fatal(err)
	}
	mustRead("again")
	mustRead("again")

	// Changed by hand in SQL (no tokenstore at all).
	if _, err := a.pool.Exec(ctx, `UPDATE auth_tokens SET access_token = 'by hand' WHERE user_id = $1`, user); err != nil {
		t.Fatal(err)
	}
	mustRead("by hand")

	// A statement changing more than 1000 rows drops everything.
	if _, err := a.pool.Exec(ctx, `INSERT INTO auth_tokens (user_id, provider, key_id, access_token)
		SELECT 'bulk' || g, 'github', 'k1', 'x' FROM generate_series(1, 1001) AS g`); err != nil {
		t.Fatal(err)
	}
	mustRead("by hand")
	drain(b.sink.all)
	if _, err := a.pool.Exec(ctx, `UPDATE auth_tokens SET access_token = 'bulk'`); err != nil {
		t.Fatal(err)
	}
	mustRead("bulk")
	select {
	case <-b.sink.all:
	case <-time.After(30 * time.Second):
		t.Fatal("a bulk UPDATE was never heard as a change to every row")
	}

	// The offline token, the same way.
	if _, err := a.cache.PutOfflineToken(ctx, domain.SealedOfflineToken{User: user, KeyID: "k1", Token: []byte("o1")}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.cache.GetOfflineToken(ctx, user); err != nil || string(got.Token) != "o1" {
		t.Fatalf("B's offline token: %q, %v", got.Token, err)
	}
	if err := a.cache.DeleteOfflineToken(ctx, user); err != nil {
		t.Fatal(err)
	}
	if _, err := b.cache.GetOfflineToken(ctx, user); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("B's offline token after the delete: %v", err)
	}
}

func drain(c chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// TestReadCacheLostListener: when the listening connection is lost (its
// backend terminated), the cache drops every row and answers nothing from
// memory until the listener is back and caught up; a change committed
// while nobody listened is read after.
func TestReadCacheLostListener(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	a, b := newInstance(t, dsn), newInstance(t, dsn)
	ctx := t.Context()
	user := domain.UserID("bob")
	if _, err := a.repo.PutAuthTokens(ctx, sealedRow(user, "before")); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, b, user, "github") // so the first read keeps the row
	for range 2 {
		if _, err := b.cache.ServableAuthTokens(ctx, user, "github"); err != nil {
			t.Fatal(err)
		}
	}
	if s := b.cache.Stats(); s.Hits == 0 || s.Rows == 0 {
		t.Fatalf("B kept nothing (stats %+v): the test would prove nothing", s)
	}

	// Hold B's listener inside Disconnected, so it cannot reconnect
	// before the test has looked.
	release := make(chan struct{})
	b.sink.mu.Lock()
	b.sink.holdDisc = release
	b.sink.mu.Unlock()
	drain(b.sink.disconnected)
	if _, err := a.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN tokenstore_changes' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.sink.disconnected:
	case <-time.After(30 * time.Second):
		t.Fatal("B never noticed its listening connection was gone")
	}
	// Both listeners were terminated; A's reconnects at once (not held).
	if err := b.listener.Sync(ctx); !errors.Is(err, postgres.ErrNotListening) {
		t.Fatalf("B's listener lost its connection but Sync says %v", err)
	}
	if s := b.cache.Stats(); s.Rows != 0 {
		t.Fatalf("after losing its listener, B still keeps rows: %+v", s)
	}
	if _, err := a.repo.PutAuthTokens(ctx, sealedRow(user, "while deaf")); err != nil {
		t.Fatal(err)
	}
	hits := b.cache.Stats().Hits
	for range 3 {
		got, err := b.cache.ServableAuthTokens(ctx, user, "github")
		if err != nil || string(got.AccessToken) != "while deaf" {
			t.Fatalf("B without a listener read %q, %v", got.AccessToken, err)
		}
	}
	if b.cache.Stats().Hits != hits {
		t.Fatal("B answered from memory without a listener")
	}
	b.sink.mu.Lock()
	b.sink.holdDisc = nil
	b.sink.mu.Unlock()
	close(release)
	waitFor(t, "B to listen again", func() bool { return b.listener.Sync(ctx) == nil })
	for range 2 {
		got, err := b.cache.ServableAuthTokens(ctx, user, "github")
		if err != nil || string(got.AccessToken) != "while deaf" {
			t.Fatalf("B after reconnecting read %q, %v", got.AccessToken, err)
		}
	}
	if b.cache.Stats().Hits == hits {
		t.Fatal("B does not answer from memory after reconnecting")
	}
}

// TestReadCacheLaggingListener: a listener that cannot keep up (held
// inside a change) cannot prove the cache up to date: reads wait at most
// SyncTimeout, then go to the database (seeing changes the listener has
// not reached) and drop every row.
func TestReadCacheLaggingListener(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	a, lagging := newInstance(t, dsn), newInstanceWith(t, dsn, 50*time.Millisecond)
	cache, sink, l := lagging.cache, lagging.sink, lagging.listener
	hold := make(chan struct{})

	user := domain.UserID("carol")
	if _, err := a.repo.PutAuthTokens(t.Context(), sealedRow(user, "v1")); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, lagging, user, "github") // so the first read keeps v1
	for range 2 {
		if _, err := cache.ServableAuthTokens(t.Context(), user, "github"); err != nil {
			t.Fatal(err)
		}
	}
	if cache.Stats().Hits == 0 {
		t.Fatal("nothing answered from memory: the test would prove nothing")
	}
	sink.mu.Lock()
	sink.hold = hold
	sink.mu.Unlock()
	if _, err := a.repo.PutAuthTokens(t.Context(), sealedRow(user, "v2")); err != nil {
		t.Fatal(err)
	}
	// The listener is now stuck on v2's notification: no probe comes back.
	got, err := cache.ServableAuthTokens(t.Context(), user, "github")
	if err != nil || string(got.AccessToken) != "v2" {
		t.Fatalf("lagging read %q, %v; want v2 from the database", got.AccessToken, err)
	}
	if s := cache.Stats(); s.Late == 0 || s.Rows != 0 {
		t.Fatalf("a late proof must be counted and drop every row: %+v", s)
	}
	sink.mu.Lock()
	sink.hold = nil
	sink.mu.Unlock()
	close(hold)
	waitFor(t, "the listener to catch up", func() bool { return l.Sync(t.Context()) == nil })
	// The cache turns itself on again once a background proof comes back.
	hits := cache.Stats().Hits
	waitFor(t, "answers from memory again", func() bool {
		got, err := cache.ServableAuthTokens(t.Context(), user, "github")
		if err != nil || string(got.AccessToken) != "v2" {
			t.Fatalf("caught up read %q, %v", got.AccessToken, err)
		}
		return cache.Stats().Hits > hits
	})
}

// TestReadCacheTriggersOff: changes written while a notify trigger is
// disabled (or dropped) would go unheard, so from then on no read is
// answered from memory: every probe is refused until all eight triggers
// are enabled again. Writes under session_replication_role = replica
// (pg_restore --disable-triggers, logical replication's apply) still
// notify: the triggers are ENABLE ALWAYS.
func TestReadCacheTriggersOff(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	a, b := newInstance(t, dsn), newInstance(t, dsn)
	ctx := t.Context()
	user := domain.UserID("dave")
	read := func(want string) {
		t.Helper()
		got, err := b.cache.ServableAuthTokens(ctx, user, "github")
		if err != nil || string(got.AccessToken) != want {
			t.Fatalf("B read %q, %v; want %q", got.AccessToken, err, want)
		}
	}
	if _, err := a.repo.PutAuthTokens(ctx, sealedRow(user, "v1")); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, b, user, "github") // so the first read keeps v1
	read("v1")
	read("v1")
	if b.cache.Stats().Hits == 0 {
		t.Fatal("nothing answered from memory: the test would prove nothing")
	}

	// As a replica's apply would write: still heard.
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SET LOCAL session_replication_role = replica`,
		`UPDATE auth_tokens SET access_token = 'replica' WHERE user_id = 'dave'`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	read("replica")

	if _, err := a.pool.Exec(ctx, `ALTER TABLE auth_tokens DISABLE TRIGGER auth_tokens_notify_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.pool.Exec(ctx, `UPDATE auth_tokens SET access_token = 'unheard' WHERE user_id = 'dave'`); err != nil {
		t.Fatal(err)
	}
	hits := b.cache.Stats().Hits
	read("unheard")
	read("unheard")
	if b.cache.Stats().Hits != hits {
		t.Fatal("B answered from memory while a notify trigger was disabled")
	}
	if _, err := a.pool.Exec(ctx, `ALTER TABLE auth_tokens ENABLE ALWAYS TRIGGER auth_tokens_notify_update`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to answer from memory again", func() bool {
		read("unheard")
		return b.cache.Stats().Hits > hits
	})
}
