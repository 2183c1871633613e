package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

// countingRecorder counts the inserts the batcher makes, each taking delay
// (a database round trip).
type countingRecorder struct {
	*memrepo.AuditLog
	calls atomic.Int64
	delay atomic.Int64 // time.Duration
}

func (c *countingRecorder) RecordAuditEvents(ctx context.Context, events []domain.AuditEvent) error {
	c.calls.Add(1)
	time.Sleep(time.Duration(c.delay.Load()))
	return c.AuditLog.RecordAuditEvents(ctx, events)
}

type auditFixture struct {
	svc  *app.TokenService
	repo *memrepo.Repository
	rec  *countingRecorder
	aud  *app.Auditor
}

// newAuditFixture is a service whose reads record into rec and whose
// writes record into the repository's own log (the write's transaction).
func newAuditFixture(t *testing.T, mode app.AuditMode) *auditFixture {
	t.Helper()
	repo := memrepo.New()
	rec := &countingRecorder{AuditLog: repo.Audit()}
	aud := app.NewAuditor(app.AuditConfig{Mode: mode, Instance: "i-1"}, nil, rec)
	t.Cleanup(func() { _ = aud.Stop(context.Background()) })
	svc := app.NewTokenService(app.Config{Providers: declared}, nil, newKeyring(t), repo, app.NoRefresher{}, aud)
	return &auditFixture{svc: svc, repo: repo, rec: rec, aud: aud}
}

var alice = app.Actor{Caller: "svc-a", RequestID: "req-1"}

func (f *auditFixture) put(t *testing.T, user domain.UserID) {
	t.Helper()
	ctx := app.WithActor(context.Background(), alice)
	if _, err := f.svc.PutAuthTokens(ctx, domain.AuthTokens{User: user, Provider: github,
		AccessToken: domain.NewSecret("at-" + string(user)), AccessExpiry: domain.Never()}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.PutOfflineToken(ctx, domain.OfflineToken{User: user, Token: domain.NewSecret("off-" + string(user))}); err != nil {
		t.Fatal(err)
	}
}

func TestAuditRecordsEveryHandoutAndWrite(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, app.AuditFailClosed)
	f.put(t, "alice")
	ctx := app.WithActor(context.Background(), alice)
	if _, err := f.svc.GetAccessToken(ctx, "alice", github); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GetOfflineToken(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteAuthTokens(ctx, "alice", github); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteOfflineToken(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"put_tokens alice github 200", "put_offline_token alice  200",
		"read_access_token alice github 200", "read_offline_token alice  200",
		"delete_tokens alice github 204", "delete_offline_token alice  204",
	}
	events := f.repo.Audit().Events()
	if len(events) != len(want) {
		t.Fatalf("events %+v, want %v", events, want)
	}
	for i, e := range events {
		if got := fmt.Sprintf("%s %s %s %d", e.Action, e.User, e.Provider, e.Status); got != want[i] {
			t.Errorf("event %d: %s, want %s", i, got, want[i])
		}
		if e.Caller != "svc-a" || e.RequestID != "req-1" || e.Instance != "i-1" {
			t.Errorf("event %d: caller %q, request %q, instance %q", i, e.Caller, e.RequestID, e.Instance)
		}
	}
}

// Fail-closed: when the audit store fails, no token leaves, no write
// happens, and each fails as storage unavailable (503).
func TestAuditFailClosedWithholdsTokensAndWrites(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, app.AuditFailClosed)
	f.put(t, "alice")
	f.repo.Audit().Fail(errors.New("permission denied for table audit_events"))
	ctx := context.Background()
	tok, err := f.svc.GetAccessToken(ctx, "alice", github)
	if !errors.Is(err, domain.ErrStorageUnavailable) || tok.Token.Reveal() != "" {
		t.Errorf("access token with the audit store down: %q, %v; want none and storage unavailable", tok.Token.Reveal(), err)
	}
	off, err := f.svc.GetOfflineToken(ctx, "alice")
	if !errors.Is(err, domain.ErrStorageUnavailable) || off.Token.Reveal() != "" {
		t.Errorf("offline token with the audit store down: %q, %v", off.Token.Reveal(), err)
	}
	// Writes fail in the repository's transaction: nothing changes.
	if err := f.svc.DeleteAuthTokens(ctx, "alice", github); !errors.Is(err, domain.ErrStorageUnavailable) {
		t.Errorf("delete with the audit store down: %v", err)
	}
	if _, err := f.svc.PutAuthTokens(ctx, domain.AuthTokens{User: "alice", Provider: github,
		AccessToken: domain.NewSecret("replaced"), AccessExpiry: domain.Never()}); !errors.Is(err, domain.ErrStorageUnavailable) {
		t.Errorf("put with the audit store down: %v", err)
	}
	if _, err := f.repo.GetAuthTokens(ctx, "alice", github); err != nil {
		t.Errorf("the refused delete removed the row: %v", err)
	}
	d := f.aud.Details()
	if d["audit_failing"] != true || d["audit_failed_events"] == nil {
		t.Errorf("readiness details %v: do not show the failing audit trail", d)
	}
	f.repo.Audit().Fail(nil)
	if got, err := f.svc.GetAccessToken(ctx, "alice", github); err != nil || got.Token.Reveal() != "at-alice" {
		t.Errorf("after the audit store recovered: %q, %v", got.Token.Reveal(), err)
	}
	if d := f.aud.Details(); d["audit_failing"] != false {
		t.Errorf("readiness details after recovery: %v", d)
	}
}

func TestAuditBestEffortAndOffServeWithTheStoreDown(t *testing.T) {
	t.Parallel()
	for _, mode := range []app.AuditMode{app.AuditBestEffort, app.AuditOff} {
		f := newAuditFixture(t, mode)
		f.put(t, "alice")
		f.repo.Audit().Fail(errors.New("down"))
		if got, err := f.svc.GetAccessToken(context.Background(), "alice", github); err != nil || got.Token.Reveal() != "at-alice" {
			t.Errorf("%s: read with the audit store down: %q, %v", mode, got.Token.Reveal(), err)
		}
		if err := f.svc.DeleteAuthTokens(context.Background(), "alice", github); err != nil {
			t.Errorf("%s: delete with the audit store down: %v", mode, err)
		}
	}
}

// Concurrent reads share inserts: fewer inserts than reads, and every read
// has its event.
func TestAuditBatchesConcurrentReads(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, app.AuditFailClosed)
	f.put(t, "alice")
	before := len(f.repo.Audit().Events())
	f.rec.delay.Store(int64(5 * time.Millisecond))
	svc := f.svc
	const readers = 64
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := app.WithActor(context.Background(), app.Actor{Caller: "c", RequestID: fmt.Sprint("r", i)})
			if _, err := svc.GetAccessToken(ctx, "alice", github); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.repo.Audit().Events()) - before; n != readers {
		t.Errorf("%d events for %d reads", n, readers)
	}
	if calls := f.rec.calls.Load(); calls >= readers {
		t.Errorf("%d inserts for %d concurrent reads: not batched", calls, readers)
	}
}
