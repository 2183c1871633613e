package readcache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

// heldFirst counts the reads that reach the repository and holds the
// first one until release is closed (or its ctx ends, as a database read
// would), so a test can gather callers behind it.
type heldFirst struct {
	ports.TokenRepository
	reads   atomic.Int64
	release chan struct{}
}

func (h *heldFirst) GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error) {
	row, err := h.TokenRepository.GetAuthTokens(ctx, user, provider)
	if h.reads.Add(1) == 1 {
		select {
		case <-h.release:
		case <-ctx.Done():
			return domain.SealedAuthTokens{}, ctx.Err()
		}
	}
	return row, err
}

// burst starts n reads of u1's github row: the first alone, until it holds
// the repository's read, then the others, and returns once every one of
// them waits (synctest.Wait: the bubble's goroutines are all blocked). Each
// read's ctx is ctxs(i)'s.
func burst(c *readcache.Repository, n int, ctx func(i int) context.Context) (answers []string, errs []error, wait func()) {
	answers, errs = make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Go(func() {
			row, err := c.ServableAuthTokens(ctx(i), "u1", "github")
			answers[i], errs[i] = string(row.AccessToken), err
		})
	}
	start(0)
	synctest.Wait() // the first read holds the repository's read
	for i := 1; i < n; i++ {
		start(i)
	}
	synctest.Wait() // every other read waits for it
	return answers, errs, wg.Wait
}

// allAnswered fails t unless every read answered want.
func allAnswered(t *testing.T, answers []string, errs []error, want string) {
	t.Helper()
	for i := range answers {
		if errs[i] != nil || answers[i] != want {
			t.Fatalf("read %d: %q, %v; want %q", i, answers[i], errs[i], want)
		}
	}
}

// setupHeld is a cache over a repository whose first read is held, with
// b as its barrier (nil: always up to date).
func setupHeld(t *testing.T, b *barrier) (*readcache.Repository, *heldFirst, *memrepo.Repository) {
	t.Helper()
	if b == nil {
		b = &barrier{}
	}
	mem := memrepo.New()
	h := &heldFirst{TokenRepository: mem, release: make(chan struct{})}
	return readcache.New(h, b, readcache.Options{}), h, mem
}

// TestConcurrentMissesShareOneRead: callers that miss the same row while
// it is being read take that read's answer, a row or an error, instead of
// each reading the database (a refresh storm's hundreds of callers on one
// token that has just changed).
func TestConcurrentMissesShareOneRead(t *testing.T) {
	t.Parallel()
	const n = 50
	synctest.Test(t, func(t *testing.T) {
		c, h, mem := setupHeld(t, nil)
		if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "a")); err != nil {
			t.Fatal(err)
		}
		answers, errs, wait := burst(c, n, func(int) context.Context { return t.Context() })
		close(h.release)
		wait()
		allAnswered(t, answers, errs, "a")
		if got := h.reads.Load(); got != 1 {
			t.Fatalf("%d concurrent misses of one row read the database %d times, want once", n, got)
		}
		read(t, c, "u1") // and the row was kept
		if got := h.reads.Load(); got != 1 {
			t.Fatalf("the shared read's row was not kept: %d reads", got)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		c, h, _ := setupHeld(t, nil) // no row: not found is shared too
		_, errs, wait := burst(c, n, func(int) context.Context { return t.Context() })
		close(h.release)
		wait()
		for i := range n {
			if !errors.Is(errs[i], domain.ErrNotFound) {
				t.Fatalf("read %d of a missing row: %v", i, errs[i])
			}
		}
		if got := h.reads.Load(); got != 1 {
			t.Fatalf("%d concurrent misses of a missing row read the database %d times, want once", n, got)
		}
	})
}

// TestSharedReadRacingAChange: a change heard while a shared read was under
// way may have committed before a joining caller's read began, so every
// caller but the one that started the read reads again, alone, and sees
// the change; the row read before it is not kept.
func TestSharedReadRacingAChange(t *testing.T) {
	t.Parallel()
	const n = 10
	for name, change := range map[string]func(c *readcache.Repository){
		"TokensChanged":    func(c *readcache.Repository) { c.TokensChanged("u1", "github", 2) },
		"AllTokensChanged": func(c *readcache.Repository) { c.AllTokensChanged() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				c, h, mem := setupHeld(t, nil)
				if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "old")); err != nil {
					t.Fatal(err)
				}
				answers, errs, wait := burst(c, n, func(int) context.Context { return t.Context() })
				if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "new")); err != nil {
					t.Fatal(err)
				}
				change(c)
				close(h.release)
				wait()
				if errs[0] != nil || answers[0] != "old" {
					t.Fatalf("the caller that started the read answers what it read: %q, %v", answers[0], errs[0])
				}
				for i := 1; i < n; i++ {
					if errs[i] != nil || answers[i] != "new" {
						t.Fatalf("joining read %d took a row read before a change it may have followed: %q, %v", i, answers[i], errs[i])
					}
				}
				if got := read(t, c, "u1"); string(got.AccessToken) != "new" {
					t.Fatalf("a row read before a change outlived it: %q", got.AccessToken)
				}
			})
		})
	}
}

// TestSharedReadOutlivesItsCaller: a caller whose ctx ends stops waiting
// with its ctx's error, and the read it shares goes on for the others, even
// when it is the caller that started it.
func TestSharedReadOutlivesItsCaller(t *testing.T) {
	t.Parallel()
	const n = 5
	for _, leaving := range []int{0, 3} {
		synctest.Test(t, func(t *testing.T) {
			c, h, mem := setupHeld(t, nil)
			if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "a")); err != nil {
				t.Fatal(err)
			}
			gone, leave := context.WithCancel(t.Context())
			answers, errs, wait := burst(c, n, func(i int) context.Context {
				if i == leaving {
					return gone
				}
				return t.Context()
			})
			leave()
			synctest.Wait()
			close(h.release)
			wait()
			for i := range n {
				if i == leaving {
					if !errors.Is(errs[i], context.Canceled) {
						t.Fatalf("caller %d, whose ctx ended, got %q, %v", i, answers[i], errs[i])
					}
					continue
				}
				if errs[i] != nil || answers[i] != "a" {
					t.Fatalf("read %d after caller %d left: %q, %v", i, leaving, answers[i], errs[i])
				}
			}
			if got := h.reads.Load(); got != 1 {
				t.Fatalf("%d reads, want the one shared", got)
			}
		})
	}
}

// TestSharedReadNeedsAProof: a miss reads the database without waiting for
// a proof, but a caller that joins another's read takes its answer only
// with a proof of its own (the shared read may have begun before a change
// this caller must see); without one it reads alone.
func TestSharedReadNeedsAProof(t *testing.T) {
	t.Parallel()
	const n = 5
	synctest.Test(t, func(t *testing.T) {
		c, h, mem := setupHeld(t, &barrier{err: errors.New("not listening")})
		if _, err := mem.PutAuthTokens(t.Context(), row("u1", "github", "a")); err != nil {
			t.Fatal(err)
		}
		answers, errs, wait := burst(c, n, func(int) context.Context { return t.Context() })
		close(h.release)
		wait()
		allAnswered(t, answers, errs, "a")
		if got := h.reads.Load(); got != n {
			t.Fatalf("without proofs, %d reads reached the database, want %d (each joining caller alone)", got, n)
		}
		if s := c.Stats(); s.Misses != 1 || s.Bypasses != n-1 || s.Shared != 0 {
			t.Fatalf("stats %+v, want 1 miss and %d bypasses", s, n-1)
		}
	})
}

// panicking is a repository whose reads panic.
type panicking struct{ ports.TokenRepository }

func (panicking) GetAuthTokens(context.Context, domain.UserID, domain.Provider) (domain.SealedAuthTokens, error) {
	panic("the driver broke")
}

// TestPanickingReadFailsItsCallers: a read that panics fails its callers
// with an error (their request's recovery answers it) instead of crashing
// the process from the shared read's own goroutine.
func TestPanickingReadFailsItsCallers(t *testing.T) {
	t.Parallel()
	c := readcache.New(panicking{memrepo.New()}, &barrier{}, readcache.Options{})
	if _, err := c.ServableAuthTokens(t.Context(), "u1", "github"); err == nil {
		t.Fatal("a panicking read answered no error")
	}
}
