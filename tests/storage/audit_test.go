package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/repotest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestAuditContract(t *testing.T) {
	t.Parallel()
	repotest.RunAudit(t, func(t *testing.T) repotest.AuditLog {
		return postgres.New(testdb.New(t), postgres.Options{})
	})
}

// The audit table is append-only whoever connects: the trigger refuses
// UPDATE, TRUNCATE and a DELETE that is not retention's, even when the
// statement comes from outside the service (here: the table's owner).
func TestAuditEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	repo := postgres.New(pool, postgres.Options{})
	if err := repo.RecordAuditEvents(ctx, []domain.AuditEvent{repotest.AuditSample(1), repotest.AuditSample(2)}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE audit_events SET user_id = 'someone-else'`,
		`UPDATE audit_events SET status = 200 WHERE false OR true`,
		`DELETE FROM audit_events`,
		`DELETE FROM audit_events WHERE request_id = 'req-1'`,
		`TRUNCATE audit_events`,
		// The setting present but not on refuses as well.
		`BEGIN; SET LOCAL tokenstore.audit_retention = 'off'; DELETE FROM audit_events; COMMIT`,
	} {
		_, err := pool.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", stmt, err)
		}
		_, _ = pool.Exec(ctx, "ROLLBACK")
	}
	var n int
	var users string
	if err := pool.QueryRow(ctx, `SELECT count(*), string_agg(user_id, ',' ORDER BY id) FROM audit_events`).Scan(&n, &users); err != nil {
		t.Fatal(err)
	}
	if n != 2 || users != "user-1,user-2" {
		t.Errorf("after the refused statements: %d events, users %q; want the 2 recorded unchanged", n, users)
	}
}

// An event that does not fit the table fails as a whole batch: none of its
// events is stored (one statement, one transaction).
func TestAuditBatchIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	repo := postgres.New(pool, postgres.Options{})
	bad := repotest.AuditSample(2)
	bad.Action = ""
	err := repo.RecordAuditEvents(ctx, []domain.AuditEvent{repotest.AuditSample(1), bad})
	if err == nil {
		t.Fatal("a batch with an event without action was stored")
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d events of a failed batch stored", n)
	}
}
