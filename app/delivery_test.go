package app_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// fakeEndpoint is a webhook receiver: it records what it took and answers
// from a script (nil: 204).
type fakeEndpoint struct {
	name     string
	kinds    []domain.EventKind
	schedule domain.RetrySchedule
	block    chan struct{} // non-nil: Send waits for it to close

	mu       sync.Mutex
	answers  []error // consumed one per Send; empty: success
	status   int     // the status of a failed answer (0: 503)
	received []domain.Event
	sends    int
}

func newEndpoint(name string, kinds ...domain.EventKind) *fakeEndpoint {
	if kinds == nil {
		kinds = []domain.EventKind{domain.EventTokensStored, domain.EventTokensDeleted}
	}
	return &fakeEndpoint{name: name, kinds: kinds, schedule: domain.RetrySchedule{First: time.Nanosecond, Cap: time.Nanosecond, MaxAge: time.Hour}}
}

func (e *fakeEndpoint) Name() string                   { return e.name }
func (e *fakeEndpoint) URL() string                    { return "https://" + e.name + ".example/hook" }
func (e *fakeEndpoint) Kinds() []domain.EventKind      { return e.kinds }
func (e *fakeEndpoint) Timeout() time.Duration         { return time.Second }
func (e *fakeEndpoint) Schedule() domain.RetrySchedule { return e.schedule }

func (e *fakeEndpoint) Send(ctx context.Context, ev domain.Event) (int, error) {
	if e.block != nil {
		<-e.block
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sends++
	if len(e.answers) > 0 {
		err := e.answers[0]
		e.answers = e.answers[1:]
		if err != nil {
			return cmp.Or(e.status, 503), err
		}
	}
	e.received = append(e.received, ev)
	return 204, nil
}

func (e *fakeEndpoint) got() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.received))
	for i, ev := range e.received {
		out[i] = fmt.Sprintf("%s %s/%s", ev.Kind, ev.User, ev.Provider)
	}
	return out
}

func (e *fakeEndpoint) script(errs ...error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.answers = append(e.answers, errs...)
}

// fakeRevoker records revocations and answers from a script.
type fakeRevoker struct {
	mu      sync.Mutex
	answers []error
	calls   []string // "provider refresh access"
}

func (r *fakeRevoker) RevokesOnDelete(p domain.Provider) bool { return p == gitlab || p == github }
func (r *fakeRevoker) RevokesGrant(p domain.Provider) bool    { return p == github }

func (r *fakeRevoker) Revoke(_ context.Context, p domain.Provider, t ports.RevocationRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("%s %s %s", p, t.RefreshToken.Reveal(), t.AccessToken.Reveal()))
	if len(r.answers) > 0 {
		err := r.answers[0]
		r.answers = r.answers[1:]
		return err
	}
	return nil
}

func (r *fakeRevoker) called() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func newWorker(f *fixture, eps []*fakeEndpoint, rv ports.TokenRevoker) *app.DeliveryWorker {
	var targets []ports.WebhookEndpoint
	for _, e := range eps {
		targets = append(targets, e)
	}
	return app.NewDeliveryWorker(app.DeliveryConfig{
		Owner: "unit", Poll: 5 * time.Millisecond,
		RevocationSchedule: domain.RetrySchedule{First: time.Nanosecond, Cap: time.Nanosecond, MaxAge: time.Hour},
	}, f.svc, f.repo, targets, rv, nil)
}

// runRounds runs rounds until one attempts nothing.
func runRounds(t *testing.T, w *app.DeliveryWorker) {
	t.Helper()
	for range 100 {
		n, err := w.RunOnce(context.Background())
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("deliveries still attempted after 100 rounds")
}

func (f *fixture) deliveries(state domain.DeliveryState) []domain.Delivery {
	f.t.Helper()
	ds, err := f.repo.ListDeliveries(context.Background(), domain.DeliveryFilter{State: state}, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

// A receiver that fails for a while gets every event of its kinds, each
// user's in commit order, retries included; a new endpoint starts at the
// feed's end.
func TestWebhookDeliveryRetriesInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("early", gitlab, time.Hour, "r") // before the endpoint existed
	ep := newEndpoint("crm")
	w := newWorker(f, []*fakeEndpoint{ep}, nil)
	runRounds(t, w) // registers the endpoint at the feed's end
	ep.script(errors.New("answered HTTP 503"), errors.New("answered HTTP 503"))
	f.put("ann", gitlab, time.Hour, "r1")
	f.put("ann", gitlab, time.Hour, "r2")
	if _, err := f.svc.PutOfflineToken(context.Background(), domain.OfflineToken{User: "ann", Token: domain.NewSecret("off")}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteAuthTokens(context.Background(), "ann", gitlab); err != nil {
		t.Fatal(err)
	}
	runRounds(t, w)
	want := []string{"tokens.stored ann/gitlab", "tokens.stored ann/gitlab", "tokens.deleted ann/gitlab"}
	if got := ep.got(); !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q", got, want)
	}
	ds := f.deliveries(domain.DeliveryDelivered)
	if len(ds) != 3 || ds[0].Attempt != 3 || ds[0].LastStatus != 204 || ds[1].Attempt != 1 {
		t.Errorf("deliveries %+v; want the first after 3 attempts", ds)
	}
}

// Past its max age a delivery is marked failed and the next one goes out.
func TestWebhookDeliveryGivesUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	ep := newEndpoint("crm")
	ep.schedule.MaxAge = time.Nanosecond
	w := newWorker(f, []*fakeEndpoint{ep}, nil)
	runRounds(t, w)
	ep.script(errors.New("answered HTTP 500"))
	f.put("ann", gitlab, time.Hour, "r1")
	f.put("ann", gitlab, time.Hour, "r2")
	runRounds(t, w)
	failed := f.deliveries(domain.DeliveryFailed)
	if len(failed) != 1 || failed[0].Attempt != 1 || failed[0].LastError != "answered HTTP 500" || failed[0].LastStatus != 503 {
		t.Fatalf("failed = %+v", failed)
	}
	if got := ep.got(); len(got) != 1 {
		t.Errorf("received %q; want the second event only", got)
	}
}

// A receiver's Retry-After is honoured when later than the schedule.
func TestWebhookDeliveryHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	ep := newEndpoint("crm")
	w := newWorker(f, []*fakeEndpoint{ep}, nil)
	runRounds(t, w)
	at := time.Now().Add(time.Hour)
	ep.script(&domain.RetryAtError{At: at, Err: errors.New("answered HTTP 429, asking to retry after …")})
	f.put("ann", gitlab, time.Hour, "r1")
	runRounds(t, w)
	ds := f.deliveries(domain.DeliveryPending)
	if len(ds) != 1 || ds[0].NextAttemptAt.Before(at.Add(-time.Minute)) {
		t.Fatalf("pending %+v; want the next attempt at %v", ds, at)
	}
}

// 410 Gone marks the endpoint gone: its pending deliveries fail, nothing
// more is sent to it, and other endpoints go on.
func TestWebhookEndpointGone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	gone, other := newEndpoint("gone"), newEndpoint("other")
	gone.status = 410
	w := newWorker(f, []*fakeEndpoint{gone, other}, nil)
	runRounds(t, w)
	gone.script(errors.New("webhook endpoint gone (HTTP 410)"), errors.New("webhook endpoint gone (HTTP 410)"))
	f.put("ann", gitlab, time.Hour, "r1")
	f.put("bob", gitlab, time.Hour, "r1")
	runRounds(t, w)
	f.put("cid", gitlab, time.Hour, "r1")
	runRounds(t, w)
	if got := gone.got(); len(got) != 0 {
		t.Errorf("a gone endpoint received %q", got)
	}
	if gone.sends != 2 { // ann's and bob's went out together
		t.Errorf("sent %d times to the gone endpoint; want 2", gone.sends)
	}
	if got := other.got(); len(got) != 3 {
		t.Errorf("the other endpoint received %q; want all 3", got)
	}
	failed := f.deliveries(domain.DeliveryFailed)
	if len(failed) != 2 || failed[0].LastStatus != 410 {
		t.Errorf("failed %+v; want ann's and bob's with 410", failed)
	}
}

// A receiver that never answers holds up only its own deliveries.
func TestSlowEndpointDelaysOnlyItself(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	slow, fast := newEndpoint("slow"), newEndpoint("fast")
	slow.block = make(chan struct{})
	w := newWorker(f, []*fakeEndpoint{slow, fast}, nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(slow.block)
		_ = w.Stop(context.Background())
	})
	time.Sleep(50 * time.Millisecond) // the endpoints register at the feed's end
	for i := range 5 {
		f.put(domain.UserID(fmt.Sprint("u", i)), gitlab, time.Hour, "r")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(fast.got()) < 5 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := fast.got(); len(got) != 5 {
		t.Fatalf("the fast endpoint received %d of 5 while the slow one hung", len(got))
	}
}

// Deleting tokens of a provider that revokes on delete queues the
// revocation with the delete; the worker revokes the refresh and access
// tokens, writes revocation.succeeded and forgets them.
func TestRevocationOnDelete(t *testing.T) {
	t.Parallel()
	rv := &fakeRevoker{}
	f := newFixture(t, app.Config{Revoker: rv})
	w := newWorker(f, nil, rv)
	f.put("ann", gitlab, time.Hour, "refresh-ann")
	f.put("ann", domain.ProviderKeycloak, time.Hour, "refresh-kc") // does not revoke on delete
	rv.answers = []error{fmt.Errorf("%w: HTTP 503", domain.ErrProviderUnavailable)}
	for _, p := range []domain.Provider{gitlab, domain.ProviderKeycloak} {
		if err := f.svc.DeleteAuthTokens(context.Background(), "ann", p); err != nil {
			t.Fatal(err)
		}
	}
	runRounds(t, w)
	if got, want := rv.called(), []string{"gitlab refresh-ann access-ann", "gitlab refresh-ann access-ann"}; !slices.Equal(got, want) {
		t.Fatalf("revocations %q, want %q (a failure, then the retry)", got, want)
	}
	want := []string{"tokens.stored ann/gitlab ", "tokens.stored ann/keycloak ", "tokens.deleted ann/gitlab ", "tokens.deleted ann/keycloak ", "revocation.succeeded ann/gitlab "}
	if got := f.events(); !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
	if n, err := f.repo.RedeliverDeliveries(context.Background(), f.deliveries("")[0].Event.Cursor.Seq, ""); err != nil || n != 0 {
		t.Errorf("the revoked tokens are still kept: redeliver = %d, %v", n, err)
	}
}

// Refusals fail at once with their reason; a transient failure past the
// schedule's max age fails with provider_unavailable.
func TestRevocationFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		maxAge time.Duration
		reason string
	}{
		{fmt.Errorf("%w: HTTP 401 invalid_client", domain.ErrRevocationRejected), time.Hour, domain.CodeRevocationRejected},
		{fmt.Errorf("%w: revoke_on_delete is off", domain.ErrRevocationNotSupported), time.Hour, domain.CodeRevocationNotSupported},
		{fmt.Errorf("%w: HTTP 503", domain.ErrProviderUnavailable), time.Nanosecond, domain.CodeProviderUnavailable},
		{context.DeadlineExceeded, time.Nanosecond, domain.CodeProviderUnavailable},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			rv := &fakeRevoker{answers: []error{tc.err}}
			f := newFixture(t, app.Config{Revoker: rv})
			w := app.NewDeliveryWorker(app.DeliveryConfig{Owner: "unit",
				RevocationSchedule: domain.RetrySchedule{First: time.Nanosecond, Cap: time.Nanosecond, MaxAge: tc.maxAge}}, f.svc, f.repo, nil, rv, nil)
			f.put("ann", gitlab, time.Hour, "refresh-ann")
			if err := f.svc.DeleteAuthTokens(context.Background(), "ann", gitlab); err != nil {
				t.Fatal(err)
			}
			runRounds(t, w)
			if got := f.events(); got[len(got)-1] != "revocation.failed ann/gitlab "+tc.reason {
				t.Fatalf("events %q; want revocation.failed with %s last", got, tc.reason)
			}
			failed := f.deliveries(domain.DeliveryFailed)
			if len(failed) != 1 || len(rv.called()) != 1 {
				t.Fatalf("failed %+v after %d calls; want one failed delivery after one call", failed, len(rv.called()))
			}
			// The tokens are kept: an operator can redeliver once fixed.
			if n, err := f.repo.RedeliverDeliveries(context.Background(), 0, ""); err != nil || n != 1 {
				t.Fatalf("redeliver = %d, %v", n, err)
			}
			runRounds(t, w)
			if got := rv.called(); len(got) != 2 || got[1] != "gitlab refresh-ann access-ann" {
				t.Errorf("after redelivery, revocations %q", got)
			}
		})
	}
}

// GitHub's grant deletion would also end tokens the user stored after the
// delete: then it is skipped as superseded.
func TestGrantRevocationSkippedAfterReconnect(t *testing.T) {
	t.Parallel()
	rv := &fakeRevoker{}
	f := newFixture(t, app.Config{Revoker: rv})
	w := newWorker(f, nil, rv)
	f.put("ann", github, time.Hour, "old")
	if err := f.svc.DeleteAuthTokens(context.Background(), "ann", github); err != nil {
		t.Fatal(err)
	}
	f.put("ann", github, time.Hour, "new") // reconnected before the revocation ran
	runRounds(t, w)
	if got := rv.called(); len(got) != 0 {
		t.Fatalf("revoked %q at GitHub after the user reconnected", got)
	}
	if got := f.events(); got[len(got)-1] != "revocation.failed ann/github "+domain.CodeRevocationSuperseded {
		t.Fatalf("events %q", got)
	}
	if _, err := f.get("ann", github); err != nil {
		t.Errorf("the new tokens: %v", err)
	}
}
