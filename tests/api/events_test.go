package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

type feedEvent struct {
	Cursor     string  `json:"cursor"`
	Kind       string  `json:"kind"`
	User       string  `json:"user"`
	Provider   *string `json:"provider"`
	Reason     *string `json:"reason"`
	OccurredAt string  `json:"occurred_at"`
}

func (e feedEvent) line() string {
	p, r := "", ""
	if e.Provider != nil {
		p = *e.Provider
	}
	if e.Reason != nil {
		r = *e.Reason
	}
	return fmt.Sprintf("%s %s/%s %s", e.Kind, e.User, p, r)
}

type feedPage struct {
	Events []feedEvent `json:"events"`
	Next   string      `json:"next"`
}

// readFeed pages through the feed as caller from after, until it holds at
// least n events (polling: a write in flight elsewhere in the cluster may
// hold the feed back a moment) and a page comes back empty; it returns the
// events and the last next. The raw bodies go to bodies.
func (inst *instance) readFeed(caller, after string, n int, bodies *strings.Builder) ([]feedEvent, string) {
	inst.t.Helper()
	var out []feedEvent
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := inst.do("GET", "/v1/events?limit=3&after="+url.QueryEscape(after), caller, nil)
		wantStatus(inst.t, r, http.StatusOK)
		bodies.Write(r.body)
		var page feedPage
		r.json(inst.t, &page)
		out, after = append(out, page.Events...), page.Next
		if len(page.Events) == 0 && (len(out) >= n || time.Now().After(deadline)) {
			return out, after
		}
		if len(page.Events) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func lines(events []feedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.line()
	}
	return out
}

// The feed through the real server: the writes' events in commit order,
// no token material in any page, the same events in the same order after
// a restart (the cursor is data: a saved one continues), each caller
// seeing only its scope, and a long poll that answers as soon as an event
// commits.
func TestEventFeed(t *testing.T) {
	t.Parallel()
	scoped := map[string]httpapi.Scope{
		"tenant-a": {UserPrefix: "tenant-a/"},
		"gitlab":   {Providers: []domain.Provider{domain.ProviderGitLab}},
	}
	c := servicetest.Start(t, servicetest.Options{Scoped: scoped})
	inst := (&instance{t: t, base: c.Instances[0].URL, creds: c.Credentials, pool: c.DB, logs: c.Instances[0].Logs,
		app: c.Instances[0], keyring: c.Keyring, client: &http.Client{Timeout: 60 * time.Second}, cluster: c})
	ctx := context.Background()
	var secrets []string
	put := func(user, provider string) {
		at, rt := uniq("feed-at-"), uniq("feed-rt-")
		secrets = append(secrets, at, rt)
		wantStatus(t, inst.do("PUT", tokensPath(user, provider), callerAll, map[string]any{"access_token": at, "refresh_token": rt, "expires_in": 3600}), http.StatusOK)
	}
	put("tenant-a/ann", "gitlab")
	put("tenant-a/ann", "github")
	put("tenant-b/bob", "gitlab")
	off := uniq("feed-offline-")
	secrets = append(secrets, off)
	wantStatus(t, inst.do("PUT", offlinePath("tenant-b/bob"), callerAll, map[string]any{"offline_token": off}), http.StatusOK)
	// The user revokes the grant at GitLab: the next refresh marks the
	// tokens (here marked directly, as the refresh would), then the user
	// reconnects.
	if _, err := inst.pool.Exec(ctx, `UPDATE auth_tokens SET reauth_required = true, refresh_error = 'invalid_grant' WHERE user_id = 'tenant-b/bob'`); err != nil {
		t.Fatal(err)
	}
	put("tenant-b/bob", "gitlab") // recovered
	wantStatus(t, inst.do("DELETE", tokensPath("tenant-a/ann", "github"), callerAll, nil), http.StatusNoContent)
	wantStatus(t, inst.do("DELETE", offlinePath("tenant-b/bob"), callerAll, nil), http.StatusNoContent)
	want := []string{
		"tokens.stored tenant-a/ann/gitlab ", "tokens.stored tenant-a/ann/github ", "tokens.stored tenant-b/bob/gitlab ",
		"offline_token.stored tenant-b/bob/ ", "tokens.recovered tenant-b/bob/gitlab ",
		"tokens.deleted tenant-a/ann/github ", "offline_token.deleted tenant-b/bob/ ",
	}
	var bodies strings.Builder
	before, next := inst.readFeed(callerAll, "ev1.0.0", len(want), &bodies)
	if got := lines(before); !slices.Equal(got, want) {
		t.Fatalf("feed:\n got %q\nwant %q", got, want)
	}
	midway := before[2].Cursor
	for name, wantScoped := range map[string][]string{
		"tenant-a": {want[0], want[1], want[5]},
		"gitlab":   {want[0], want[2], want[3], want[4], want[6]},
	} {
		got, _ := inst.readFeed(name, "ev1.0.0", len(wantScoped), &bodies)
		if !slices.Equal(lines(got), wantScoped) {
			t.Errorf("feed as %s:\n got %q\nwant %q", name, lines(got), wantScoped)
		}
	}
	if s, enc := testlog.FindSecret(bodies.String(), secrets...); s != "" {
		t.Errorf("the feed answered token material (%s)", enc)
	}
	wantProblem(t, inst.do("GET", "/v1/events?after=ev1.9.0", callerAll, nil), http.StatusBadRequest, "invalid_request", "after")
	wantProblem(t, inst.do("GET", "/v1/events?wait=26s", callerAll, nil), http.StatusBadRequest, "invalid_request", "wait")
	wantProblem(t, inst.do("GET", "/v1/events", callerWithout(httpapi.PermEventsRead), nil), http.StatusForbidden, "forbidden", "")

	// A long poll past the end answers once an event commits: its wait
	// (20 s) is the most it may take, and an empty answer fails the test.
	polled := make(chan exchange, 1)
	go func() {
		polled <- inst.sendAsync(ctx, "GET", "/v1/events?wait=20s&after="+url.QueryEscape(next), callerAll, nil)
	}()
	// Most likely the poll is waiting by now (its first look found
	// nothing); if the put wins the race, the first look finds it, which
	// proves less but holds. That a wait wakes up for an event is proved
	// exactly by app's TestEventFeedWaits.
	time.Sleep(500 * time.Millisecond)
	put("tenant-a/cy", "gitlab")
	r := checkExchange(t, <-polled)
	wantStatus(t, r, http.StatusOK)
	var page feedPage
	r.json(t, &page)
	if len(page.Events) != 1 || page.Events[0].line() != "tokens.stored tenant-a/cy/gitlab " || page.Next != page.Events[0].Cursor {
		t.Fatalf("long poll answered %s", r.body)
	}

	// Restart: a new instance on the same database lists the same events
	// in the same order, and a cursor saved before continues.
	if err := c.Instances[0].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c2 := servicetest.Start(t, servicetest.Options{DSN: c.DSN, Keys: c.Keys})
	inst2 := &instance{t: t, base: c2.Instances[0].URL, creds: c2.Credentials, pool: c2.DB, logs: c2.Instances[0].Logs,
		app: c2.Instances[0], keyring: c2.Keyring, client: &http.Client{Timeout: 60 * time.Second}, cluster: c2}
	after, _ := inst2.readFeed(callerAll, "ev1.0.0", len(before)+1, &bodies)
	if got, wantAll := cursorsOf(after), append(cursorsOf(before), cursorsOf(page.Events)...); !slices.Equal(got, wantAll) {
		t.Errorf("after the restart the feed lists %q, before it listed %q", got, wantAll)
	}
	rest, _ := inst2.readFeed(callerAll, midway, len(before)-2, &bodies)
	if got := cursorsOf(rest); !slices.Equal(got, cursorsOf(after[3:])) {
		t.Errorf("from a cursor saved before the restart: %q, want %q", got, cursorsOf(after[3:]))
	}
}

func cursorsOf(events []feedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Cursor + " " + e.line()
	}
	return out
}
