package refresh_test

// The audit trail of refreshes against a real PostgreSQL: one refresh
// event per provider call, committed with the new tokens (several
// instances, many readers); a refusing provider's refresh and transition
// to reauth_required; an audit store that refuses events (a trigger) makes
// a refresh store nothing and the read answer 503 with no token; the
// worker's sweep of lapsed leases records one event per marked row; and no
// event, as `tokenstore audit list` prints them, carries token material.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// auditEvents lists user's stored events of the service's own work
// (refresh, reauth_required) as "action status code caller instance".
func (c *cluster) auditEvents(t *testing.T, user string) []string {
	t.Helper()
	rows, err := c.db.Query(context.Background(), `
		SELECT action, status, code, caller, instance, request_id <> '' FROM audit_events
		WHERE user_id = $1 AND action IN ('refresh', 'reauth_required') ORDER BY id`, user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var action, code, caller, instance string
		var status int
		var hasRequest bool
		if err := rows.Scan(&action, &status, &code, &caller, &instance, &hasRequest); err != nil {
			t.Fatal(err)
		}
		req := "no-request"
		if hasRequest {
			req = "request"
		}
		out = append(out, fmt.Sprintf("%s %d %s %s %s %s", action, status, code, caller, instance, req))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantEvents(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("audit events:\n got %q\nwant %q", got, want)
	}
}

// TestAuditOneRefreshEventWithTheNewTokens: readers on two instances share
// one provider call, and exactly one refresh event is stored, by the
// caller of the read that started it, with the tokens it stored.
func TestAuditOneRefreshEventWithTheNewTokens(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2})
	const user = "audited-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0)
	var wg sync.WaitGroup
	for i := range 10 {
		in := c.instances[i%2]
		wg.Go(func() {
			r, err := in.getE(user)
			if err != nil || r.status != http.StatusOK || r.token != c.fake.Access(g.id) {
				t.Errorf("%s read: %v %v", in.name, r, err)
			}
		})
	}
	wg.Wait()
	if n := c.fake.Calls(g.id); n != 1 {
		t.Fatalf("%d provider calls, want 1", n)
	}
	events := c.auditEvents(t, user)
	if len(events) != 1 || (events[0] != "refresh 200  "+servicetest.CallerAll+" inst0 request" &&
		events[0] != "refresh 200  "+servicetest.CallerAll+" inst1 request") {
		t.Fatalf("refresh events %q, want one 200 by the reader", events)
	}
	if r := c.row(t, user); r.access != c.fake.Access(g.id) {
		t.Errorf("stored access token is not the refreshed one")
	}
	c.checkAuditList(t)
}

// TestAuditInvalidGrant: a refused grant records the attempt and the
// transition to reauth_required, both 409 invalid_grant.
func TestAuditInvalidGrant(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	const user = "audited-revoked"
	g := c.fake.NewGrant()
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeInvalidGrant; b.echoSecrets = true })
	c.putGrant(t, user, g, 0)
	wantStatus(t, "GET with a revoked grant", c.instances[0].get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
	wantEvents(t, c.auditEvents(t, user),
		"refresh 409 invalid_grant "+servicetest.CallerAll+" inst0 request",
		"reauth_required 409 invalid_grant "+servicetest.CallerAll+" inst0 request")
	c.checkAuditList(t)
}

// TestAuditStoreDownRefreshStoresNothing: with every insert into
// audit_events refused, the provider answers but the new tokens are not
// stored without their event: the read answers 503 with no token, the row
// keeps its old tokens, and /readyz shows the failing trail. Once the
// store is back and the lease has lapsed, a read marks the tokens for
// re-authorization, with its event.
func TestAuditStoreDownRefreshStoresNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{refresh: lease(3*time.Second, 10*time.Second), providerTimeout: time.Second})
	in := c.instances[0]
	const user = "audited-down"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0)
	before := c.row(t, user)
	c.exec(t, `CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store down (test)'; END $$`)
	c.exec(t, `CREATE TRIGGER audit_down BEFORE INSERT ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_down()`)

	r := in.get(t, user)
	wantStatus(t, "GET with the audit store down", r, http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	if bytes.Contains(r.body, []byte(c.fake.Access(g.id))) || r.token != "" {
		t.Fatal("the refreshed token left with the audit store down")
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Fatalf("%d provider calls, want 1", n)
	}
	if got := c.row(t, user); got.access != before.access || got.refresh != before.refresh {
		t.Errorf("tokens stored without their audit event")
	}
	if ready := in.readiness(t); ready["audit_failing"] != true {
		t.Errorf("/readyz with the audit store down: %v", ready)
	}
	wantEvents(t, c.auditEvents(t, user))

	// The attempt gives up when its lease runs out; then the store comes back.
	eventually(t, 20*time.Second, "the lease to lapse", func() (bool, string) {
		var lapsed bool
		err := c.db.QueryRow(context.Background(), `SELECT refresh_lease_until <= now() FROM auth_tokens WHERE user_id = $1`, user).Scan(&lapsed)
		return err == nil && lapsed, fmt.Sprint(err)
	})
	c.exec(t, `DROP TRIGGER audit_down ON audit_events`)
	wantStatus(t, "GET after the lease lapsed", in.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
	// The attempt's own outcome (503 refresh_interrupted) had nothing to
	// ride with and was queued while the store failed: stored if the
	// batcher took it after the store came back, lost otherwise.
	wantEvents(t, slices.DeleteFunc(c.auditEvents(t, user), func(e string) bool {
		return e == "refresh 503 refresh_interrupted "+servicetest.CallerAll+" inst0 request"
	}), "reauth_required 409 refresh_interrupted "+servicetest.CallerAll+" inst0 request")
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls, want still 1", n)
	}
	c.checkAuditList(t)
}

// TestAuditWorkerSweepRecordsEachRow: the worker's sweep of lapsed leases
// records one reauth_required event per row it marks, by its instance and
// no caller, in the sweep's statement; with the audit store refusing, it
// marks nothing.
func TestAuditWorkerSweepRecordsEachRow(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	in := c.instances[0]
	users := []string{"lapsed-a", "lapsed-b"}
	for _, u := range users {
		g := c.fake.NewGrant()
		c.putGrant(t, u, g, 3600)
		c.exec(t, `UPDATE auth_tokens SET refresh_lease_owner = 'dead/1', refresh_lease_until = now() - interval '1 minute' WHERE user_id = $1`, u)
	}
	c.exec(t, `CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store down (test)'; END $$`)
	c.exec(t, `CREATE TRIGGER audit_down BEFORE INSERT ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_down()`)
	if _, err := in.worker.RunOnce(context.Background()); err == nil {
		t.Fatal("the sweep succeeded with the audit store refusing its events")
	}
	for _, u := range users {
		if c.row(t, u).reauth {
			t.Errorf("%s marked without its event", u)
		}
	}
	c.exec(t, `DROP TRIGGER audit_down ON audit_events`)
	if _, err := in.worker.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if !c.row(t, u).reauth {
			t.Errorf("%s not marked", u)
		}
		wantEvents(t, c.auditEvents(t, u), "reauth_required 409 refresh_interrupted  inst0 no-request")
	}
}

// checkAuditList runs `tokenstore audit list` on the cluster's database
// and fails t if its output holds any token material the fake issued or a
// test stored, in any encoding.
func (c *cluster) checkAuditList(t *testing.T) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"TOKENSTORE_DATABASE_URL": c.run.DSN}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cli.Run(ctx, []string{"audit", "list"}, cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}); err != nil {
		t.Fatalf("audit list: %v: %s", err, errOut.String())
	}
	if out.Len() == 0 {
		t.Fatal("audit list printed nothing")
	}
	if secret, enc := testlog.FindSecret(out.String(), c.fake.Secrets()...); secret != "" {
		t.Errorf("audit list prints token material %q encoded as %q", secret, enc)
	}
}
