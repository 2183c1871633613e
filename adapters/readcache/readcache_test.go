package readcache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/memrepo"
	"github.com/tokenstore/tokenstore/tests/repotest"
)

// cached is a read cache in front of an in-memory repository that tells it
// of every change, as PostgreSQL's triggers tell the listener: the cache's
// methods (depth 1) win over the repository's (depth 2).
type cached struct {
	*readcache.Repository
	store
}

type store struct{ *memrepo.Repository }

// newCached returns the pair. The repository tells the cache of each
// change before the write returns, so the cache is always up to date:
// its barrier always says so.
func newCached(t *testing.T) (*cached, *memrepo.Repository) {
	t.Helper()
	mem := memrepo.New()
	c := readcache.New(mem, &barrier{}, readcache.Options{})
	mem.NotifyChanges(c)
	return &cached{c, store{mem}}, mem
}

// barrier is a ports.ChangeBarrier whose answer the test sets: nil (up to
// date), an error (nobody listens), or ports.ErrSyncLate (block: the
// proof is late).
type barrier struct {
	mu    sync.Mutex
	err   error
	block bool
	syncs int
}

func (b *barrier) Sync(ctx context.Context) error {
	b.mu.Lock()
	b.syncs++
	err, block := b.err, b.block
	b.mu.Unlock()
	if block {
		if err := ctx.Err(); err != nil {
			return err
		}
		return ports.ErrSyncLate
	}
	return err
}

func (b *barrier) set(err error, block bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err, b.block = err, block
}

// TestContract holds the cache, in front of a repository that notifies it,
// to the repository contract: every behaviour of the port is kept.
func TestContract(t *testing.T) {
	t.Parallel()
	repotest.Run(t, func(t *testing.T) repotest.Repository { c, _ := newCached(t); return c })
}

// counting counts the reads that reach the repository, and can hold them
// until released.
type counting struct {
	ports.TokenRepository
	reads atomic.Int64
	hold  chan chan struct{} // when set, each read sends a release channel and waits on it
}

func (c *counting) GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error) {
	c.reads.Add(1)
	row, err := c.TokenRepository.GetAuthTokens(ctx, user, provider)
	if c.hold != nil {
		release := make(chan struct{})
		c.hold <- release
		<-release
	}
	return row, err
}

func (c *counting) GetOfflineToken(ctx context.Context, user domain.UserID) (domain.SealedOfflineToken, error) {
	c.reads.Add(1)
	return c.TokenRepository.GetOfflineToken(ctx, user)
}

func row(user domain.UserID, provider domain.Provider, token string) domain.SealedAuthTokens {
	return domain.SealedAuthTokens{User: user, Provider: provider, KeyID: "k1", AccessToken: []byte(token)}
}

// setup is a cache over a counting in-memory repository that does NOT
// notify the cache (the tests send the notifications), with a barrier
// that says the cache is up to date until told otherwise.
func setup(t *testing.T) (*readcache.Repository, *counting, *memrepo.Repository, *barrier) {
	t.Helper()
	mem := memrepo.New()
	cnt := &counting{TokenRepository: mem}
	b := &barrier{}
	return readcache.New(cnt, b, readcache.Options{SyncTimeout: 20 * time.Millisecond}), cnt, mem, b
}

func read(t *testing.T, c *readcache.Repository, user domain.UserID) domain.ServableAuthTokens {
	t.Helper()
	got, err := c.ServableAuthTokens(t.Context(), user, "github")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAnswersFromMemoryOnlyOnceSynced: a kept row is answered from memory
// only when the barrier proves every change heard; when nobody listens,
// or the proof is late, the read goes to the database, and a late proof
// drops every row. A miss reads the database without waiting for a proof
// (its read is as fresh as any) and keeps its row; a row kept while
// nobody listened is never answered, as the listener, once back, drops
// every row before its first proof (AllTokensChanged).
func TestAnswersFromMemoryOnlyOnceSynced(t *testing.T) {
	t.Parallel()
	c, cnt, mem, b := setup(t)
	if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "a")); err != nil {
		t.Fatal(err)
	}
	c.Disconnected()
	b.set(errors.New("not listening"), false)
	read(t, c, "u1")
	read(t, c, "u1")
	if n := cnt.reads.Load(); n != 2 {
		t.Fatalf("nobody listening: %d reads reached the database, want 2", n)
	}
	if s := c.Stats(); s.Misses != 1 || s.Bypasses != 1 || b.syncs != 1 {
		t.Fatalf("nobody listening: a miss (no proof asked), then a kept row not proven: %+v, %d syncs", s, b.syncs)
	}
	c.AllTokensChanged() // the listener is back
	b.set(nil, false)
	read(t, c, "u1")
	read(t, c, "u1")
	if n := cnt.reads.Load(); n != 3 {
		t.Fatalf("synced: %d reads reached the database, want 3 (one miss, then a hit)", n)
	}
	if s := c.Stats(); s.Hits != 1 || s.Misses != 2 || s.Bypasses != 1 {
		t.Fatalf("stats %+v", s)
	}
	b.set(nil, true) // the proof never comes: SyncTimeout passes
	read(t, c, "u1")
	if n := cnt.reads.Load(); n != 4 {
		t.Fatalf("late proof: %d reads reached the database, want 4", n)
	}
	b.set(nil, false)
	read(t, c, "u1")
	if n := cnt.reads.Load(); n != 5 {
		t.Fatalf("a late proof must drop every row: %d reads reached the database, want 5", n)
	}
	if s := c.Stats(); s.Late != 1 {
		t.Fatalf("Late = %d, want 1", s.Late)
	}
	c.Disconnected()
	read(t, c, "u1")
	if n := cnt.reads.Load(); n != 6 {
		t.Fatalf("Disconnected must drop every row: %d reads reached the database, want 6", n)
	}
	// A read whose own context ends while waiting is not "late": it
	// drops nothing.
	b.set(nil, true)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _ = c.ServableAuthTokens(ctx, "u1", "github")
	if s := c.Stats(); s.Late != 1 {
		t.Fatalf("a caller's own cancellation counted as a late proof: %+v", s)
	}
}

// TestChangeDropsTheRow: a change heard drops that row only; a change to
// all rows drops every one; an error is never kept.
func TestChangeDropsTheRow(t *testing.T) {
	t.Parallel()
	c, cnt, mem, _ := setup(t)
	for _, u := range []domain.UserID{"u1", "u2"} {
		if _, err := mem.PutAuthTokens(t.Context(), row(u, "github", "a")); err != nil {
			t.Fatal(err)
		}
	}
	read(t, c, "u1")
	read(t, c, "u2")
	stored, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, c, "u1"); string(got.AccessToken) != "a" {
		t.Fatalf("no change heard yet: want the kept row, got %q", got.AccessToken)
	}
	c.TokensChanged("u1", "github", stored.Version)
	if got := read(t, c, "u1"); string(got.AccessToken) != "b" || got.Version != stored.Version {
		t.Fatalf("after the change was heard: got %q version %d, want b version %d", got.AccessToken, got.Version, stored.Version)
	}
	before := cnt.reads.Load()
	read(t, c, "u2")
	if cnt.reads.Load() != before {
		t.Fatal("a change to u1 dropped u2's row")
	}
	c.AllTokensChanged()
	read(t, c, "u2")
	if cnt.reads.Load() != before+1 {
		t.Fatal("AllTokensChanged kept u2's row")
	}
	// Not found is not kept: once stored, the row is read.
	if _, err := c.ServableAuthTokens(t.Context(), "u3", "github"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing row: %v", err)
	}
	if _, err := mem.PutAuthTokens(t.Context(), row("u3", "github", "c")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c, "u3"); string(got.AccessToken) != "c" {
		t.Fatalf("got %q after storing a row that was missing", got.AccessToken)
	}
}

// TestFillRacingAChangeIsNotKept: a read that reached the database before
// a change was heard, and returns after, answers its caller but is not
// kept: the next read goes to the database. The same for a change to
// every row and for Disconnected.
func TestFillRacingAChangeIsNotKept(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(c *readcache.Repository){
		"TokensChanged":    func(c *readcache.Repository) { c.TokensChanged("u1", "github", 2) },
		"AllTokensChanged": func(c *readcache.Repository) { c.AllTokensChanged() },
		"Disconnected":     func(c *readcache.Repository) { c.Disconnected() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, cnt, mem, _ := setup(t)
			if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "old")); err != nil {
				t.Fatal(err)
			}
			cnt.hold = make(chan chan struct{})
			done := make(chan domain.ServableAuthTokens)
			go func() {
				got, _ := c.ServableAuthTokens(context.Background(), "u1", "github")
				done <- got
			}()
			release := <-cnt.hold // the fill has read "old" and waits
			if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "new")); err != nil {
				t.Fatal(err)
			}
			change(c)
			close(release)
			if got := <-done; string(got.AccessToken) != "old" {
				t.Fatalf("the racing read answers what it read: got %q", got.AccessToken)
			}
			cnt.hold = nil
			if got := read(t, c, "u1"); string(got.AccessToken) != "new" {
				t.Fatalf("a row read before a change outlived it: got %q, want new", got.AccessToken)
			}
		})
	}
}

// TestLocalWritesDropTheirRow: a write through the cache drops its row
// when it returns, whatever its outcome, with no notification at all.
func TestLocalWritesDropTheirRow(t *testing.T) {
	t.Parallel()
	c, _, _, _ := setup(t)
	ctx := t.Context()
	if _, err := c.PutAuthTokens(ctx, row("u1", "github", "a")); err != nil {
		t.Fatal(err)
	}
	read(t, c, "u1")
	if _, err := c.PutAuthTokens(ctx, row("u1", "github", "b")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c, "u1"); string(got.AccessToken) != "b" {
		t.Fatalf("after a local PUT: got %q", got.AccessToken)
	}
	if _, err := c.UpdateAuthTokens(ctx, "u1", "github", func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
		cur.AccessToken = []byte("c")
		return &cur, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c, "u1"); string(got.AccessToken) != "c" {
		t.Fatalf("after a local update: got %q", got.AccessToken)
	}
	if err := c.DeleteAuthTokens(ctx, "u1", "github"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ServableAuthTokens(ctx, "u1", "github"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("after a local delete: %v", err)
	}
	// Offline tokens likewise.
	if _, err := c.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "u1", KeyID: "k1", Token: []byte("o1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOfflineToken(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "u1", KeyID: "k1", Token: []byte("o2")}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetOfflineToken(ctx, "u1"); err != nil || string(got.Token) != "o2" {
		t.Fatalf("after a local offline PUT: %q, %v", got.Token, err)
	}
	if err := c.DeleteOfflineToken(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOfflineToken(ctx, "u1"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("after a local offline delete: %v", err)
	}
}

// TestNeverAnswersARowOlderThanTheLastChangeHeard races readers against a
// writer whose changes are heard as they commit: a read that starts after
// version v was heard never answers an older version.
func TestNeverAnswersARowOlderThanTheLastChangeHeard(t *testing.T) {
	t.Parallel()
	c, mem := newCached(t)
	ctx := t.Context()
	var heard atomic.Int64
	stored, err := mem.PutAuthTokens(ctx, row("u1", "github", "v"))
	if err != nil {
		t.Fatal(err)
	}
	heard.Store(stored.Version)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := heard.Load()
				got, err := c.ServableAuthTokens(ctx, "u1", "github")
				if err != nil {
					t.Error(err)
					return
				}
				if got.Version < floor {
					t.Errorf("answered version %d after version %d was heard", got.Version, floor)
					return
				}
			}
		})
	}
	for range 2000 {
		s, err := mem.PutAuthTokens(ctx, row("u1", "github", "v")) // notifies before returning
		if err != nil {
			t.Fatal(err)
		}
		heard.Store(s.Version)
	}
	close(stop)
	wg.Wait()
	if s := c.Stats(); s.Hits == 0 {
		t.Logf("no read was answered from memory (stats %+v): the race was not exercised this run", s)
	}
}

// TestMaxRowsBoundsTheCache: no more rows are kept than MaxRows (otter
// may keep fewer).
func TestMaxRowsBoundsTheCache(t *testing.T) {
	t.Parallel()
	mem := memrepo.New()
	c := readcache.New(mem, &barrier{}, readcache.Options{MaxRows: 10})
	for i := range 100 {
		u := domain.UserID("u" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
		if _, err := mem.PutAuthTokens(t.Context(), row(u, "github", "a")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ServableAuthTokens(t.Context(), u, "github"); err != nil {
			t.Fatal(err)
		}
	}
	// otter evicts in its maintenance, soon after the writes.
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Rows > 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := c.Stats().Rows; n > 10 {
		t.Fatalf("%d rows kept, MaxRows is 10", n)
	}
}

// TestAuthTokensChangedIsClosedByTheNextChange: the channel closes at the
// next change heard to its row (not another row's), at a change to every
// row, at Disconnected and at a local write; a new one is made after.
func TestAuthTokensChangedIsClosedByTheNextChange(t *testing.T) {
	t.Parallel()
	c, _, _, _ := setup(t)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	for name, change := range map[string]func(){
		"TokensChanged":    func() { c.TokensChanged("u1", "github", 3) },
		"AllTokensChanged": c.AllTokensChanged,
		"Disconnected":     c.Disconnected,
		"local write": func() {
			_, _ = c.PutAuthTokens(t.Context(), row("u1", "github", "x"))
		},
	} {
		ch, stop := c.AuthTokensChanged("u1", "github")
		ch2, stop2 := c.AuthTokensChanged("u1", "github")
		if ch2 != ch {
			t.Fatalf("%s: two waits on one row got two channels", name)
		}
		if c.Stats().Waiting != 1 {
			t.Fatalf("%s: Waiting = %d, want 1", name, c.Stats().Waiting)
		}
		c.TokensChanged("u2", "github", 1)
		if closed(ch) {
			t.Fatalf("%s: a change to another row closed the channel", name)
		}
		change()
		if !closed(ch) {
			t.Fatalf("%s did not close the channel", name)
		}
		if c.Stats().Waiting != 0 {
			t.Fatalf("%s: Waiting = %d after the change, want 0", name, c.Stats().Waiting)
		}
		stop()
		stop2()
		if next, stopNext := c.AuthTokensChanged("u1", "github"); closed(next) || c.Stats().Waiting != 1 {
			t.Fatalf("%s: the wait after the change is not a new one (Waiting %d)", name, c.Stats().Waiting)
		} else {
			stopNext()
		}
	}
}

// TestGivenUpWaitsAreForgotten: a row whose waits all stopped before any
// change is no longer counted (nor held); a wait that stops leaves the
// others' channel open, and stopping twice counts once.
func TestGivenUpWaitsAreForgotten(t *testing.T) {
	t.Parallel()
	c, _, _, _ := setup(t)
	ch, stop := c.AuthTokensChanged("u1", "github")
	_, stop2 := c.AuthTokensChanged("u1", "github")
	stop()
	stop()
	if w := c.Stats().Waiting; w != 1 {
		t.Fatalf("one of two waits stopped (twice): Waiting = %d, want 1", w)
	}
	select {
	case <-ch:
		t.Fatal("a stopped wait closed the others' channel")
	default:
	}
	stop2()
	if w := c.Stats().Waiting; w != 0 {
		t.Fatalf("every wait stopped: Waiting = %d, want 0", w)
	}
	c.TokensChanged("u1", "github", 2) // nothing to close: no panic
}

// TestLateProofTurnsTheCacheOff: after a late proof, reads go to the
// database at once without waiting for proofs of their own (behind a
// transaction pooler every proof would be late), until a proof sought in
// the background comes back; then reads are answered from memory again.
func TestLateProofTurnsTheCacheOff(t *testing.T) {
	t.Parallel()
	c, cnt, mem, b := setup(t)
	if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "a")); err != nil {
		t.Fatal(err)
	}
	b.set(nil, true)
	read(t, c, "u1") // late: SyncTimeout passes
	b.mu.Lock()
	before := b.syncs
	b.mu.Unlock()
	for range 10 {
		read(t, c, "u1")
	}
	b.mu.Lock()
	after := b.syncs
	b.mu.Unlock()
	if after-before > 1 { // the background attempt, at most
		t.Fatalf("reads after a late proof waited for %d proofs of their own", after-before-1)
	}
	if n := cnt.reads.Load(); n != 11 {
		t.Fatalf("%d reads reached the database, want 11", n)
	}
	b.set(nil, false)
	waitHit := time.Now().Add(30 * time.Second)
	for c.Stats().Hits == 0 {
		if time.Now().After(waitHit) {
			t.Fatal("the cache never answered from memory again after proofs came back")
		}
		read(t, c, "u1")
		time.Sleep(time.Millisecond)
	}
}

// TestGetAuthTokensReadsTheDatabase: the whole row (refresh token
// included) is always read from the database, kept servable part or not.
func TestGetAuthTokensReadsTheDatabase(t *testing.T) {
	t.Parallel()
	c, cnt, mem, _ := setup(t)
	stored := row("u1", "github", "a")
	stored.RefreshToken = []byte("r")
	if _, err := mem.PutAuthTokens(t.Context(), stored); err != nil {
		t.Fatal(err)
	}
	read(t, c, "u1")
	read(t, c, "u1") // kept: a hit
	for i := range 2 {
		got, err := c.GetAuthTokens(t.Context(), "u1", "github")
		if err != nil {
			t.Fatal(err)
		}
		if string(got.RefreshToken) != "r" || string(got.AccessToken) != "a" {
			t.Fatalf("GetAuthTokens answered %+v, not the whole row", got)
		}
		if n := cnt.reads.Load(); n != int64(2+i) {
			t.Fatalf("%d reads reached the database, want %d: GetAuthTokens must always read it", n, 2+i)
		}
	}
}
