package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// eventsEnv is the configuration of servers delivering to the webhook
// endpoint crm and revoking gitlab's tokens on delete, on the database dsn.
func eventsEnv(t *testing.T, dsn string) map[string]string {
	t.Helper()
	secret := writeFile(t, "crm.secret", webhookSecret+"\n", 0o600)
	return map[string]string{
		"TOKENSTORE_DATABASE_URL": dsn,
		"TOKENSTORE_WEBHOOKS": `[{"name":"crm","url":"https://crm.example/h","events":["tokens.stored","tokens.deleted"],` +
			`"secret_file":"` + secret + `"}]`,
		"TOKENSTORE_PROVIDERS": `[{"name":"gitlab","client_id":"id","client_secret":"cs","revoke_on_delete":true}]`,
	}
}

// listed runs `events list` with args and returns its JSON lines, failing
// unless each has every member.
func listed(t *testing.T, env map[string]string, args ...string) (lines []map[string]any, stderr string) {
	t.Helper()
	out, errOut, err := run(t, env, append([]string{"events", "list"}, args...)...)
	if err != nil {
		t.Fatalf("events list %v: %v; stderr %s", args, err, errOut)
	}
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("events list %v: not a JSON line: %q", args, line)
		}
		for _, k := range []string{"webhook_id", "endpoint", "kind", "user", "provider", "reason", "state", "attempts",
			"last_status", "last_error", "next_attempt_at", "finished_at", "occurred_at"} {
			if _, ok := m[k]; !ok {
				t.Errorf("events list %v: line %s lacks %s", args, line, k)
			}
		}
		if len(m) != 13 {
			t.Errorf("events list %v: line %s has members beyond the 13 documented", args, line)
		}
		lines = append(lines, m)
	}
	return lines, errOut
}

// keys are the lines' "webhook_id endpoint" pairs.
func keys(lines []map[string]any) string {
	var out []string
	for _, l := range lines {
		out = append(out, fmt.Sprint(l["webhook_id"], " ", l["endpoint"]))
	}
	return strings.Join(out, ", ")
}

// claimOne claims target's oldest due delivery.
func claimOne(t *testing.T, repo *postgres.Repository, target string) domain.Delivery {
	t.Helper()
	got, err := repo.ClaimDeliveries(context.Background(), target, "test", time.Minute, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("claim a delivery to %s: %v, %v", target, got, err)
	}
	return got[0]
}

func finish(t *testing.T, repo *postgres.Repository, d domain.Delivery, o domain.DeliveryOutcome) {
	t.Helper()
	if ok, err := repo.FinishDelivery(context.Background(), d, o); err != nil || !ok {
		t.Fatalf("finish the delivery of %s to %s: %v, %v", d.Event.WebhookID(), d.Target, ok, err)
	}
}

// TestEventsListAndRedeliver: deliveries made by the real repository, in
// each state, as `events list` shows them and `events redeliver` queues
// them again.
func TestEventsListAndRedeliver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testdb.NewDSN(t)
	repo := postgres.New(testdb.Pool(t, dsn, nil), postgres.Options{})
	env := eventsEnv(t, dsn)

	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/h"); err != nil {
		t.Fatal(err)
	}
	for _, user := range []domain.UserID{"alice", "bob"} {
		if _, err := repo.PutAuthTokens(ctx, domain.SealedAuthTokens{User: user, Provider: "gitlab", KeyID: "k1",
			AccessToken: []byte("sealed-access"), RefreshToken: []byte("sealed-refresh")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.DeleteAuthTokensRevoking(ctx, "alice", "gitlab"); err != nil {
		t.Fatal(err)
	}
	// The fan-out waits for every older transaction of the cluster to end
	// (other tests' too): until then it queues nothing.
	eventually(t, time.Minute, "the three events queued for crm", func() bool {
		if _, err := repo.FanOutEvents(ctx, "crm", []domain.EventKind{domain.EventTokensStored, domain.EventTokensDeleted}, 100); err != nil {
			t.Fatal(err)
		}
		ds, err := repo.ListDeliveries(ctx, domain.DeliveryFilter{Target: "crm"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(ds) == 3
	})
	// crm: alice's tokens.stored fails, bob's waits for a retry, alice's
	// tokens.deleted is delivered; revocation of alice's tokens fails.
	aliceStored := claimOne(t, repo, "crm")
	finish(t, repo, aliceStored, domain.DeliveryOutcome{State: domain.DeliveryFailed, Status: 500, Error: "webhook crm: HTTP 500"})
	bobStored := claimOne(t, repo, "crm")
	retryAt := time.Now().Add(time.Hour)
	finish(t, repo, bobStored, domain.DeliveryOutcome{State: domain.DeliveryPending, NextAttemptAt: retryAt, Status: 503, Error: "webhook crm: HTTP 503"})
	aliceDeleted := claimOne(t, repo, "crm")
	finish(t, repo, aliceDeleted, domain.DeliveryOutcome{State: domain.DeliveryDelivered, Status: 204})
	revocation := claimOne(t, repo, domain.RevocationTarget)
	finish(t, repo, revocation, domain.DeliveryOutcome{State: domain.DeliveryFailed, Error: "gitlab: revocation rejected",
		Events: []domain.Event{{Kind: domain.EventRevocationFailed, User: "alice", Provider: "gitlab", Reason: domain.CodeRevocationRejected}}})
	if aliceStored.Event.User != "alice" || bobStored.Event.User != "bob" || aliceDeleted.Event.Kind != domain.EventTokensDeleted ||
		revocation.Event.Cursor != aliceDeleted.Event.Cursor {
		t.Fatalf("claimed %+v, %+v, %+v, %+v", aliceStored.Event, bobStored.Event, aliceDeleted.Event, revocation.Event)
	}
	id1, id2, id3 := aliceStored.Event.WebhookID(), bobStored.Event.WebhookID(), aliceDeleted.Event.WebhookID()

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, id1 + " crm, " + id2 + " crm, " + id3 + " crm, " + id3 + " revocation"},
		{[]string{"--failed"}, id1 + " crm, " + id3 + " revocation"},
		{[]string{"--state", "failed"}, id1 + " crm, " + id3 + " revocation"},
		{[]string{"--state", "pending"}, id2 + " crm"},
		{[]string{"--state", "delivered"}, id3 + " crm"},
		{[]string{"--endpoint", "revocation"}, id3 + " revocation"},
		{[]string{"--endpoint", "crm", "--failed"}, id1 + " crm"},
		{[]string{"--failed", "--endpoint", "crm", "--limit", "1"}, id1 + " crm"},
		{[]string{"--endpoint", "old-crm"}, ""},
	} {
		lines, _ := listed(t, env, c.args...)
		if got := keys(lines); got != c.want {
			t.Errorf("events list %v: listed %q, want %q", c.args, got, c.want)
		}
	}
	// What each line says.
	lines, _ := listed(t, env)
	failed, pending, delivered := lines[0], lines[1], lines[2]
	for _, c := range []struct {
		line       map[string]any
		want       map[string]any
		next, done bool
	}{
		{failed, map[string]any{"kind": "tokens.stored", "user": "alice", "provider": "gitlab", "state": "failed",
			"attempts": 1.0, "last_status": 500.0, "last_error": "webhook crm: HTTP 500"}, false, true},
		{pending, map[string]any{"kind": "tokens.stored", "user": "bob", "state": "pending",
			"attempts": 1.0, "last_status": 503.0, "last_error": "webhook crm: HTTP 503"}, true, false},
		{delivered, map[string]any{"kind": "tokens.deleted", "user": "alice", "state": "delivered",
			"attempts": 1.0, "last_status": 204.0, "last_error": "", "reason": ""}, false, true},
		{lines[3], map[string]any{"endpoint": "revocation", "kind": "tokens.deleted", "state": "failed",
			"last_status": 0.0, "last_error": "gitlab: revocation rejected"}, false, true},
	} {
		for k, v := range c.want {
			if c.line[k] != v {
				t.Errorf("%s to %s: %s = %v, want %v", c.line["webhook_id"], c.line["endpoint"], k, c.line[k], v)
			}
		}
		if (c.line["next_attempt_at"] != nil) != c.next || (c.line["finished_at"] != nil) != c.done {
			t.Errorf("%s to %s: next_attempt_at %v, finished_at %v", c.line["webhook_id"], c.line["endpoint"], c.line["next_attempt_at"], c.line["finished_at"])
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(c.line["occurred_at"])); err != nil {
			t.Errorf("occurred_at: %v", err)
		}
	}
	if next, err := time.Parse(time.RFC3339Nano, fmt.Sprint(pending["next_attempt_at"])); err != nil || next.Sub(retryAt).Abs() > time.Millisecond {
		t.Errorf("pending next_attempt_at %v, want %s", pending["next_attempt_at"], retryAt.UTC())
	}
	if _, errOut := listed(t, env, "--limit", "2"); !strings.Contains(errOut, "printed the first 2 deliveries (--limit): more may match") {
		t.Errorf("--limit 2 of 4: stderr %q", errOut)
	}
	if _, errOut := listed(t, env, "--endpoint", "old-crm"); !strings.Contains(errOut, "does not deliver to old-crm (it delivers to crm, revocation)") {
		t.Errorf("--endpoint old-crm: stderr %q", errOut)
	}

	redeliver := func(args ...string) (string, error) {
		t.Helper()
		out, _, err := run(t, env, append([]string{"events", "redeliver"}, args...)...)
		return out, err
	}
	// Nothing to queue for an id is an error saying why that can be.
	for _, id := range []string{id2, "ev_999999999"} { // still pending; no such event
		_, err := redeliver(id)
		wantErr(t, err, "queued nothing for "+id+" to crm, revocation", "no such event", "still pending", "a revocation already done")
	}
	// A failed delivery, by its event's id: pending again, attempts 0.
	if out, err := redeliver(id1); err != nil || out != "queued 1 delivery of "+id1+" again (crm: 1)\n" {
		t.Fatalf("redeliver %s: %q, %v", id1, out, err)
	}
	lines, _ = listed(t, env, "--endpoint", "crm")
	if l := lines[0]; l["webhook_id"] != id1 || l["state"] != "pending" || l["attempts"] != 0.0 || l["last_status"] != 0.0 || l["last_error"] != "" ||
		l["finished_at"] != nil || l["next_attempt_at"] == nil {
		t.Errorf("after redeliver %s: %v", id1, l)
	}
	// --failed: nothing failed to crm any more, which is no error.
	if out, err := redeliver("--failed", "--endpoint", "crm"); err != nil || !strings.HasPrefix(out, "queued nothing: no failed delivery to crm") {
		t.Errorf("redeliver --failed --endpoint crm: %q, %v", out, err)
	}
	// --failed: the failed revocation.
	if out, err := redeliver("--failed"); err != nil || out != "queued 1 failed delivery again (revocation: 1)\n" {
		t.Fatalf("redeliver --failed: %q, %v", out, err)
	}
	if lines, _ := listed(t, env, "--endpoint", "revocation"); lines[0]["state"] != "pending" || lines[0]["attempts"] != 0.0 {
		t.Errorf("after redeliver --failed: %v", lines[0])
	}
	// A revocation done (its tokens forgotten) is not made again; the
	// event's delivered webhook is sent again.
	finish(t, repo, claimOne(t, repo, domain.RevocationTarget), domain.DeliveryOutcome{State: domain.DeliveryDelivered, ForgetTokens: true})
	_, err := redeliver(id3, "--endpoint", "revocation")
	wantErr(t, err, "queued nothing for "+id3+" to revocation", "a revocation already done")
	if out, err := redeliver(id3); err != nil || out != "queued 1 delivery of "+id3+" again (crm: 1)\n" {
		t.Errorf("redeliver %s: %q, %v", id3, out, err)
	}

	// An endpoint gone (410) is claimed from again once redelivered to.
	if _, err := repo.MarkEventTargetGone(ctx, "crm", "the endpoint answered 410 Gone"); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.ClaimDeliveries(ctx, "crm", "test", time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("claimed %d deliveries of a gone endpoint: %v", len(got), err)
	}
	if out, err := redeliver("--failed", "--endpoint", "crm"); err != nil || out != "queued 3 failed deliveries again (crm: 3)\n" {
		t.Fatalf("redeliver --failed --endpoint crm after 410: %q, %v", out, err)
	}
	if got, err := repo.ClaimDeliveries(ctx, "crm", "test", time.Minute, 10); err != nil || len(got) == 0 {
		t.Errorf("nothing claimed after redelivering to a gone endpoint: %v", err)
	}
}

// Every flag and word is read strictly: what means nothing is an error
// naming it, before the database is asked.
func TestEventsRefusesWhatMeansNothing(t *testing.T) {
	t.Parallel()
	env := eventsEnv(t, "postgres://u@127.0.0.1:1/none?sslmode=disable")
	bare := map[string]string{"TOKENSTORE_DATABASE_URL": env["TOKENSTORE_DATABASE_URL"]}
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env, []string{"events"}, "say list or redeliver"},
		{env, []string{"events", "show"}, "say list or redeliver"},
		{env, []string{"events", "list", "extra"}, `unexpected argument "extra"`},
		{env, []string{"events", "list", "--state", "done"}, `--state "done" is not one of pending, delivered, failed`},
		{env, []string{"events", "list", "--failed", "--state", "failed"}, "--failed is --state failed: give one of them"},
		{env, []string{"events", "list", "--limit", "0"}, "--limit 0 is not between 1 and 10000"},
		{env, []string{"events", "list", "--limit", "10001"}, "--limit 10001 is not between 1 and 10000"},
		{env, []string{"events", "list", "--endpoint", "CRM"}, `--endpoint "CRM" is not an endpoint's name`},
		{env, []string{"events", "list", "--endpoint", ""}, `--endpoint "" is not an endpoint's name`},
		{env, []string{"events", "list", "--usr", "alice"}, "flag provided but not defined: -usr"},
		{env, []string{"events", "redeliver"}, "say which deliveries: an event's webhook-id (ev_123"},
		{env, []string{"events", "redeliver", "123"}, `"123" is not a webhook-id: ev_ followed by the event's number, such as ev_123`},
		{env, []string{"events", "redeliver", "ev1.0.5"}, `"ev1.0.5" is not a webhook-id`},
		{env, []string{"events", "redeliver", "ev_01"}, `"ev_01" is not a webhook-id`},
		{env, []string{"events", "redeliver", "ev_1", "--failed"}, "give an event's webhook-id or --failed, not both"},
		{env, []string{"events", "redeliver", "ev_1", "ev_2"}, `unexpected argument "ev_2"`},
		{env, []string{"events", "redeliver", "--failed", "--limit", "5"}, "--limit is for events list only"},
		{env, []string{"events", "redeliver", "--failed", "--state", "failed"}, "--state is for events list only"},
		{env, []string{"events", "redeliver", "--failed", "--endpoint", "old-crm"},
			"--endpoint old-crm: this configuration delivers to crm, revocation: deliveries queued for another would never be sent"},
		{bare, []string{"events", "redeliver", "--failed"}, "this configuration has no webhooks and no provider with revoke_on_delete"},
		{bare, []string{"events", "redeliver", "ev_1", "--endpoint", "revocation"}, "no webhooks and no provider with revoke_on_delete"},
	} {
		out, _, err := run(t, c.env, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q", c.args, out)
		}
	}
}
