package storage_test

import (
	"context"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/repotest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// Retention removes events older than audit.retention by the database's
// clock, in batches, and keeps the rest; it is the one DELETE the
// append-only trigger lets through.
func TestAuditRetentionRemovesOnlyOldEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	repo := postgres.New(pool, postgres.Options{})
	// 2500 events 401 days old (more than two batches), written as an
	// older instance would have: occurred_at given explicitly.
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (occurred_at, instance, caller, action, user_id, provider, status, code, request_id)
		SELECT now() - interval '401 days', 'old', 'svc', 'read_access_token', 'u' || g, 'gitlab', 200, '', 'r' || g
		FROM generate_series(1, 2500) AS g`); err != nil {
		t.Fatal(err)
	}
	if err := repo.RecordAuditEvents(ctx, []domain.AuditEvent{repotest.AuditSample(1)}); err != nil {
		t.Fatal(err)
	}
	n, err := app.NewAuditRetention(app.DefaultAuditRetention, nil, repo).RunOnce(ctx)
	if err != nil || n != 2500 {
		t.Fatalf("retention removed %d (%v), want the 2500 old events", n, err)
	}
	var left int
	var instance string
	if err := pool.QueryRow(ctx, `SELECT count(*), max(instance) FROM audit_events`).Scan(&left, &instance); err != nil {
		t.Fatal(err)
	}
	if left != 1 || instance != "i-1" {
		t.Errorf("left %d events (instance %q), want the recent one", left, instance)
	}
	// Retention 0 keeps everything.
	if n, err := app.NewAuditRetention(0, nil, repo).RunOnce(ctx); n != 0 || err != nil {
		t.Errorf("retention 0 removed %d (%v)", n, err)
	}
}

// Event retention removes outbox events older than events.retention by the
// database's clock, in batches, and keeps the rest; the feed then starts
// at the oldest kept.
func TestEventRetentionRemovesOnlyOldEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	repo := postgres.New(pool, postgres.Options{})
	if _, err := pool.Exec(ctx, `INSERT INTO events (occurred_at, kind, user_id, provider, reason)
		SELECT now() - interval '8 days', 'tokens.stored', 'old' || g, 'gitlab', ''
		FROM generate_series(1, 2500) AS g`); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutAuthTokens(ctx, repotest.Sample("recent", domain.ProviderGitLab, "1")); err != nil {
		t.Fatal(err)
	}
	n, err := app.NewEventRetention(app.DefaultEventRetention, nil, repo).RunOnce(ctx)
	if err != nil || n != 2500 {
		t.Fatalf("retention removed %d (%v), want the 2500 old events", n, err)
	}
	events, _ := repotest.WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 100, 1)
	if len(events) != 1 || events[0].User != "recent" {
		t.Errorf("left %+v, want the recent event", events)
	}
	if n, err := app.NewEventRetention(0, nil, repo).RunOnce(ctx); n != 0 || err != nil {
		t.Errorf("retention 0 removed %d (%v)", n, err)
	}
}
