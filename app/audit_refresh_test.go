package app_test

// The audit trail of the service's own work: refresh attempts and their
// outcomes (from a read, with its caller, and from the worker, with none),
// transitions to reauth_required (a refusing provider, a lapsed lease met
// by a read or swept by the worker), fail-closed with the change they
// describe, and writes refused by a failing audit store shown on /readyz.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

var reader = app.Actor{Caller: "svc-r", RequestID: "req-r"}

// serviceEvents lists the stored events of the service's own work
// (refresh, reauth_required) as "action user provider status code caller
// request instance".
func (f *fixture) serviceEvents() []string {
	f.t.Helper()
	var out []string
	for _, e := range f.repo.Audit().Events() {
		if e.Action != domain.AuditRefresh && e.Action != domain.AuditReauthRequired {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s %d %s %s %s %s", e.Action, e.User, e.Provider, e.Status, e.Code, e.Caller, e.RequestID, e.Instance))
	}
	return out
}

func (f *fixture) wantServiceEvents(want ...string) {
	f.t.Helper()
	if got := f.serviceEvents(); !slices.Equal(got, want) {
		f.t.Errorf("service events:\n got %q\nwant %q", got, want)
	}
}

// TestAuditRefreshOutcomes: each provider answer leaves one refresh event
// with its outcome, by the caller whose read started it; a refusal of the
// grant also records the transition to reauth_required.
func TestAuditRefreshOutcomes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		answer func(int) (domain.RefreshedTokens, error)
		want   []string
	}{
		{"refreshed", rotating, []string{"refresh alice gitlab 200  svc-r req-r unit"}},
		{"invalid_grant", failing(fmt.Errorf("invalid_grant: %w", domain.ErrGrantRevoked)), []string{
			"refresh alice gitlab 409 invalid_grant svc-r req-r unit",
			"reauth_required alice gitlab 409 invalid_grant svc-r req-r unit"}},
		{"unavailable", failing(domain.ErrProviderUnavailable), []string{"refresh alice gitlab 503 provider_unavailable svc-r req-r unit"}},
		{"outcome unknown", failing(domain.ErrProviderOutcomeUnknown), []string{"refresh alice gitlab 503 provider_outcome_unknown svc-r req-r unit"}},
		{"rejected", failing(domain.ErrProviderRejected), []string{"refresh alice gitlab 503 provider_rejected svc-r req-r unit"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newAuditedFixture(t, app.Config{}, app.AuditFailClosed)
			f.put("alice", gitlab, -time.Minute, "refresh-0")
			f.provider.setAnswer(tt.answer)
			_, _ = f.svc.GetAccessToken(app.WithActor(context.Background(), reader), "alice", gitlab)
			f.wantCalls(1)
			f.wantServiceEvents(tt.want...)
		})
	}
}

// TestAuditRefreshUndecryptable: an attempt whose refresh token cannot be
// opened records 500 refresh_token_undecryptable.
func TestAuditRefreshUndecryptable(t *testing.T) {
	t.Parallel()
	f := newAuditedFixture(t, app.Config{}, app.AuditFailClosed)
	f.put("alice", gitlab, -time.Minute, "refresh-0")
	f.put("bob", gitlab, -time.Minute, "refresh-b")
	f.misplaceRefreshToken("alice", "bob")
	_, err := f.svc.GetAccessToken(app.WithActor(context.Background(), reader), "alice", gitlab)
	wantErr(t, err, domain.ErrDecrypt)
	f.wantServiceEvents("refresh alice gitlab 500 refresh_token_undecryptable svc-r req-r unit")
}

// TestAuditOneRefreshEventPerAttempt: many concurrent readers share one
// attempt, and so one refresh event, committed with the new tokens.
func TestAuditOneRefreshEventPerAttempt(t *testing.T) {
	t.Parallel()
	f := newAuditedFixture(t, app.Config{}, app.AuditFailClosed)
	f.put("alice", gitlab, -time.Minute, "refresh-0")
	release := f.provider.hold()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if tok, err := f.svc.GetAccessToken(app.WithActor(context.Background(), reader), "alice", gitlab); err != nil || tok.Token.Reveal() != "access-1" {
				t.Errorf("read: %q, %v", tok.Token.Reveal(), err)
			}
		})
	}
	<-f.provider.entered
	release()
	wg.Wait()
	f.wantCalls(1)
	f.wantServiceEvents("refresh alice gitlab 200  svc-r req-r unit")
}

// TestAuditRefreshFailClosed: with the audit store refusing events, a
// successful provider call stores nothing (the new tokens would commit
// without their event), the read answers unavailable with no token, and
// readiness shows the failing trail. Once the store is back, the lapsed
// lease is met by a read, which marks the tokens for re-authorization
// with its event.
func TestAuditRefreshFailClosed(t *testing.T) {
	t.Parallel()
	f := newAuditedFixture(t, app.Config{Refresh: app.RefreshConfig{Lease: 300 * time.Millisecond, WaitTimeout: 5 * time.Second}}, app.AuditFailClosed)
	f.put("alice", gitlab, -time.Minute, "refresh-0")
	before := f.row("alice", gitlab)
	f.repo.Audit().Fail(errors.New("permission denied for table audit_events"))
	tok, err := f.svc.GetAccessToken(app.WithActor(context.Background(), reader), "alice", gitlab)
	if !errors.Is(err, domain.ErrUnavailable) || tok.Token.Reveal() != "" {
		t.Fatalf("read with the audit store down: %q, %v; want no token and unavailable", tok.Token.Reveal(), err)
	}
	f.wantCalls(1)
	after := f.row("alice", gitlab)
	AssertSameCiphertexts(t, after, before)
	if d := f.audit.Details(); d["audit_failing"] != true {
		t.Errorf("readiness details %v: do not show the failing trail", d)
	}
	f.wantServiceEvents()

	f.repo.Audit().Fail(nil)
	deadline := time.Now().Add(10 * time.Second)
	for f.row("alice", gitlab).Refresh.LeaseLapsed(time.Now()) == false && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_, err = f.svc.GetAccessToken(app.WithActor(context.Background(), reader), "alice", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)
	// The attempt's own outcome (503 refresh_interrupted) had nothing to
	// ride with and was queued while the store failed: it is stored if the
	// batcher took it after the store came back, lost otherwise.
	got := slices.DeleteFunc(f.serviceEvents(), func(e string) bool {
		return e == "refresh alice gitlab 503 refresh_interrupted svc-r req-r unit"
	})
	if want := []string{"reauth_required alice gitlab 409 refresh_interrupted svc-r req-r unit"}; !slices.Equal(got, want) {
		t.Errorf("service events after recovery: %q, want %q (and perhaps the queued 503)", got, want)
	}
	f.wantCalls(1)
}

// AssertSameCiphertexts fails t unless got holds want's sealed tokens.
func AssertSameCiphertexts(t *testing.T, got, want domain.SealedAuthTokens) {
	t.Helper()
	if string(got.AccessToken) != string(want.AccessToken) || string(got.RefreshToken) != string(want.RefreshToken) {
		t.Errorf("the stored tokens changed")
	}
}

// putLapsed stores user's tokens under a refresh lease that has lapsed (a
// refresh that died).
func (f *fixture) putLapsed(user domain.UserID) {
	f.t.Helper()
	f.put(user, gitlab, time.Hour, "r")
	f.setRefresh(user, gitlab, domain.RefreshState{LeaseOwner: "dead/1", LeaseUntil: time.Now().Add(-time.Second)})
}

// TestAuditWorkerEvents: the worker's refreshes and its sweep of lapsed
// leases record their events with no caller and this instance; with the
// audit store refusing them, the sweep marks nothing.
func TestAuditWorkerEvents(t *testing.T) {
	t.Parallel()
	f := newAuditedFixture(t, app.Config{}, app.AuditFailClosed)
	f.put("due", gitlab, -time.Minute, "r")
	f.putLapsed("lapsed")

	f.repo.Audit().Fail(errors.New("audit down"))
	if _, err := f.worker(app.WorkerConfig{}).RunOnce(context.Background()); !errors.Is(err, domain.ErrStorageUnavailable) {
		t.Fatalf("RunOnce with the audit store down = %v, want storage unavailable", err)
	}
	if row := f.row("lapsed", gitlab); row.Refresh.ReauthRequired {
		t.Error("the sweep marked a row it could not record")
	}
	if d := f.audit.Details(); d["audit_failing"] != true {
		t.Errorf("readiness details %v: do not show the failing trail", d)
	}
	f.repo.Audit().Fail(nil)

	if n, err := f.worker(app.WorkerConfig{}).RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1", n, err)
	}
	f.wantServiceEvents(
		"reauth_required lapsed gitlab 409 refresh_interrupted   unit",
		"refresh due gitlab 200    unit",
	)
}

// TestAuditBestEffortRefreshEvents: best-effort, the events are queued
// after the change, and the change happens with the audit store down.
func TestAuditBestEffortRefreshEvents(t *testing.T) {
	t.Parallel()
	f := newAuditedFixture(t, app.Config{}, app.AuditBestEffort)
	f.put("alice", gitlab, -time.Minute, "refresh-0")
	f.putLapsed("lapsed")
	if got, err := f.get("alice", gitlab); err != nil || got != "access-1" {
		t.Fatalf("read = %q, %v", got, err)
	}
	if _, err := f.worker(app.WorkerConfig{}).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return len(f.serviceEvents()) == 2 })
	got := f.serviceEvents()
	slices.Sort(got)
	if want := []string{"reauth_required lapsed gitlab 409 refresh_interrupted   unit", "refresh alice gitlab 200    unit"}; !slices.Equal(got, want) {
		t.Errorf("best-effort events %q, want %q", got, want)
	}

	f.repo.Audit().Fail(errors.New("audit down"))
	f.put("bob", gitlab, -time.Minute, "refresh-b")
	if got, err := f.get("bob", gitlab); err != nil || got != "access-2" {
		t.Errorf("best-effort read with the audit store down = %q, %v", got, err)
	}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAuditWriteFailuresShowOnReadiness: a write the audit store refuses
// is counted on /readyz like a read (audit_failing, audit_failed_events),
// and a write that commits its event clears audit_failing.
func TestAuditWriteFailuresShowOnReadiness(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, app.AuditFailClosed)
	f.put(t, "alice")
	f.repo.Audit().Fail(errors.New("permission denied for table audit_events"))
	if err := f.svc.DeleteAuthTokens(context.Background(), "alice", github); !errors.Is(err, domain.ErrStorageUnavailable) {
		t.Fatalf("delete with the audit store down: %v", err)
	}
	d := f.aud.Details()
	if d["audit_failing"] != true || d["audit_failed_events"] != int64(1) {
		t.Errorf("readiness after a refused write: %v; want audit_failing and 1 failed event", d)
	}
	f.repo.Audit().Fail(nil)
	if err := f.svc.DeleteAuthTokens(context.Background(), "alice", github); err != nil {
		t.Fatal(err)
	}
	if d := f.aud.Details(); d["audit_failing"] != false {
		t.Errorf("readiness after a recorded write: %v", d)
	}
}
