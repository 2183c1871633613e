package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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

func actorFrom(ctx context.Context) Actor {
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
func (a *Auditor) event(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int) domain.AuditEvent {
	actor := actorFrom(ctx)
	return domain.AuditEvent{
		Instance: a.instance, Caller: actor.Caller, RequestID: actor.RequestID,
		Action: action, User: user, Provider: provider, Status: status,
	}
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

// forWrite returns the events a write commits in its own transaction
// (fail-closed: the write's event; otherwise none) and, best-effort, queues
// the event for the background instead.
func (a *Auditor) forWrite(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int) []domain.AuditEvent {
	switch a.Mode() {
	case AuditFailClosed:
		return []domain.AuditEvent{a.event(ctx, action, user, provider, status)}
	default:
		return nil
	}
}

// afterWrite queues a best-effort write's event once the write succeeded.
func (a *Auditor) afterWrite(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int) {
	if a.Mode() != AuditBestEffort {
		return
	}
	a.enqueue(a.event(ctx, action, user, provider, status))
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

// RecordRefusal records a request refused at the edge (a 401 credential,
// a 403 permission or scope), in every mode but off. It is queued, never
// waited for: a refusal hands nothing out, and a flood of bad credentials
// must not queue requests behind the audit store (a full queue loses
// events, counted on /readyz).
func (a *Auditor) RecordRefusal(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int, code string) {
	if a.Mode() == AuditOff {
		return
	}
	e := a.event(ctx, action, user, provider, status)
	e.Code = code
	a.enqueue(e)
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
