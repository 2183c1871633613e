package api_test

// The audit trail end to end: every token handed out and every write
// leaves an event with the caller and request id, and with the audit store
// failing (a trigger refusing inserts), reads answer 503 and no token
// leaves, writes change nothing, and readiness and the log say so.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

type auditRow struct {
	Caller, Action, User, Provider, Code, RequestID string
	Status                                          int
}

func auditRows(t *testing.T, inst *instance, user string) []auditRow {
	t.Helper()
	rows, err := inst.pool.Query(context.Background(),
		`SELECT caller, action, user_id, provider, status, code, request_id FROM audit_events WHERE user_id = $1 ORDER BY id`, user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.Caller, &r.Action, &r.User, &r.Provider, &r.Status, &r.Code, &r.RequestID); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestAuditEventsForHandoutsAndWrites(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := uniq("audit-")
	access, offline := uniq("gho_audit_"), uniq("offline_audit_")
	var ids []string
	for _, r := range []response{
		inst.do("PUT", tokensPath(user, "github"), callerAll, map[string]any{"access_token": access}),
		inst.do("PUT", offlinePath(user), callerAll, map[string]any{"offline_token": offline}),
		inst.do("GET", tokensPath(user, "github"), callerAll, nil),
		inst.do("GET", offlinePath(user), callerAll, nil),
		inst.do("DELETE", tokensPath(user, "github"), callerAll, nil),
		inst.do("DELETE", offlinePath(user), callerAll, nil),
	} {
		if r.StatusCode >= 300 {
			t.Fatalf("%s: %d %s", r.Request.URL, r.StatusCode, r.body)
		}
		ids = append(ids, r.Header.Get("X-Request-Id"))
	}
	want := []auditRow{
		{Action: "put_tokens", Provider: "github", Status: 200},
		{Action: "put_offline_token", Status: 200},
		{Action: "read_access_token", Provider: "github", Status: 200},
		{Action: "read_offline_token", Status: 200},
		{Action: "delete_tokens", Provider: "github", Status: 204},
		{Action: "delete_offline_token", Status: 204},
	}
	got := auditRows(t, inst, user)
	if len(got) != len(want) {
		t.Fatalf("audit events %+v, want %d", got, len(want))
	}
	for i := range want {
		want[i].Caller, want[i].User, want[i].RequestID = callerAll, user, ids[i]
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	text := rowText(t, inst, "audit_events", "user_id = $1", user)
	notIn(t, "audit_events", text, append(encodings(access), encodings(offline)...)...)
}

func TestAuditStoreDownFailsClosed(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := uniq("audit-down-")
	access, offline := uniq("gho_withheld_"), uniq("offline_withheld_")
	wantStatus(t, inst.do("PUT", tokensPath(user, "github"), callerAll, map[string]any{"access_token": access}), http.StatusOK)
	wantStatus(t, inst.do("PUT", offlinePath(user), callerAll, map[string]any{"offline_token": offline}), http.StatusOK)

	ctx := context.Background()
	// The audit store fails: every insert into audit_events is refused.
	for _, stmt := range []string{
		`CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit store down (test)'; END $$`,
		`CREATE TRIGGER audit_down BEFORE INSERT ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_down()`,
	} {
		if _, err := inst.pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []response{
		inst.do("GET", tokensPath(user, "github"), callerAll, nil),
		inst.do("GET", offlinePath(user), callerAll, nil),
		inst.do("PUT", tokensPath(user, "github"), callerAll, map[string]any{"access_token": "replacement"}),
		inst.do("DELETE", tokensPath(user, "github"), callerAll, nil),
		inst.do("DELETE", offlinePath(user), callerAll, nil),
	} {
		wantProblem(t, r, http.StatusServiceUnavailable, "unavailable", "")
		notIn(t, "answer with the audit store down", string(r.body), append(encodings(access), encodings(offline)...)...)
	}
	// Nothing was written: the tokens are as stored before.
	var n int
	if err := inst.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth_tokens WHERE user_id = $1) + (SELECT count(*) FROM offline_tokens WHERE user_id = $1)`, user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d token rows left; the refused deletes removed some", n)
	}
	var ready map[string]any
	r := inst.do("GET", "/readyz", "", nil)
	r.json(t, &ready)
	if ready["audit_failing"] != true || ready["audit_mode"] != "fail_closed" {
		t.Errorf("/readyz with the audit store down: %s", r.body)
	}
	if !strings.Contains(inst.logs.String(), "the audit trail could not be written") {
		t.Errorf("no log line says the audit trail failed")
	}

	if _, err := inst.pool.Exec(ctx, `DROP TRIGGER audit_down ON audit_events`); err != nil {
		t.Fatal(err)
	}
	var tok map[string]any
	r = inst.do("GET", tokensPath(user, "github"), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &tok)
	if tok["access_token"] != access {
		t.Errorf("after the audit store recovered: %v", tok)
	}
	r = inst.do("GET", "/readyz", "", nil)
	if err := json.Unmarshal(r.body, &ready); err != nil || ready["audit_failing"] != false {
		t.Errorf("/readyz after recovery: %s", r.body)
	}
}

// wantAuditEvent waits for the audit event of the exchange r (by its
// request id; refusals are queued, not waited for) and checks it records
// caller, action, user, provider and r's outcome (status, and the problem
// code of an error).
func (inst *instance) wantAuditEvent(t *testing.T, r response, caller, action, user, provider string) {
	t.Helper()
	id := r.Header.Get("X-Request-Id")
	if id == "" {
		t.Fatal("answer without X-Request-Id")
	}
	var got auditRow
	eventually(t, "the audit event of request "+id, func() (bool, error) {
		err := inst.pool.QueryRow(context.Background(),
			`SELECT caller, action, user_id, provider, status, code, request_id FROM audit_events WHERE request_id = $1`, id).
			Scan(&got.Caller, &got.Action, &got.User, &got.Provider, &got.Status, &got.Code, &got.RequestID)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	want := auditRow{Caller: caller, Action: action, User: user, Provider: provider, Status: r.StatusCode, RequestID: id}
	if r.StatusCode >= 400 {
		var p struct{ Code string }
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		want.Code = p.Code
	}
	if got != want {
		t.Errorf("audit event %+v, want %+v", got, want)
	}
}

// routeActions is the audit action of each /v1 route.
var routeActions = map[string]string{
	"PUT /v1/users/{user}/providers/{provider}/tokens":    "put_tokens",
	"GET /v1/users/{user}/providers/{provider}/tokens":    "read_access_token",
	"DELETE /v1/users/{user}/providers/{provider}/tokens": "delete_tokens",
	"GET /v1/users/{user}/providers":                      "list_providers",
	"PUT /v1/users/{user}/offline-token":                  "put_offline_token",
	"GET /v1/users/{user}/offline-token":                  "read_offline_token",
	"DELETE /v1/users/{user}/offline-token":               "delete_offline_token",
	"GET /v1/events":                                      "read_events",
}

// TestAuditEventsForFailedReads: a read that fails in the service leaves
// its event with the status and problem code answered (404 not_found, 409
// reauth_required or token_expired), the caller and the request id; so
// does a write that finds nothing to delete.
func TestAuditEventsForFailedReads(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := uniq("failed-")
	ctx := context.Background()

	r := inst.do("GET", tokensPath(user, "github"), callerAll, nil)
	wantProblem(t, r, http.StatusNotFound, "not_found", "")
	inst.wantAuditEvent(t, r, callerAll, "read_access_token", user, "github")
	r = inst.do("GET", offlinePath(user), callerAll, nil)
	wantProblem(t, r, http.StatusNotFound, "not_found", "")
	inst.wantAuditEvent(t, r, callerAll, "read_offline_token", user, "")
	r = inst.do("DELETE", offlinePath(user), callerAll, nil)
	wantProblem(t, r, http.StatusNotFound, "not_found", "")
	inst.wantAuditEvent(t, r, callerAll, "delete_offline_token", user, "")

	// Tokens marked for re-authorization: 409 reauth_required.
	wantStatus(t, inst.do("PUT", tokensPath(user, "github"), callerAll, map[string]any{"access_token": uniq("at-")}), http.StatusOK)
	if _, err := inst.pool.Exec(ctx, `UPDATE auth_tokens SET reauth_required = true, refresh_error = 'invalid_grant' WHERE user_id = $1`, user); err != nil {
		t.Fatal(err)
	}
	r = inst.do("GET", tokensPath(user, "github"), callerAll, nil)
	wantProblem(t, r, http.StatusConflict, "reauth_required", "")
	inst.wantAuditEvent(t, r, callerAll, "read_access_token", user, "github")

	// An expired token of a provider tokenstore does not refresh: 409
	// token_expired.
	wantStatus(t, inst.do("PUT", tokensPath(user, "gitlab"), callerAll,
		map[string]any{"access_token": uniq("at-"), "access_token_expires_at": "2001-01-01T00:00:00Z"}), http.StatusOK)
	r = inst.do("GET", tokensPath(user, "gitlab"), callerAll, nil)
	wantProblem(t, r, http.StatusConflict, "token_expired", "")
	inst.wantAuditEvent(t, r, callerAll, "read_access_token", user, "gitlab")
}

// TestAuditRefusalWithUnstorablePathValues: a refused request's path may
// carry a user no column can hold (a NUL, invalid UTF-8, 300 characters):
// its event is still stored, with those replaced and cut, and the reads
// whose events share its batch are not failed by it.
func TestAuditRefusalWithUnstorablePathValues(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	long := strings.Repeat("x", 300)
	for _, c := range []struct{ path, user string }{
		{"/v1/users/Bad%00User/providers/github/tokens", "Bad\uFFFDUser"},
		{"/v1/users/Bad%FFUser/providers/github/tokens", "Bad\uFFFDUser"},
		{"/v1/users/" + long + "/providers/github/tokens", strings.Repeat("x", 254) + "…"},
		{"/v1/users/u/providers/" + strings.Repeat("p", 70) + "/tokens", "u"},
	} {
		r := inst.send(rawRequest{method: "GET", path: c.path, header: map[string]string{"Authorization": inst.bearer(callerWithout("tokens:read"))}})
		wantProblem(t, r, http.StatusForbidden, "forbidden", "")
		id := r.Header.Get("X-Request-Id")
		var user, provider string
		eventually(t, "the refusal's event", func() (bool, error) {
			err := inst.pool.QueryRow(context.Background(), `SELECT user_id, provider FROM audit_events WHERE request_id = $1`, id).Scan(&user, &provider)
			if errors.Is(err, pgx.ErrNoRows) {
				return false, nil
			}
			return err == nil, err
		})
		if user != c.user || len([]rune(provider)) > 64 {
			t.Errorf("%s: stored user %q provider %q, want user %q", c.path, user, provider, c.user)
		}
	}
	var ready map[string]any
	inst.do("GET", "/readyz", "", nil).json(t, &ready)
	if _, failed := ready["audit_failed_events"]; failed {
		t.Errorf("/readyz after the refusals: %v; an event failed", ready)
	}
}
