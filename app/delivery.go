package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Defaults of DeliveryConfig.
const (
	// DefaultDeliveryPoll is how often each target's loop looks for new
	// events and due deliveries when the last look found nothing to do.
	DefaultDeliveryPoll = time.Second
	// DefaultDeliveryConcurrency bounds the sends in flight per target and
	// instance: a slow receiver holds up only its own deliveries.
	DefaultDeliveryConcurrency = 4
	// DefaultDeliveryLeaseSlack is how much longer than a send's timeout a
	// claimed delivery stays leased: the outcome must be recorded in it.
	DefaultDeliveryLeaseSlack = 10 * time.Second
	// DefaultRevocationTimeout bounds one upstream revocation (two calls
	// to the provider at most, or a refresh and a grant deletion).
	DefaultRevocationTimeout = 30 * time.Second
	// fanOutBatch is how many events one fan-out statement looks at.
	fanOutBatch = 500
)

// DeliveryConfig tunes the DeliveryWorker. The zero value uses the
// defaults; Owner must be set.
type DeliveryConfig struct {
	// Owner names this instance in delivery leases (the refresh lease
	// owner name).
	Owner string
	// Poll: see DefaultDeliveryPoll.
	Poll time.Duration
	// Concurrency: see DefaultDeliveryConcurrency.
	Concurrency int
	// LeaseSlack: see DefaultDeliveryLeaseSlack.
	LeaseSlack time.Duration
	// RevocationTimeout: see DefaultRevocationTimeout.
	RevocationTimeout time.Duration
	// RevocationSchedule is when a failed revocation is tried again; zero:
	// domain.DefaultRetrySchedule.
	RevocationSchedule domain.RetrySchedule
}

func (c DeliveryConfig) withDefaults() DeliveryConfig {
	if c.Poll <= 0 {
		c.Poll = DefaultDeliveryPoll
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultDeliveryConcurrency
	}
	if c.LeaseSlack <= 0 {
		c.LeaseSlack = DefaultDeliveryLeaseSlack
	}
	if c.RevocationTimeout <= 0 {
		c.RevocationTimeout = DefaultRevocationTimeout
	}
	if c.RevocationSchedule == (domain.RetrySchedule{}) {
		c.RevocationSchedule = domain.DefaultRetrySchedule()
	}
	return c
}

// DeliveryWorker delivers outbox events: to each webhook endpoint, and to
// the providers for upstream revocation of deleted tokens. Every instance
// runs one; they share the work through storage (ports.DeliveryQueue):
// each event is queued once per endpoint, each delivery sent by one
// instance at a time under a lease, at least once (an instance that dies
// mid-send leaves its lease to lapse, and another sends the event again
// with the same webhook-id), in commit order per target, user and
// provider, retried on the target's schedule until its max age and then
// marked failed. Each target has its own loop, so a slow or failing
// receiver delays only its own deliveries.
type DeliveryWorker struct {
	queue     ports.DeliveryQueue
	tokens    ports.TokenRepository
	endpoints []ports.WebhookEndpoint
	revoker   ports.TokenRevoker
	rows      sealer
	clock     *Clock
	cfg       DeliveryConfig
	log       *slog.Logger
	jobs      []*background
}

// NewDeliveryWorker returns the worker of svc's storage: queue and tokens
// are its repository, endpoints the configured webhook receivers, revoker
// the upstream revocation (nil: none). log may be nil (discard).
func NewDeliveryWorker(cfg DeliveryConfig, svc *TokenService, queue ports.DeliveryQueue, endpoints []ports.WebhookEndpoint, revoker ports.TokenRevoker, log *slog.Logger) *DeliveryWorker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DeliveryWorker{
		queue: queue, tokens: svc.repo, endpoints: endpoints, revoker: revoker, rows: svc.rows, clock: svc.clock,
		cfg: cfg.withDefaults(), log: log,
	}
}

// target is one delivery target's loop: its name, the kinds it fans out
// (none: deliveries are queued by the writes themselves), how long a claim
// is leased, and how one attempt goes.
type target struct {
	name    string
	url     string
	kinds   []domain.EventKind
	lease   time.Duration
	attempt func(ctx context.Context, d domain.Delivery) (o domain.DeliveryOutcome, gone bool)
}

// endpoint reports whether t is a webhook endpoint, registered and fanned
// out; the revocation target is neither.
func (t target) endpoint() bool { return t.kinds != nil }

// Start runs one loop per webhook endpoint, and one for upstream
// revocation when there is a revoker, until Stop.
func (w *DeliveryWorker) Start(context.Context) error {
	for _, t := range w.targets() {
		job := &background{}
		job.start(func(ctx context.Context) { w.loop(ctx, t) })
		w.jobs = append(w.jobs, job)
	}
	return nil
}

// Stop ends the loops and waits for the sends in flight (each bounded by
// its target's timeout), or for ctx to end; a send cut off is sent again
// by another instance once its lease lapses.
func (w *DeliveryWorker) Stop(ctx context.Context) error {
	var errs []error
	for _, job := range w.jobs {
		errs = append(errs, job.stop(ctx))
	}
	return errors.Join(errs...)
}

func (w *DeliveryWorker) targets() []target {
	var out []target
	for _, ep := range w.endpoints {
		out = append(out, target{
			name: ep.Name(), url: ep.URL(), kinds: ep.Kinds(), lease: ep.Timeout() + w.cfg.LeaseSlack,
			attempt: func(ctx context.Context, d domain.Delivery) (domain.DeliveryOutcome, bool) {
				return w.sendWebhook(ctx, ep, d)
			},
		})
	}
	if w.revoker != nil {
		out = append(out, target{name: domain.RevocationTarget, lease: w.cfg.RevocationTimeout + w.cfg.LeaseSlack, attempt: w.revoke})
	}
	return out
}

// loop runs t until ctx ends: a round at once, again at once while rounds
// find work, else after the poll interval (±20%, so instances drift apart).
func (w *DeliveryWorker) loop(ctx context.Context, t target) {
	registered := !t.endpoint()
	for {
		busy := false
		if !registered {
			if err := w.queue.RegisterEventTarget(ctx, t.name, t.url); err != nil {
				if ctx.Err() == nil {
					w.log.Warn("webhook endpoint not registered yet: retrying", "endpoint", t.name, "err", err)
				}
			} else {
				registered = true
			}
		}
		if registered {
			n, err := w.round(ctx, t)
			if err != nil && ctx.Err() == nil {
				w.log.Warn("event delivery round failed", "target", t.name, "err", err)
			}
			busy = n > 0
		}
		wait := time.Duration(float64(w.cfg.Poll) * (0.8 + 0.4*rand.Float64()))
		if busy {
			wait = 0
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// RunOnce runs one round of every target (queue new events, then claim
// and send what is due), for tests and tools, and reports how many
// deliveries it attempted.
func (w *DeliveryWorker) RunOnce(ctx context.Context) (int, error) {
	total := 0
	var errs []error
	for _, t := range w.targets() {
		if t.endpoint() {
			if err := w.queue.RegisterEventTarget(ctx, t.name, t.url); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		n, err := w.round(ctx, t)
		total += n
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// round queues t's new events (when it fans out), claims up to
// Concurrency due deliveries, sends them at once and records each
// outcome; it reports how many it claimed. Sends and records are not cut
// short by ctx (Stop waits for them).
func (w *DeliveryWorker) round(ctx context.Context, t target) (int, error) {
	if t.endpoint() {
		for {
			n, err := w.queue.FanOutEvents(ctx, t.name, t.kinds, fanOutBatch)
			if err != nil {
				return 0, err
			}
			if n < fanOutBatch {
				break
			}
		}
	}
	// The lease runs from the claim; an attempt must be over before it
	// lapses, or another instance may send the same event at the same
	// time (and, for a user's next event, out of order). Taken before the
	// claim, this instance's deadline falls before the database's.
	leasedAt := time.Now()
	claimed, err := w.queue.ClaimDeliveries(ctx, t.name, w.cfg.Owner, t.lease, w.cfg.Concurrency)
	if err != nil || len(claimed) == 0 {
		return 0, err
	}
	// Sends are not cut short by Stop (it waits for them), only by the
	// lease: the slack after the deadline is for recording the outcome.
	sendCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), leasedAt.Add(t.lease-w.cfg.LeaseSlack))
	defer cancel()
	recordCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	errs := make([]error, len(claimed))
	for i, d := range claimed {
		wg.Go(func() { errs[i] = w.deliver(sendCtx, recordCtx, t, d) })
	}
	wg.Wait()
	return len(claimed), errors.Join(errs...)
}

// deliver makes one attempt of d within sendCtx (its lease) and records
// its outcome with recordCtx. An attempt whose lease is already over (the
// claim took that long) is not made: the lease lapses and the delivery is
// claimed again.
func (w *DeliveryWorker) deliver(sendCtx, ctx context.Context, t target, d domain.Delivery) error {
	if sendCtx.Err() != nil {
		return fmt.Errorf("delivery of %s to %s not attempted: its lease was over before it could start", d.Event.WebhookID(), t.name)
	}
	o, gone := t.attempt(sendCtx, d)
	if gone {
		n, err := w.queue.MarkEventTargetGone(ctx, t.name, o.Error)
		if err != nil {
			return err
		}
		w.log.Error("webhook endpoint answered 410 Gone: nothing more is sent to it until its URL changes or `tokenstore events redeliver` requeues its events",
			"endpoint", t.name, "failed_deliveries", n)
		return nil
	}
	o.Error = clip(o.Error, domain.MaxDeliveryError)
	recorded, err := w.queue.FinishDelivery(ctx, d, o)
	switch {
	case err != nil:
		return err // the lease lapses and the delivery is attempted again
	case !recorded:
		w.log.Warn("delivery outcome not recorded: its lease lapsed and another attempt started (it is delivered at least once), or its endpoint was marked gone meanwhile",
			"target", t.name, "event", d.Event.WebhookID(), "attempt", d.Attempt)
	case o.State == domain.DeliveryFailed:
		w.log.Error("delivery failed: given up", "target", t.name, "event", d.Event.WebhookID(), "kind", d.Event.Kind,
			"attempts", d.Attempt, "err", o.Error)
	}
	return nil
}

// sendWebhook makes one attempt of d to ep.
func (w *DeliveryWorker) sendWebhook(ctx context.Context, ep ports.WebhookEndpoint, d domain.Delivery) (domain.DeliveryOutcome, bool) {
	status, err := ep.Send(ctx, d.Event)
	if err == nil {
		return domain.DeliveryOutcome{State: domain.DeliveryDelivered, Status: status}, false
	}
	if status == 410 {
		return domain.DeliveryOutcome{State: domain.DeliveryFailed, Status: status, Error: "the endpoint answered 410 Gone"}, true
	}
	return w.retryOrFail(d, ep.Schedule(), err, status, nil), false
}

// retryOrFail is the outcome of a failed attempt of d: pending again at
// the schedule's next time (or the time a *domain.RetryAtError in err
// asks, if later), or failed once that is past the schedule's max age;
// failed carries the events written when it gives up.
func (w *DeliveryWorker) retryOrFail(d domain.Delivery, s domain.RetrySchedule, err error, status int, failed []domain.Event) domain.DeliveryOutcome {
	now := w.clock.Database()
	var notBefore time.Time
	if ra, ok := errors.AsType[*domain.RetryAtError](err); ok {
		notBefore = ra.At.Add(now.Sub(w.clock.Service())) // onto the database's clock
	}
	at, giveUp := s.Next(d.Attempt, d.RetryFrom, now, notBefore, rand.Float64())
	if giveUp {
		return domain.DeliveryOutcome{State: domain.DeliveryFailed, Status: status, Error: err.Error(), Events: failed}
	}
	return domain.DeliveryOutcome{State: domain.DeliveryPending, NextAttemptAt: at, Status: status, Error: err.Error()}
}

// revoke makes one attempt of a revocation delivery: it opens the deleted
// tokens the event keeps and revokes them at the provider. Succeeded: the
// tokens are forgotten and revocation.succeeded written. A permanent
// refusal fails at once, a transient one is retried until the schedule's
// max age; both then write revocation.failed with the reason, and keep the
// tokens (sealed) so that an operator can redeliver once the provider's
// settings are fixed; events.retention removes them.
func (w *DeliveryWorker) revoke(ctx context.Context, d domain.Delivery) (domain.DeliveryOutcome, bool) {
	e := d.Event
	failed := func(code string, err error, forget bool) domain.DeliveryOutcome {
		return domain.DeliveryOutcome{State: domain.DeliveryFailed, Error: err.Error(), ForgetTokens: forget,
			Events: []domain.Event{{Kind: domain.EventRevocationFailed, User: e.User, Provider: e.Provider, Reason: code}}}
	}
	if d.Tokens == nil {
		return failed(domain.CodeRevocationUndecryptable, errors.New("no tokens are kept for this revocation"), false), false
	}
	unavailable := []domain.Event{{Kind: domain.EventRevocationFailed, User: e.User, Provider: e.Provider, Reason: domain.CodeProviderUnavailable}}
	if w.revoker.RevokesGrant(e.Provider) {
		// Revoking the grant would also end tokens the user stored since.
		// (Tokens stored between this check and the provider's answer are
		// revoked too: a window of one provider call, left open.)
		_, err := w.tokens.GetAuthTokens(ctx, e.User, e.Provider) // the database's row, never a kept one
		switch {
		case err == nil:
			return failed(domain.CodeRevocationSuperseded, fmt.Errorf("%s: the user stored tokens again since the delete; revoking the grant would revoke them too", e.Provider), true), false
		case !errors.Is(err, domain.ErrNotFound):
			return w.retryOrFail(d, w.cfg.RevocationSchedule, err, 0, unavailable), false
		}
	}
	var req ports.RevocationRequest
	var err error
	req.AccessToken, err = w.rows.openAt(AccessTokenPlace(e.User, e.Provider), domain.Ciphertext{KeyID: d.Tokens.KeyID, Data: d.Tokens.AccessToken})
	if err == nil && d.Tokens.RefreshToken != nil {
		req.RefreshToken, err = w.rows.openAt(RefreshTokenPlace(e.User, e.Provider), domain.Ciphertext{KeyID: d.Tokens.KeyID, Data: d.Tokens.RefreshToken})
	}
	if err != nil {
		return failed(domain.CodeRevocationUndecryptable, fmt.Errorf("open the tokens to revoke: %w", err), false), false
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.RevocationTimeout)
	defer cancel()
	err = w.revoker.Revoke(ctx, e.Provider, req)
	switch {
	case err == nil:
		return domain.DeliveryOutcome{State: domain.DeliveryDelivered, ForgetTokens: true,
			Events: []domain.Event{{Kind: domain.EventRevocationSucceeded, User: e.User, Provider: e.Provider}}}, false
	case errors.Is(err, domain.ErrRevocationNotSupported):
		return failed(domain.CodeRevocationNotSupported, err, false), false
	case errors.Is(err, domain.ErrRevocationRejected), errors.Is(err, domain.ErrInvalid):
		return failed(domain.CodeRevocationRejected, err, false), false // until the configuration changes
	default: // domain.ErrProviderUnavailable, a timeout: transient
		return w.retryOrFail(d, w.cfg.RevocationSchedule, err, 0, unavailable), false
	}
}
