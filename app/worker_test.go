package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

func (f *fixture) worker(cfg app.WorkerConfig) *app.RefreshWorker {
	return app.NewRefreshWorker(cfg, f.svc.Refreshes(), f.repo, nil)
}

func TestWorkerRunOnceRefreshesDueTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	lookahead := 10 * time.Minute
	f.put("expired", gitlab, -time.Minute, "r")
	f.put("inside-margin", gitlab, 5*time.Minute, "r")
	f.put("inside-lookahead", gitlab, domain.DefaultRefreshMargin+5*time.Minute, "r")
	f.put("later", gitlab, time.Hour, "r")
	f.put("no-refresh-token", gitlab, time.Minute, "")
	f.put("other-provider", github, time.Minute, "r")
	f.put("lapsed", gitlab, time.Hour, "r")
	f.setRefresh("lapsed", gitlab, domain.RefreshState{LeaseOwner: "dead/1", LeaseUntil: time.Now().Add(-time.Second)})

	n, err := f.worker(app.WorkerConfig{Lookahead: lookahead, Concurrency: 2}).RunOnce(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("RunOnce = %d, %v; want 3 refreshed", n, err)
	}
	for _, u := range []domain.UserID{"expired", "inside-margin", "inside-lookahead"} {
		row := f.row(u, gitlab)
		if exp, _ := row.AccessExpiry.Time(); exp.Before(time.Now().Add(50*time.Minute)) || row.Refresh.LeaseOwner != "" {
			t.Errorf("%s after the scan: expiry %v lease %q, want refreshed and released", u, row.AccessExpiry, row.Refresh.LeaseOwner)
		}
	}
	for _, u := range []domain.UserID{"later", "no-refresh-token"} {
		if row := f.row(u, gitlab); row.Version != 2 { // put's two writes
			t.Errorf("%s touched by the scan (version %d)", u, row.Version)
		}
	}
	if row := f.row("other-provider", github); row.Version != 2 {
		t.Errorf("a provider without refresher touched (version %d)", row.Version)
	}
	if row := f.row("lapsed", gitlab); !row.Refresh.ReauthRequired || row.Refresh.LastError != domain.CodeRefreshInterrupted {
		t.Errorf("lapsed lease after the scan: %+v, want marked refresh_interrupted", row.Refresh)
	}
	if n, err := f.worker(app.WorkerConfig{Lookahead: lookahead}).RunOnce(context.Background()); err != nil || n != 0 {
		t.Errorf("second scan = %d, %v; want nothing left", n, err)
	}
	f.wantCalls(3)
}

func TestWorkerBatchBoundsAScan(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	for _, u := range []domain.UserID{"a", "b", "c", "d", "e"} {
		f.put(u, gitlab, -time.Minute, "r")
	}
	w := f.worker(app.WorkerConfig{Batch: 2, Concurrency: 1})
	if n, err := w.RunOnce(context.Background()); err != nil || n != 2 {
		t.Fatalf("RunOnce = %d, %v; want the batch of 2", n, err)
	}
	if n, err := w.RunOnce(context.Background()); err != nil || n != 2 {
		t.Fatalf("second RunOnce = %d, %v", n, err)
	}
}

func TestWorkerCountsOnlySuccesses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.provider.setAnswer(failing(domain.ErrGrantRevoked))
	f.put("alice", gitlab, -time.Minute, "r")
	if n, err := f.worker(app.WorkerConfig{}).RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("RunOnce = %d, %v; want 0 refreshed", n, err)
	}
	if row := f.row("alice", gitlab); !row.Refresh.ReauthRequired || row.Refresh.LeaseOwner != "" {
		t.Errorf("refresh state %+v, want reauth without lease", row.Refresh)
	}
}

func TestWorkerIdleWithoutRefresher(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", gitlab, -time.Minute, "r")
	svc := app.NewTokenService(app.Config{}, nil, nil, f.repo, app.NoRefresher{}, nil)
	w := app.NewRefreshWorker(app.WorkerConfig{Enabled: true}, svc.Refreshes(), f.repo, nil)
	if n, err := w.RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerStartStop(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	disabled := f.worker(app.WorkerConfig{})
	if err := disabled.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := disabled.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := app.NewRefreshWorker(app.WorkerConfig{Enabled: true, Interval: time.Hour}, f.svc.Refreshes(), memrepo.New(), nil)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
