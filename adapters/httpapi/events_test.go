package httpapi_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/domain"
)

// The feed's query parameters mean exactly one thing or are refused with
// 400 naming the parameter, before the feed is asked.
func TestEventQueryIsStrict(t *testing.T) {
	t.Parallel()
	good := []struct {
		query string
		after domain.EventCursor
		limit int
		wait  time.Duration
	}{
		{"", domain.EventCursor{}, 100, 0},
		{"?after=ev1.0.0", domain.EventCursor{}, 100, 0},
		{"?after=ev1.42.7&limit=1&wait=0s", domain.EventCursor{Xact: 42, Seq: 7}, 1, 0},
		{"?limit=1000&wait=20s", domain.EventCursor{}, 1000, 20 * time.Second},
		{"?wait=1500ms", domain.EventCursor{}, 100, 1500 * time.Millisecond},
		{"?wait=20000ms", domain.EventCursor{}, 100, 20 * time.Second},
	}
	for _, tc := range good {
		a := setup(t)
		rec := a.do("GET", "/v1/events"+tc.query, callerAll, nil)
		wantStatus(t, rec, 200)
		if a.svc.gotAfter != tc.after || a.svc.gotLimit != tc.limit || a.svc.gotWait != tc.wait {
			t.Errorf("%q: feed asked after %v limit %d wait %v; want %v %d %v", tc.query, a.svc.gotAfter, a.svc.gotLimit, a.svc.gotWait, tc.after, tc.limit, tc.wait)
		}
	}
	bad := []struct{ query, field string }{
		{"?after=", "after"}, {"?after", "after"}, {"?after=ev1.1.0", "after"}, {"?after=ev1.01.1", "after"},
		{"?after=ev2.1.1", "after"}, {"?after=1", "after"}, {"?after=ev1.1.1%20", "after"}, {"?after=ev1.-1.1", "after"},
		{"?after=ev1.0.0&after=ev1.0.0", "after"},
		{"?limit=0", "limit"}, {"?limit=1001", "limit"}, {"?limit=01", "limit"}, {"?limit=%2B1", "limit"}, {"?limit=", "limit"}, {"?limit=1.0", "limit"},
		{"?wait=30s", "wait"}, {"?wait=20001ms", "wait"}, {"?wait=1m", "wait"}, {"?wait=-1s", "wait"}, {"?wait=1", "wait"},
		{"?wait=1.5s", "wait"}, {"?wait=01s", "wait"}, {"?wait=", "wait"}, {"?wait=1s&wait=1s", "wait"},
		{"?Limit=1", "Limit"}, {"?cursor=ev1.0.0", "cursor"}, {"?", "query"}, {"?a;b", "query"},
	}
	for _, tc := range bad {
		a := setup(t)
		rec := a.do("GET", "/v1/events"+tc.query, callerAll, nil)
		wantProblem(t, rec, 400, httpapi.CodeInvalidRequest, tc.field)
		if len(a.svc.calls) != 0 {
			t.Errorf("%q reached the feed", tc.query)
		}
	}
}

// The feed answers the caller's scope as the filter and the events as the
// document describes them, the last one's cursor as next.
func TestEventFeedAnswer(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 10, 0, 0, 123_000_000, time.UTC)
	for _, tc := range []struct {
		caller string
		want   domain.EventFilter
	}{
		{callerAll, domain.EventFilter{}},
		{callerGitLab, domain.EventFilter{Providers: []domain.Provider{"gitlab"}}},
		{callerTenantA, domain.EventFilter{UserPrefix: "tenant-a/"}},
	} {
		a := setup(t)
		a.svc.events = []domain.Event{
			{Cursor: domain.EventCursor{Xact: 9, Seq: 3}, Kind: domain.EventTokensReauthRequired, User: "tenant-a/ann", Provider: "gitlab", Reason: domain.CodeGrantRevoked, OccurredAt: at},
			{Cursor: domain.EventCursor{Xact: 10, Seq: 4}, Kind: domain.EventOfflineTokenStored, User: "tenant-a/ann", OccurredAt: at},
		}
		rec := a.do("GET", "/v1/events?after=ev1.9.2", tc.caller, nil)
		wantStatus(t, rec, 200)
		if a.svc.gotFilter.UserPrefix != tc.want.UserPrefix || !slices.Equal(a.svc.gotFilter.Providers, tc.want.Providers) {
			t.Errorf("%s: filter %+v, want %+v", tc.caller, a.svc.gotFilter, tc.want)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"events": []any{
				map[string]any{"cursor": "ev1.9.3", "kind": "tokens.reauth_required", "user": "tenant-a/ann", "provider": "gitlab", "reason": "invalid_grant", "occurred_at": "2026-11-30T10:00:00.123Z"},
				map[string]any{"cursor": "ev1.10.4", "kind": "offline_token.stored", "user": "tenant-a/ann", "provider": nil, "reason": nil, "occurred_at": "2026-11-30T10:00:00.123Z"},
			},
			"next": "ev1.10.4",
		}
		got, _ := json.Marshal(body)
		exp, _ := json.Marshal(want)
		if string(got) != string(exp) {
			t.Errorf("%s: body\n got %s\nwant %s", tc.caller, got, exp)
		}
	}
	// An empty page: next is where the caller was.
	a := setup(t)
	rec := a.do("GET", "/v1/events?after=ev1.5.5", callerAll, nil)
	wantStatus(t, rec, 200)
	if got := rec.Body.String(); got != `{"events":[],"next":"ev1.5.5"}`+"\n" {
		t.Errorf("empty page: %s", got)
	}
}

// MaxEventWait keeps a long poll inside the write timeout.
func TestMaxEventWait(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ write, want time.Duration }{
		{0, 25 * time.Second}, {30 * time.Second, 25 * time.Second}, {60 * time.Second, 25 * time.Second},
		{20 * time.Second, 15 * time.Second}, {5 * time.Second, 0}, {time.Second, 0},
	} {
		if got := (httpapi.Config{WriteTimeout: tc.write}).MaxEventWait(); got != tc.want {
			t.Errorf("write timeout %v: %v, want %v", tc.write, got, tc.want)
		}
	}
}
