// Package readcache keeps recently read sealed rows in memory in front of a
// ports.TokenRepository, so a read can skip the database, and keeps them
// exact with the database's change notifications (it is the
// ports.TokenChangeSink a postgres.ChangeListener reports to).
//
// What it holds: at most Options.MaxRows rows (evicted by maypok86/otter's
// adaptive W-TinyLFU policy), never plaintext. Of an auth tokens row it
// keeps only the part serving its access token reads
// (domain.ServableAuthTokens, answered by ServableAuthTokens, which the
// token service uses to serve a row the refresh rule serves as it is), in a
// compact form: the access token's ciphertext (base64-decoded when it is
// canonical URL-safe base64, as Fernet tokens are, and encoded again on
// each answer), interned key ids and provider names, instants as
// nanoseconds, and no refresh token. GetAuthTokens answers the whole row,
// always from the database. An offline token is kept with all its fields
// (GetOfflineToken answers the whole row), in the same compact form.
//
// When it answers from memory: only once the listener proves that every
// change committed before the read began has been heard and applied
// (ports.ChangeBarrier.Sync: a probe sent through the database comes back
// on the listening connection; concurrent reads share probes). So a read
// from memory is as fresh as a read from the database made when the read
// began, on every instance: a change committed anywhere before a read
// starts is never missed. Without a listener (not yet connected, or lost),
// or when the proof does not come within Options.SyncTimeout, a read of a
// kept row goes to the database; a lost listener or a late proof drops
// every row (and after a late proof, reads go to the database without
// waiting for a second). A miss reads the database at once, without
// waiting for a proof (its read is as fresh as any), and keeps what it
// read under the fill guard below, listener or not: a row kept while
// nobody listened is never answered, because a listener that starts or
// comes back drops every row (AllTokensChanged) before its first proof.
//
// A row under a refresh lease is not kept (it changes again when the
// lease ends), nor a row with an instant outside what int64 nanoseconds
// hold (years 1678 to 2262): both are read from the database each time.
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
// that joins a read another caller started takes its answer only with a
// proof of its own and when no change to its key was heard since that read
// began: any change committed before the caller's own read began was heard
// before its proof returned, so what it takes is as fresh as a read of its
// own; otherwise it reads alone.
//
// The decorator is written by hand around the cache library because the
// exactness rules (the fill guard, answering only while caught up) are the
// product's own; the eviction policy and storage are otter's.
package readcache

import (
	"context"
	"encoding/base64"
	"errors"
	"hash/maphash"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unique"

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

// entry is a kept row in compact form, the key giving its user and
// provider: the servable part of an auth tokens row
// (domain.ServableAuthTokens) without a lease (rows under a lease are not
// kept), or an offline token (domain.SealedOfflineToken). It is a value in
// otter's node (no pointer to it): 72 bytes, with the node's header and
// the key 128, one of Go's size classes.
type entry struct {
	// data is the ciphertext (the access token's, or the offline
	// token's): base64-decoded when flags has rawData (it was canonical
	// padded URL-safe base64, as Fernet tokens are), else as stored. It
	// shares its allocation with the key's user id (see keep).
	data  string
	keyID unique.Handle[domain.KeyID] // interned: a few keys seal every row
	// at are instants (see instant): for auth tokens AccessExpiry and
	// RefreshExpiry (see expiry), AccessObtainedAt and NextAttemptAt; for
	// an offline token CreatedAt and UpdatedAt. version is Version.
	at      [4]int64
	version int64
	flags   uint8
}

// entry.at's slots.
const (
	atAccessExpiry = iota
	atRefreshExpiry
	atObtained
	atNextAttempt
)
const (
	atCreated = iota
	atUpdated
)

// entry.flags.
const (
	rawData uint8 = 1 << iota
	hasRefreshToken
	reauthRequired
	outcomeUnknown
)

// Instants are kept as Unix nanoseconds; zeroInstant stands for the zero
// time.Time and neverInstant for domain.Never(). An instant that is
// neither and cannot be held exactly is not kept (the row is not cached).
const (
	zeroInstant  = math.MinInt64
	neverInstant = math.MaxInt64
)

// instant is t in Unix nanoseconds, and false when that cannot hold t
// exactly (outside years 1678 to 2262, or one of the sentinels).
func instant(t time.Time) (int64, bool) {
	if t.IsZero() {
		return zeroInstant, true
	}
	n := t.UnixNano()
	return n, n != zeroInstant && n != neverInstant && time.Unix(0, n).Equal(t)
}

// timeOf is instant's inverse (in the local zone, as pgx reads times).
func timeOf(n int64) time.Time {
	if n == zeroInstant {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// expiry is e as an instant (neverInstant for Never).
func expiry(e domain.Expiry) (int64, bool) {
	t, ok := e.Time()
	if !ok {
		return neverInstant, true
	}
	return instant(t)
}

// expiryOf is expiry's inverse.
func expiryOf(n int64) domain.Expiry {
	if n == neverInstant {
		return domain.Never()
	}
	return domain.At(timeOf(n))
}

// keep sets e.data to ciphertext (raw when it is canonical URL-safe
// base64) and returns the key e is kept under: its user id and e.data
// share one allocation, the key's own (the caller's user id may be part of
// a larger buffer, a request's path, that keeping it would hold).
func (e *entry) keep(user domain.UserID, provider domain.Provider, ciphertext []byte) key {
	// Decoded on the stack when small (as every token is): a passing heap
	// buffer beside each kept string would leave its span half empty.
	var buf [512]byte
	raw := buf[:0]
	if n := base64.URLEncoding.DecodedLen(len(ciphertext)); n > len(buf) {
		raw = make([]byte, 0, n)
	}
	var both string
	if raw, err := base64.URLEncoding.Strict().AppendDecode(raw, ciphertext); err == nil &&
		base64.URLEncoding.EncodedLen(len(raw)) == len(ciphertext) {
		// Strict and of the exact encoded length (no skipped newlines):
		// encoding raw again gives ciphertext byte for byte.
		both = string(user) + string(raw)
		e.flags |= rawData
	} else {
		both = string(user) + string(ciphertext)
	}
	e.data = both[len(user):]
	return key{user: domain.UserID(both[:len(user)]), provider: unique.Make(provider).Value()}
}

// ciphertext is e.data as stored: a new buffer.
func (e entry) ciphertext() []byte {
	if e.flags&rawData != 0 {
		return base64.URLEncoding.AppendEncode(nil, []byte(e.data))
	}
	return []byte(e.data)
}

// compact is the entry that keeps t and the key it is kept under, and
// false when t is not kept: it is under a lease, or one of its instants
// cannot be held exactly. A LeaseUntil without a LeaseOwner is read by
// nothing (domain.RefreshState.Leased, LeaseLapsed) and not kept.
func compact(t domain.ServableAuthTokens) (key, entry, bool) {
	if t.LeaseOwner != "" {
		return key{}, entry{}, false
	}
	e := entry{keyID: unique.Make(t.KeyID), version: t.Version}
	var ok [4]bool
	e.at[atAccessExpiry], ok[0] = expiry(t.AccessExpiry)
	e.at[atRefreshExpiry], ok[1] = expiry(t.RefreshExpiry)
	e.at[atObtained], ok[2] = instant(t.AccessObtainedAt)
	e.at[atNextAttempt], ok[3] = instant(t.NextAttemptAt)
	if ok != [4]bool{true, true, true, true} {
		return key{}, entry{}, false
	}
	if t.HasRefreshToken {
		e.flags |= hasRefreshToken
	}
	if t.ReauthRequired {
		e.flags |= reauthRequired
	}
	if t.OutcomeUnknown {
		e.flags |= outcomeUnknown
	}
	return e.keep(t.User, t.Provider, t.AccessToken), e, true
}

// servable is compact's inverse for the row of user's tokens for provider;
// the AccessToken is a new buffer.
func (e entry) servable(user domain.UserID, provider domain.Provider) domain.ServableAuthTokens {
	return domain.ServableAuthTokens{
		User: user, Provider: provider, KeyID: e.keyID.Value(), AccessToken: e.ciphertext(),
		AccessExpiry: expiryOf(e.at[atAccessExpiry]), RefreshExpiry: expiryOf(e.at[atRefreshExpiry]),
		AccessObtainedAt: timeOf(e.at[atObtained]), NextAttemptAt: timeOf(e.at[atNextAttempt]),
		HasRefreshToken: e.flags&hasRefreshToken != 0, ReauthRequired: e.flags&reauthRequired != 0,
		OutcomeUnknown: e.flags&outcomeUnknown != 0, Version: e.version,
	}
}

// compactOffline is the entry that keeps t and the key it is kept under,
// and false when one of its instants cannot be held exactly.
func compactOffline(t domain.SealedOfflineToken) (key, entry, bool) {
	e := entry{keyID: unique.Make(t.KeyID), version: t.Version}
	var ok [2]bool
	e.at[atCreated], ok[0] = instant(t.CreatedAt)
	e.at[atUpdated], ok[1] = instant(t.UpdatedAt)
	if ok != [2]bool{true, true} {
		return key{}, entry{}, false
	}
	return e.keep(t.User, "", t.Token), e, true
}

// offline is compactOffline's inverse for user's offline token; the Token
// is a new buffer.
func (e entry) offline(user domain.UserID) domain.SealedOfflineToken {
	return domain.SealedOfflineToken{User: user, KeyID: e.keyID.Value(), Token: e.ciphertext(),
		Version: e.version, CreatedAt: timeOf(e.at[atCreated]), UpdatedAt: timeOf(e.at[atUpdated])}
}

const stripes = 256

// Repository is a ports.TokenRepository and ports.ReadCache that answers
// ServableAuthTokens and GetOfflineToken from memory when it may (see the
// package documentation) and passes everything else to the repository it
// wraps. It is also the ports.TokenChangeSink that keeps it exact.
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
	epoch   atomic.Uint64   // bumped by every drop of everything
	waiters map[key]*waiter // the waits on a key's next change

	flight singleflight.Group // concurrent misses of one key share one read (fill)

	hits, misses, shared, bypasses atomic.Uint64
	changes, drops, lates          atomic.Uint64
}

var (
	_ ports.TokenRepository = (*Repository)(nil)
	_ ports.TokenChangeSink = (*Repository)(nil)
	_ ports.ReadCache       = (*Repository)(nil)
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

		waiters: map[key]*waiter{},
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

// loaded is what one read of the database gives: the answer for every
// caller that shares it, and the compact entry to keep under kept (keep
// false: nothing to keep).
type loaded[T any] struct {
	answer T
	kept   key
	e      entry
	keep   bool
}

// get answers k from memory (fromEntry) when it is kept and synced, else
// from load, which reads the database; see fill for misses.
func get[T any](r *Repository, ctx context.Context, k key, load func(context.Context) (loaded[T], error), fromEntry func(entry) T) (T, error) {
	if _, ok := r.rows.GetIfPresent(k); !ok {
		return fill(r, ctx, k, load, false)
	}
	if !r.synced(ctx) {
		r.bypasses.Add(1)
		l, err := load(ctx)
		return l.answer, err
	}
	if e, ok := r.rows.GetIfPresent(k); ok {
		r.hits.Add(1)
		return fromEntry(e), nil
	}
	return fill(r, ctx, k, load, true) // dropped by a change heard meanwhile
}

// errLoadPanicked fails the callers of a shared read that panicked.
var errLoadPanicked = errors.New("read cache: the database read panicked")

// flightKey names k's shared read: injective (the user id's length first,
// so no user id and provider can pass for another pair), and an offline
// token (provider "") never shares a name with auth tokens, whose answer
// is of another type.
func (k key) flightKey() string {
	return strconv.Itoa(len(k.user)) + ":" + string(k.user) + "/" + string(k.provider)
}

// filled is the outcome of a shared read, and the counters it began at.
type filled[T any] struct {
	l             loaded[T]
	err           error
	before, epoch uint64
}

// fill reads k from the database once for every concurrent miss of it and
// keeps what the read gives to keep when no change to k's stripe, nor a
// drop of everything, was heard while it was read. The caller that
// started the read takes its answer (a row or an error: the read began
// after the caller did). Every other caller takes it only once it holds a
// proof (proven: it was asked for before; else it asks now) and nothing
// was heard since the shared read began (see the package documentation),
// and reads alone otherwise. The shared read does not end with the caller
// that started it (the repository bounds its own statements); each caller
// stops waiting when its own ctx ends.
func fill[T any](r *Repository, ctx context.Context, k key, load func(context.Context) (loaded[T], error), proven bool) (T, error) {
	gen := r.stripe(k)
	led := false // this caller's function read (written before the answer is sent)
	shared := r.flight.DoChan(k.flightKey(), func() (out any, _ error) {
		led = true
		f := filled[T]{before: gen.Load(), epoch: r.epoch.Load()}
		defer func() {
			// singleflight re-panics a panicking function in a goroutine of
			// its own, out of reach of the request's recovery: a panic in the
			// read fails its callers instead (its value is not kept: it
			// could hold anything).
			if recover() != nil {
				out = filled[T]{err: errLoadPanicked, before: f.before, epoch: f.epoch}
			}
		}()
		f.l, f.err = load(context.WithoutCancel(ctx))
		if f.err == nil && f.l.keep && f.l.kept == k {
			r.mu.Lock()
			if gen.Load() == f.before && r.epoch.Load() == f.epoch {
				r.rows.Set(f.l.kept, f.l.e)
			}
			r.mu.Unlock()
		}
		return f, nil
	})
	select {
	case res := <-shared:
		f := res.Val.(filled[T])
		switch {
		case led:
			r.misses.Add(1)
		case !proven && !r.synced(ctx):
			r.bypasses.Add(1)
			l, err := load(ctx)
			return l.answer, err
		case gen.Load() != f.before || r.epoch.Load() != f.epoch:
			// A change was heard since the shared read began: it may have
			// committed before this caller's read began. Read alone.
			r.misses.Add(1)
			l, err := load(ctx)
			return l.answer, err
		default:
			r.shared.Add(1)
		}
		return f.l.answer, f.err
	case <-ctx.Done():
		var none T
		return none, ctx.Err()
	}
}

// forget drops k and bumps its stripe, so no fill that started before
// keeps a row.
func (r *Repository) forget(k key) {
	r.mu.Lock()
	r.stripe(k).Add(1)
	r.rows.Invalidate(k)
	if w, ok := r.waiters[k]; ok {
		close(w.changed)
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
		close(w.changed)
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

// waiter is the waits on one key's next change: changed closes at it;
// n callers wait (AuthTokensChanged and its stop).
type waiter struct {
	changed chan struct{}
	n       int
}

// AuthTokensChanged implements ports.ReadCache: the channel is closed by
// the next change heard to the row (a notification or a local write), by a
// change to every row, or by Disconnected. Concurrent waits on one row
// share a channel; stop ends the caller's wait, and the last stop of a
// row's waits before its change forgets it (Stats.Waiting counts rows with
// a wait under way only).
func (r *Repository) AuthTokensChanged(user domain.UserID, provider domain.Provider) (changed <-chan struct{}, stop func()) {
	k := key{user, provider}
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.waiters[k]
	if !ok {
		w = &waiter{changed: make(chan struct{})}
		r.waiters[k] = w
	}
	w.n++
	var once sync.Once
	return w.changed, func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if w.n--; w.n == 0 && r.waiters[k] == w {
				delete(r.waiters, k)
			}
		})
	}
}

// ServableAuthTokens implements ports.ReadCache: from memory when synced
// and kept, else from the database's whole row (keeping its compact form).
// Its byte slices may be shared with other callers: they must not be
// modified.
func (r *Repository) ServableAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.ServableAuthTokens, error) {
	return get(r, ctx, key{user, provider}, func(ctx context.Context) (loaded[domain.ServableAuthTokens], error) {
		row, err := r.next.GetAuthTokens(ctx, user, provider)
		if err != nil {
			return loaded[domain.ServableAuthTokens]{}, err
		}
		read := row.Servable()
		k, e, keep := compact(read)
		return loaded[domain.ServableAuthTokens]{read, k, e, keep}, nil
	}, func(e entry) domain.ServableAuthTokens { return e.servable(user, provider) })
}

// GetAuthTokens implements ports.TokenRepository: the whole row, always
// from the database (the cache keeps only the servable part).
func (r *Repository) GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error) {
	return r.next.GetAuthTokens(ctx, user, provider)
}

// GetOfflineToken implements ports.TokenRepository: from memory when
// synced and kept (in compact form, as auth tokens are), else from the
// database (keeping it). Its byte slices may be shared with other callers:
// they must not be modified.
func (r *Repository) GetOfflineToken(ctx context.Context, user domain.UserID) (domain.SealedOfflineToken, error) {
	return get(r, ctx, key{user, ""}, func(ctx context.Context) (loaded[domain.SealedOfflineToken], error) {
		row, err := r.next.GetOfflineToken(ctx, user)
		if err != nil {
			return loaded[domain.SealedOfflineToken]{}, err
		}
		k, e, keep := compactOffline(row)
		return loaded[domain.SealedOfflineToken]{row, k, e, keep}, nil
	}, func(e entry) domain.SealedOfflineToken { return e.offline(user) })
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
