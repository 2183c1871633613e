package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// AuditMode is how strictly the audit trail is kept (setting audit.mode).
type AuditMode string

// The audit modes.
const (
	// AuditFailClosed: a token is handed out only after its event is
	// committed, and a write commits its event in its own transaction; when
	// the audit store fails, the request fails (503) and no token leaves.
	AuditFailClosed AuditMode = "fail_closed"
	// AuditBestEffort: events are written in the background after the
	// answer; when the audit store fails, requests succeed and the events
	// are lost (logged and counted on /readyz).
	AuditBestEffort AuditMode = "best_effort"
	// AuditOff: no events.
	AuditOff AuditMode = "off"
)

// Defaults of AuditConfig.
const (
	DefaultAuditMaxBatch = 500
	DefaultAuditLinger   = 0
)

// AuditConfig tunes the Auditor. The zero value is fail-closed with the
// defaults.
type AuditConfig struct {
	// Mode: "" means AuditFailClosed.
	Mode AuditMode
	// Instance names this process in events (as in refresh leases);
	// default host-pid.
	Instance string
	// MaxBatch is the most events one insert writes; default
	// DefaultAuditMaxBatch.
	MaxBatch int
	// Linger is how long the batcher waits for more events after the first
	// before writing. Zero (the default) waits for none: events arriving
	// while one insert commits form the next batch, so batches grow with
	// the load and a lone read waits for no timer.
	Linger time.Duration
	// Observer is told of each batch written (size, latency, failure);
	// nil: NopObserver.
	Observer Observer
}

// Actor is who asks: the caller's name ("" for the service's own work) and
// the request id, carried in the context (WithActor) into audit events.
type Actor struct {
	Caller    string
	RequestID string
}

type actorKey struct{}

// WithActor returns ctx carrying a, for the audit events of the work done
// under it.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom is the Actor ctx carries (WithActor); the zero Actor (the
// service's own work) when none.
func ActorFrom(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	return a
}

// Auditor writes the audit trail: handed-out tokens through a batcher (one
// goroutine gathers concurrent reads' events into one multi-row insert and
// one commit and tells each waiter its own outcome), writes' events through
// the repository, in the write's own transaction. A nil *Auditor records
// nothing.
type Auditor struct {
	rec      ports.AuditRecorder
	mode     AuditMode
	instance string
	maxBatch int
	linger   time.Duration
	log      *slog.Logger
	obs      Observer

	start sync.Once
	reqs  chan auditRequest
	quit  chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	failures int64
	lastErr  string
	failing  bool
}

type auditRequest struct {
	event domain.AuditEvent
	done  chan error // buffered: the batcher never blocks on a waiter gone
}

// NewAuditor returns an Auditor writing to rec. log may be nil (discard).
func NewAuditor(cfg AuditConfig, log *slog.Logger, rec ports.AuditRecorder) *Auditor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Mode == "" {
		cfg.Mode = AuditFailClosed
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultAuditMaxBatch
	}
	if cfg.Instance == "" {
		cfg.Instance = RefreshConfig{}.withDefaults().Instance
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	return &Auditor{
		rec: rec, mode: cfg.Mode, instance: cfg.Instance, maxBatch: cfg.MaxBatch,
		linger: max(cfg.Linger, 0), log: log, obs: cfg.Observer,
		reqs: make(chan auditRequest, cfg.MaxBatch), quit: make(chan struct{}), done: make(chan struct{}),
	}
}

// Mode is the auditor's mode (AuditOff for a nil one).
func (a *Auditor) Mode() AuditMode {
	if a == nil {
		return AuditOff
	}
	return a.mode
}

// event is an event of the work done under ctx, with a success outcome.
// A nil auditor makes events with no instance (and stores none of them).
func (a *Auditor) event(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int) domain.AuditEvent {
	actor := ActorFrom(ctx)
	instance := ""
	if a != nil {
		instance = a.instance
	}
	return domain.AuditEvent{
		Instance: instance, Caller: actor.Caller, RequestID: actor.RequestID,
		Action: action, User: user, Provider: provider, Status: status,
	}
}

// outcome is event with an outcome code.
func (a *Auditor) outcome(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int, code string) domain.AuditEvent {
	e := a.event(ctx, action, user, provider, status)
	e.Code = code
	return e
}

// handout records that a token is about to be handed out. Fail-closed, it
// returns only once the event is committed, and an error wrapping
// domain.ErrStorageUnavailable when it could not be (the token must then
// not leave); best-effort, it queues the event and returns nil.
func (a *Auditor) handout(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider) error {
	if a.Mode() == AuditOff {
		return nil
	}
	req := auditRequest{event: a.event(ctx, action, user, provider, 200), done: make(chan error, 1)}
	if a.mode == AuditBestEffort {
		a.enqueue(req.event)
		return nil
	}
	a.start.Do(func() { go a.run() })
	select {
	case a.reqs <- req:
	case <-a.quit:
		return fmt.Errorf("%w: the audit trail is stopping; the token is not handed out", domain.ErrStorageUnavailable)
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the audit trail: %w", domain.ErrStorageUnavailable, ctx.Err())
	}
	select {
	case err := <-req.done:
		if err != nil {
			return fmt.Errorf("%w: the audit trail could not record this read, so the token is not handed out: %w",
				domain.ErrStorageUnavailable, err)
		}
		return nil
	case <-a.done: // stopped before writing this event
		return fmt.Errorf("%w: the audit trail is stopping; the token is not handed out", domain.ErrStorageUnavailable)
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the audit trail: %w", domain.ErrStorageUnavailable, ctx.Err())
	}
}

// write runs fn, a change whose one event is action on user's provider,
// answered status: fail-closed, fn gets the event to commit in the change's
// own transaction (and its outcome counts for /readyz); best-effort, the
// event is queued once fn succeeded; off, fn gets none.
func (a *Auditor) write(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int,
	fn func(events []domain.AuditEvent) error) error {
	if a.Mode() == AuditOff {
		return fn(nil)
	}
	e := a.event(ctx, action, user, provider, status)
	events := a.inTx(e)
	err := fn(events)
	a.committed(len(events), err)
	if err == nil {
		a.afterTx(e)
	}
	return err
}

// inTx returns the events of a change that commit in the change's own
// transaction: all of them fail-closed (the change fails if they cannot be
// stored), none otherwise (afterTx queues them once the change committed).
func (a *Auditor) inTx(events ...domain.AuditEvent) []domain.AuditEvent {
	if a.Mode() != AuditFailClosed {
		return nil
	}
	return events
}

// afterTx queues, best-effort, the events of a change that committed.
func (a *Auditor) afterTx(events ...domain.AuditEvent) {
	if a.Mode() != AuditBestEffort {
		return
	}
	for _, e := range events {
		a.enqueue(e)
	}
}

// committed reports the outcome of a change whose n events (inTx) rode in
// its transaction, for /readyz: the audit store refusing them
// (domain.ErrAuditUnavailable) counts as a failure, as a read's event
// does; a commit with events clears audit_failing.
func (a *Auditor) committed(n int, err error) {
	if a.Mode() != AuditFailClosed || n == 0 {
		return
	}
	switch {
	case err == nil:
		a.noteSuccess()
	case errors.Is(err, domain.ErrAuditUnavailable):
		a.noteFailure(int64(n), err)
	}
}

// enqueue queues e for the batcher without waiting for it; a full queue
// loses it (counted and logged).
func (a *Auditor) enqueue(e domain.AuditEvent) {
	a.start.Do(func() { go a.run() })
	select {
	case a.reqs <- auditRequest{event: e, done: make(chan error, 1)}:
	default:
		a.noteFailure(1, errors.New("the audit queue is full"))
	}
}

// RecordUnserved records a request that handed nothing out and changed
// nothing: refused at the edge (a 401 credential, a 403 permission or
// scope) or failed (a read that ends 404 not_found, 409 reauth_required or
// token_expired, 503 unavailable; a write refused as invalid or found
// nothing to delete), with its status and problem code, in every mode but
// off. It is queued, never waited for, even fail-closed: the trail exists
// so that no token leaves unrecorded, and none left here; waiting would
// only delay the answer, and let a flood of bad credentials or of reads of
// missing tokens queue requests behind the audit store. A full queue loses
// the event, counted on /readyz.
func (a *Auditor) RecordUnserved(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int, code string) {
	a.queue(a.outcome(ctx, action, clip(user, maxAuditName), clip(provider, maxAuditProvider), status, code))
}

// queue queues events for the batcher in every mode but off, without
// waiting: for what could not ride in a transaction (nothing was stored)
// and handed nothing out.
func (a *Auditor) queue(events ...domain.AuditEvent) {
	if a.Mode() == AuditOff {
		return
	}
	for _, e := range events {
		a.enqueue(e)
	}
}

// The longest user and provider an audit event stores (the table's
// checks, in characters). A request refused at the edge carries its path's
// values as sent, which the service never validated.
const (
	maxAuditName     = 255
	maxAuditProvider = 64
)

// clip makes s storable in an audit event's text column of max
// characters: invalid UTF-8 and NUL (which PostgreSQL's text refuses, and
// which would fail the whole batch the event shares with others) are
// replaced by U+FFFD, and a longer value is cut, ending in "…".
func clip[S ~string](s S, max int) S {
	t := strings.ToValidUTF8(string(s), "\uFFFD")
	t = strings.ReplaceAll(t, "\x00", "\uFFFD")
	if utf8.RuneCountInString(t) <= max {
		return S(t)
	}
	r := []rune(t)
	return S(string(r[:max-1]) + "…")
}

// run is the batcher: it takes the first waiting event, gathers what else
// is waiting (up to maxBatch, lingering if configured), writes them with one
// insert and one commit, and tells each waiter the outcome.
func (a *Auditor) run() {
	defer close(a.done)
	batch := make([]auditRequest, 0, a.maxBatch)
	events := make([]domain.AuditEvent, 0, a.maxBatch)
	for {
		batch, events = batch[:0], events[:0]
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
		case <-a.quit:
			return
		}
		batch = a.gather(batch)
		for _, r := range batch {
			events = append(events, r.event)
		}
		// Not one request's context: the batch serves many. The recorder
		// bounds the write with the database timeout; each waiter stops
		// waiting when its own request ends.
		began := time.Now()
		err := a.rec.RecordAuditEvents(context.Background(), events)
		a.obs.AuditWrite(len(events), time.Since(began), err)
		for _, r := range batch {
			r.done <- err
		}
		if err != nil {
			a.noteFailure(int64(len(events)), err)
		} else {
			a.noteSuccess()
		}
	}
}

func (a *Auditor) gather(batch []auditRequest) []auditRequest {
	var timeout <-chan time.Time
	if a.linger > 0 {
		t := time.NewTimer(a.linger)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < a.maxBatch {
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
			continue
		default:
		}
		if timeout == nil {
			return batch
		}
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
		case <-timeout:
			return batch
		}
	}
	return batch
}

func (a *Auditor) noteFailure(n int64, err error) {
	a.mu.Lock()
	first := !a.failing
	a.failures += n
	a.lastErr, a.failing = err.Error(), true
	a.mu.Unlock()
	if a.mode == AuditFailClosed {
		a.log.Error("the audit trail could not be written: tokens are not handed out (audit.mode fail_closed)",
			"events", n, "first_failure", first, "err", err)
	} else {
		a.log.Error("the audit trail could not be written: events lost (audit.mode best_effort)",
			"events", n, "first_failure", first, "err", err)
	}
}

func (a *Auditor) noteSuccess() {
	a.mu.Lock()
	recovered := a.failing
	a.failing = false
	a.mu.Unlock()
	if recovered {
		a.log.Info("the audit trail is written again")
	}
}

// Details reports the audit trail's state for /readyz: the mode, and once a
// write failed, how many events failed, the last error, and whether the
// last write failed (audit_failing; fail-closed, reads then answer 503).
func (a *Auditor) Details() map[string]any {
	if a == nil {
		return map[string]any{"audit_mode": string(AuditOff)}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	d := map[string]any{"audit_mode": string(a.mode)}
	if a.failures > 0 {
		d["audit_failed_events"], d["audit_last_error"], d["audit_failing"] = a.failures, a.lastErr, a.failing
	}
	return d
}

// Stop stops the batcher once the events it holds are written (waiters
// not yet taken are told the trail is stopping), or when ctx ends.
func (a *Auditor) Stop(ctx context.Context) error {
	if a == nil {
		return nil
	}
	started := true
	a.start.Do(func() { started = false })
	close(a.quit)
	if !started {
		close(a.done)
		return nil
	}
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
