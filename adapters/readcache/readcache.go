// Package readcache keeps recently read sealed rows in memory in front of a
// ports.TokenRepository, so a read can skip the database, and keeps them
// exact with the database's change notifications (it is the
// ports.TokenChangeSink a postgres.ChangeListener reports to).
//
// What it holds: sealed rows only (ciphertexts, expiries, refresh state),
// never plaintext, at most Options.MaxRows of them (evicted by
// maypok86/otter's adaptive W-TinyLFU policy).
//
// When it answers from memory: only once the listener proves that every
// change committed before the read began has been heard and applied
// (ports.ChangeBarrier.Sync: a probe sent through the database comes back
// on the listening connection; concurrent reads share probes). So a read
// from memory is as fresh as a read from the database made when the read
// began, on every instance: a change committed anywhere before a read
// starts is never missed. Without a listener (not yet connected, or lost),
// or when the proof does not come within Options.SyncTimeout, the read
// goes to the database and nothing it reads is kept; a lost listener or a
// late proof drops every row (and after a late proof, reads go to the
// database without waiting for a second).
//
// Reads that race changes. A fill (a miss read from the database, then
// kept) is kept only if no change to its key, nor a drop of everything,
// was heard between the read's start and the keeping: each key hashes to
// one of 256 stripes whose counter every change to any of its keys bumps,
// and the fill compares its stripe's counter before and after (under the
// lock changes take), so a row read before a change can never outlive it.
// Writes made through this repository drop their key when they return,
// whatever their outcome.
//
// Concurrent misses of one row share one database read (singleflight): a
// hot row that has just changed costs one read, not one per waiting caller
// (a refresh storm's hundreds of callers on one expired token). A caller
// takes the shared read's answer only when no change to its key was heard
// since that read began: any change committed before the caller's own read
// began was heard before its proof returned, so what it takes is as fresh as
// a read of its own; otherwise it reads alone.
//
// The decorator is written by hand around the cache library because the
// exactness rules (the fill guard, answering only while caught up) are the
// product's own; the eviction policy and storage are otter's.
package readcache

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// DefaultMaxRows is Options.MaxRows's default.
const DefaultMaxRows = 100_000

// DefaultSyncTimeout is Options.SyncTimeout's default.
const DefaultSyncTimeout = 250 * time.Millisecond

// Options tune a Repository.
type Options struct {
	// MaxRows bounds how many rows are kept (auth tokens and offline tokens
	// together). Zero means DefaultMaxRows.
	MaxRows int
	// SyncTimeout is the barrier's (the listener's
	// ListenerOptions.SyncTimeout, past which Sync fails with
	// ports.ErrSyncLate): here it names the setting in the log and sizes
	// the wait of a read whose own deadline is near. Zero means
	// DefaultSyncTimeout.
	SyncTimeout time.Duration
	// Log hears when the cache turns off and on again because proofs are
	// late; nil discards it.
	Log *slog.Logger
}

// key names a cached row: an auth tokens row (provider set) or an offline
// token (provider "").
type key struct {
	user     domain.UserID
	provider domain.Provider
}

// entry is a cached row: exactly one of the two is set.
type entry struct {
	auth    *domain.SealedAuthTokens
	offline *domain.SealedOfflineToken
}

const stripes = 256

// Repository is a ports.TokenRepository that answers GetAuthTokens and
// GetOfflineToken from memory when it may (see the package
// documentation) and passes everything else to the repository it wraps.
// It is also the ports.TokenChangeSink that keeps it exact.
type Repository struct {
	next        ports.TokenRepository
	barrier     ports.ChangeBarrier
	rows        *otter.Cache[key, entry]
	syncTimeout time.Duration
	seed        maphash.Seed
	log         *slog.Logger
	// lateUntil (Unix nanoseconds) is set a second ahead by a late proof:
	// until then reads go to the database at once, without waiting for
	// proofs; the first read after it tries again.
	lateUntil atomic.Int64
	late      atomic.Bool // a late proof turned the cache off, and none has come in time since

	// mu orders changes against fills: a change bumps its stripe and drops
	// its key under mu; a fill compares the stripe and keeps its row under
	// mu. Reads of kept rows take no lock.
	mu      sync.Mutex
	gens    [stripes]atomic.Uint64
	epoch   atomic.Uint64         // bumped by every drop of everything
	waiters map[key]chan struct{} // closed at the key's next change

	flight singleflight.Group // concurrent misses of one key share one read (fill)

	hits, misses, shared, bypasses atomic.Uint64
	changes, drops, lates          atomic.Uint64
}

var (
	_ ports.TokenRepository = (*Repository)(nil)
	_ ports.TokenChangeSink = (*Repository)(nil)
)

// New returns a cache in front of next whose reads from memory wait for
// barrier's proof (the listener that reports to the cache).
func New(next ports.TokenRepository, barrier ports.ChangeBarrier, opts Options) *Repository {
	maxRows := opts.MaxRows
	if maxRows <= 0 {
		maxRows = DefaultMaxRows
	}
	r := &Repository{
		next:        next,
		barrier:     barrier,
		rows:        otter.Must(&otter.Options[key, entry]{MaximumSize: maxRows}),
		syncTimeout: opts.SyncTimeout,
		seed:        maphash.MakeSeed(),

		waiters: map[key]chan struct{}{},
	}
	if r.syncTimeout <= 0 {
		r.syncTimeout = DefaultSyncTimeout
	}
	r.log = opts.Log
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r
}

// Stats are the cache's counters since New, for metrics.
type Stats struct {
	// Hits, Misses: reads answered from memory, and reads that went to the
	// database and may have kept their row. Shared: reads that missed and
	// took the answer of another caller's read of the same row, under way
	// when they missed. Bypasses: reads that went to the database because
	// no listener proved the cache up to date (none listens, or the proof
	// was late: Late counts those).
	Hits, Misses, Shared, Bypasses, Late uint64
	// Changes: change notifications heard (and local writes); Drops: times
	// every row was dropped (a bulk change, a lost or lagging listener).
	Changes, Drops uint64
	// Rows: rows kept now (otter's estimate).
	Rows int
	// Waiting: rows a caller waits to hear change (AuthTokensChanged): a
	// wait for another instance's refresh.
	Waiting int
}

// Stats returns the counters.
func (r *Repository) Stats() Stats {
	r.mu.Lock()
	waiting := len(r.waiters)
	r.mu.Unlock()
	return Stats{Waiting: waiting,
		Hits: r.hits.Load(), Misses: r.misses.Load(), Shared: r.shared.Load(), Bypasses: r.bypasses.Load(), Late: r.lates.Load(),
		Changes: r.changes.Load(), Drops: r.drops.Load(),
		Rows: r.rows.EstimatedSize(),
	}
}

// synced waits for the barrier's proof (the barrier fails it with
// ports.ErrSyncLate past its SyncTimeout; a read whose own deadline is
// nearer waits at most half its remaining time, so a read is never failed
// by its wait for a proof). A late proof drops every row and turns the
// cache off for a second: reads go to the database without waiting, then
// the next read tries again.
func (r *Repository) synced(ctx context.Context) bool {
	now := time.Now()
	if now.UnixNano() < r.lateUntil.Load() {
		return false
	}
	var err error
	if deadline, ok := ctx.Deadline(); ok && deadline.Sub(now) < 2*r.syncTimeout {
		sctx, cancel := context.WithTimeout(ctx, deadline.Sub(now)/2)
		err = r.barrier.Sync(sctx)
		cancel()
	} else {
		err = r.barrier.Sync(ctx)
	}
	switch {
	case err == nil:
		if r.late.Load() && r.late.CompareAndSwap(true, false) {
			r.log.Info("read cache on: proofs come back in time again")
		}
		return true
	case !errors.Is(err, ports.ErrSyncLate):
		return false // the caller's own time, or nobody listens: nothing to learn
	}
	prev := r.lateUntil.Load()
	if prev < now.UnixNano() && r.lateUntil.CompareAndSwap(prev, now.Add(time.Second).UnixNano()) {
		r.lates.Add(1)
		r.dropAll()
		if r.late.CompareAndSwap(false, true) {
			r.log.Warn("read cache off: the proof that every change was heard came later than read_cache.sync_timeout "+
				"(the listener lags, or database.url goes through a pooler in transaction mode and database.direct_url is not set); "+
				"reads go to the database, and try again every second", "sync_timeout", r.syncTimeout.String())
		}
	}
	return false
}

// stripe is the counter of k's stripe.
func (r *Repository) stripe(k key) *atomic.Uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.WriteString(string(k.user))
	h.WriteByte(0)
	h.WriteString(string(k.provider))
	return &r.gens[h.Sum64()%stripes]
}

// get answers k from memory once synced, else loads it and keeps it when
// no change to its stripe was heard meanwhile.
func (r *Repository) get(ctx context.Context, k key, load func(context.Context) (entry, error)) (entry, error) {
	if !r.synced(ctx) {
		r.bypasses.Add(1)
		return load(ctx)
	}
	if e, ok := r.rows.GetIfPresent(k); ok {
		r.hits.Add(1)
		return e, nil
	}
	return r.fill(ctx, k, load)
}

// filled is the outcome of a shared read, and the counters it began at.
type filled struct {
	e             entry
	err           error
	before, epoch uint64
}

// fill reads k from the database once for every concurrent miss of it and
// keeps the row when no change to k's stripe, nor a drop of everything, was
// heard while it was read. The caller that started the read takes its
// answer (a row or an error: its read began before the shared one); every
// other caller takes it only if nothing was heard since the shared read
// began (see the package documentation), and reads alone otherwise. The shared read does not end
// with the caller that started it (the repository bounds its own
// statements); each caller stops waiting when its own ctx ends.
func (r *Repository) fill(ctx context.Context, k key, load func(context.Context) (entry, error)) (entry, error) {
	gen := r.stripe(k)
	led := false // this caller's function read (written before the answer is sent)
	shared := r.flight.DoChan(string(k.user)+"\x00"+string(k.provider), func() (any, error) {
		led = true
		f := filled{before: gen.Load(), epoch: r.epoch.Load()}
		f.e, f.err = load(context.WithoutCancel(ctx))
		if f.err == nil {
			r.mu.Lock()
			if gen.Load() == f.before && r.epoch.Load() == f.epoch {
				r.rows.Set(k, f.e)
			}
			r.mu.Unlock()
		}
		return f, nil
	})
	select {
	case res := <-shared:
		f := res.Val.(filled)
		switch {
		case led:
			r.misses.Add(1)
		case gen.Load() != f.before || r.epoch.Load() != f.epoch:
			// A change was heard since the shared read began: it may have
			// committed before this caller's read began. Read alone.
			r.misses.Add(1)
			return load(ctx)
		default:
			r.shared.Add(1)
		}
		return f.e, f.err
	case <-ctx.Done():
		return entry{}, ctx.Err()
	}
}

// forget drops k and bumps its stripe, so no fill that started before
// keeps a row.
func (r *Repository) forget(k key) {
	r.mu.Lock()
	r.stripe(k).Add(1)
	r.rows.Invalidate(k)
	if w, ok := r.waiters[k]; ok {
		close(w)
		delete(r.waiters, k)
	}
	r.mu.Unlock()
}

// dropAll drops every row; no fill that started before keeps one.
func (r *Repository) dropAll() {
	r.mu.Lock()
	r.epoch.Add(1)
	r.rows.InvalidateAll()
	for k, w := range r.waiters {
		close(w)
		delete(r.waiters, k)
	}
	r.mu.Unlock()
	r.drops.Add(1)
}

// TokensChanged implements ports.TokenChangeSink.
func (r *Repository) TokensChanged(user domain.UserID, provider domain.Provider, _ int64) {
	r.changes.Add(1)
	r.forget(key{user, provider})
}

// AllTokensChanged implements ports.TokenChangeSink.
func (r *Repository) AllTokensChanged() { r.dropAll() }

// Disconnected implements ports.TokenChangeSink: every row is dropped
// (reads go to the database until the listener is back: Sync fails).
func (r *Repository) Disconnected() { r.dropAll() }

// ForgetAuthTokens drops the kept row of user's tokens for provider, so the
// next read goes to the database: the token service calls it before acting
// on a row the refresh rule would not serve as it is (a cached row is
// answered only when it would be served).
func (r *Repository) ForgetAuthTokens(user domain.UserID, provider domain.Provider) {
	r.forget(key{user, provider})
}

// AuthTokensChanged implements ports.ReadCache: the channel is closed by
// the next change heard to the row (a notification or a local write), by a
// change to every row, or by Disconnected.
func (r *Repository) AuthTokensChanged(user domain.UserID, provider domain.Provider) <-chan struct{} {
	k := key{user, provider}
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.waiters[k]
	if !ok {
		w = make(chan struct{})
		r.waiters[k] = w
	}
	return w
}

// GetAuthTokens implements ports.TokenRepository. The returned row's byte
// slices are shared with the cache: callers must not modify them.
func (r *Repository) GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error) {
	e, err := r.get(ctx, key{user, provider}, func(ctx context.Context) (entry, error) {
		row, err := r.next.GetAuthTokens(ctx, user, provider)
		return entry{auth: &row}, err
	})
	if err != nil {
		return domain.SealedAuthTokens{}, err
	}
	return *e.auth, nil
}

// GetOfflineToken implements ports.TokenRepository (shared slices, as
// GetAuthTokens).
func (r *Repository) GetOfflineToken(ctx context.Context, user domain.UserID) (domain.SealedOfflineToken, error) {
	e, err := r.get(ctx, key{user, ""}, func(ctx context.Context) (entry, error) {
		row, err := r.next.GetOfflineToken(ctx, user)
		return entry{offline: &row}, err
	})
	if err != nil {
		return domain.SealedOfflineToken{}, err
	}
	return *e.offline, nil
}

// PutAuthTokens implements ports.TokenRepository.
func (r *Repository) PutAuthTokens(ctx context.Context, t domain.SealedAuthTokens, audit ...domain.AuditEvent) (domain.SealedAuthTokens, error) {
	defer r.forget(key{t.User, t.Provider})
	return r.next.PutAuthTokens(ctx, t, audit...)
}

// UpdateAuthTokens implements ports.TokenRepository.
func (r *Repository) UpdateAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider,
	fn func(current domain.SealedAuthTokens, now time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error)) (domain.SealedAuthTokens, error) {
	defer r.forget(key{user, provider})
	return r.next.UpdateAuthTokens(ctx, user, provider, fn)
}

// DeleteAuthTokens implements ports.TokenRepository.
func (r *Repository) DeleteAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error {
	defer r.forget(key{user, provider})
	return r.next.DeleteAuthTokens(ctx, user, provider, audit...)
}

// DeleteAuthTokensRevoking implements ports.TokenRepository.
func (r *Repository) DeleteAuthTokensRevoking(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error {
	defer r.forget(key{user, provider})
	return r.next.DeleteAuthTokensRevoking(ctx, user, provider, audit...)
}

// ListProviders implements ports.TokenRepository (always from the
// database).
func (r *Repository) ListProviders(ctx context.Context, user domain.UserID) ([]domain.ProviderTokenInfo, error) {
	return r.next.ListProviders(ctx, user)
}

// PutOfflineToken implements ports.TokenRepository.
func (r *Repository) PutOfflineToken(ctx context.Context, t domain.SealedOfflineToken, audit ...domain.AuditEvent) (domain.SealedOfflineToken, error) {
	defer r.forget(key{t.User, ""})
	return r.next.PutOfflineToken(ctx, t, audit...)
}

// DeleteOfflineToken implements ports.TokenRepository.
func (r *Repository) DeleteOfflineToken(ctx context.Context, user domain.UserID, audit ...domain.AuditEvent) error {
	defer r.forget(key{user, ""})
	return r.next.DeleteOfflineToken(ctx, user, audit...)
}
