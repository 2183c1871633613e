package api_test

// Success paths of every route, with exact response checks.

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/client"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/servicetest"
)

func tokensPath(user, provider string) string {
	return "/v1/users/" + url.PathEscape(user) + "/providers/" + provider + "/tokens"
}

func providersPath(user string) string { return "/v1/users/" + url.PathEscape(user) + "/providers" }

func offlinePath(user string) string { return "/v1/users/" + url.PathEscape(user) + "/offline-token" }

// statusKeys are the members of a provider status (PUT tokens, list providers).
var statusKeys = []string{"provider", "state", "access_token_expires_at", "refresh_token_expires_at", "has_refresh_token", "refresh_error", "ambiguous_retries", "updated_at"}

func TestHealthProbesNeedNoCredential(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	tests := []struct {
		path string
		want string
		keys []string
	}{
		{"/healthz", "ok", []string{"status"}},
		{"/readyz", "ready", []string{"status", "database_clock_skew_seconds", "audit_mode"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			r := inst.forT(t).do("GET", tc.path, "", nil)
			wantStatus(t, r, http.StatusOK)
			m := objectKeys(t, r, tc.keys...)
			if m["status"] != tc.want {
				t.Fatalf("status = %v, want %q", m["status"], tc.want)
			}
		})
	}
}

// expiryWant says what an expiry member must be.
type expiryWant struct {
	null      bool   // JSON null: never expires
	exact     string // the exact RFC 3339 string
	inSeconds int64  // now + inSeconds, now taken around the request
}

func checkExpiry(t *testing.T, what string, got any, want expiryWant, before, after time.Time) {
	t.Helper()
	switch {
	case want.null:
		if got != nil {
			t.Errorf("%s = %#v, want null (never)", what, got)
		}
	case want.exact != "":
		if got != want.exact {
			t.Errorf("%s = %#v, want %q", what, got, want.exact)
		}
	default:
		ts := parseTime(t, what, got)
		d := time.Duration(want.inSeconds) * time.Second
		lo, hi := before.Truncate(time.Microsecond).Add(d), after.Add(d)
		if ts.Before(lo) || ts.After(hi) {
			t.Errorf("%s = %v, want between %v and %v (now + %ds)", what, ts, lo, hi, want.inSeconds)
		}
	}
}

func TestPutTokens(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	maxSeconds := int64(math.MaxInt64 / int64(time.Second))
	tests := []struct {
		name        string
		body        map[string]any // access_token is added
		refresh     bool           // add a refresh_token
		state       string
		access      expiryWant
		refreshWant expiryWant
	}{
		{"expires_in with refresh token and refresh_token_expires_in",
			map[string]any{"expires_in": 7200, "refresh_token_expires_in": 86400}, true,
			"valid", expiryWant{inSeconds: 7200}, expiryWant{inSeconds: 86400}},
		{"RFC 3339 with offset is returned in UTC",
			map[string]any{"access_token_expires_at": "2099-01-02T17:04:05+02:00", "refresh_token_expires_at": "2099-06-01T00:00:00Z"}, true,
			"valid", expiryWant{exact: "2099-01-02T15:04:05Z"}, expiryWant{exact: "2099-06-01T00:00:00Z"}},
		{"RFC 3339 fraction is kept to the microsecond",
			map[string]any{"access_token_expires_at": "2099-01-02T15:04:05.123456789Z"}, false,
			"valid", expiryWant{exact: "2099-01-02T15:04:05.123456Z"}, expiryWant{null: true}},
		{"no expiry and no refresh token: never, null",
			map[string]any{}, false,
			"valid", expiryWant{null: true}, expiryWant{null: true}},
		{"refresh token without expiry: never, null",
			map[string]any{"expires_in": 3600}, true,
			"valid", expiryWant{inSeconds: 3600}, expiryWant{null: true}},
		{"short-lived, just obtained: valid (its margin is at most half its lifetime)",
			map[string]any{"expires_in": 60}, true,
			"valid", expiryWant{inSeconds: 60}, expiryWant{null: true}},
		{"past expiry with refresh token: expired",
			map[string]any{"access_token_expires_at": "2001-01-01T00:00:00Z"}, true,
			"expired", expiryWant{exact: "2001-01-01T00:00:00Z"}, expiryWant{null: true}},
		{"past expiry without refresh token: reauth_required",
			map[string]any{"access_token_expires_at": "2001-01-01T00:00:00Z"}, false,
			"reauth_required", expiryWant{exact: "2001-01-01T00:00:00Z"}, expiryWant{null: true}},
		{"refresh_token_expires_in 0: the refresh token never expires, null (Keycloak offline tokens)",
			map[string]any{"expires_in": 3600, "refresh_token_expires_in": 0}, true,
			"valid", expiryWant{inSeconds: 3600}, expiryWant{null: true}},
		{"expired access token, refresh_token_expires_in 0: expired, not reauth_required",
			map[string]any{"access_token_expires_at": "2001-01-01T00:00:00Z", "refresh_token_expires_in": 0}, true,
			"expired", expiryWant{exact: "2001-01-01T00:00:00Z"}, expiryWant{null: true}},
		{"past expiry and expired refresh token: reauth_required",
			map[string]any{"access_token_expires_at": "2001-01-01T00:00:00Z", "refresh_token_expires_at": "2001-02-01T00:00:00Z"}, true,
			"reauth_required", expiryWant{exact: "2001-01-01T00:00:00Z"}, expiryWant{exact: "2001-02-01T00:00:00Z"}},
		{"huge expires_in saturates in the far future",
			map[string]any{"expires_in": int64(math.MaxInt64)}, false,
			"valid", expiryWant{inSeconds: maxSeconds}, expiryWant{null: true}},
		{"first overflowing expires_in saturates",
			map[string]any{"expires_in": maxSeconds + 1}, false,
			"valid", expiryWant{inSeconds: maxSeconds}, expiryWant{null: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			user, provider := uniq("user-"), "gitlab"
			access, refresh := uniq("glpat-"), uniq("glrt-")
			body := map[string]any{"access_token": access}
			for k, v := range tc.body {
				body[k] = v
			}
			if tc.refresh {
				body["refresh_token"] = refresh
			}
			before := time.Now()
			r := inst.do("PUT", tokensPath(user, provider), callerAll, body)
			after := time.Now()
			wantStatus(t, r, http.StatusOK)
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			notIn(t, "PUT response", string(r.body), access, refresh)
			st := objectKeys(t, r, statusKeys...)
			if st["provider"] != provider || st["state"] != tc.state || st["has_refresh_token"] != tc.refresh {
				t.Errorf("provider, state, has_refresh_token = %v, %v, %v; want %s, %s, %v",
					st["provider"], st["state"], st["has_refresh_token"], provider, tc.state, tc.refresh)
			}
			checkExpiry(t, "access_token_expires_at", st["access_token_expires_at"], tc.access, before, after)
			checkExpiry(t, "refresh_token_expires_at", st["refresh_token_expires_at"], tc.refreshWant, before, after)
			parseTime(t, "updated_at", st["updated_at"])

			// The listing reports the same status.
			r = inst.do("GET", providersPath(user), callerAll, nil)
			wantStatus(t, r, http.StatusOK)
			list := objectKeys(t, r, "user", "providers")
			ps, _ := list["providers"].([]any)
			if list["user"] != user || len(ps) != 1 {
				t.Fatalf("providers = %s", r.body)
			}
			for k, v := range st {
				if got := ps[0].(map[string]any)[k]; got != v {
					t.Errorf("listing %s = %#v, PUT said %#v", k, got, v)
				}
			}

			// GET returns the access token unless it has expired.
			r = inst.do("GET", tokensPath(user, provider), callerAll, nil)
			if tc.state == "expired" || tc.state == "reauth_required" {
				wantProblem(t, r, http.StatusConflict, "token_expired", "")
				notIn(t, "GET response", string(r.body), access, refresh)
				return
			}
			wantStatus(t, r, http.StatusOK)
			got := objectKeys(t, r, "user", "provider", "access_token", "access_token_expires_at")
			if got["user"] != user || got["provider"] != provider || got["access_token"] != access ||
				got["access_token_expires_at"] != st["access_token_expires_at"] {
				t.Errorf("GET = %s; want user %s, provider %s, the stored access token and expiry %v",
					r.body, user, provider, st["access_token_expires_at"])
			}
			notIn(t, "GET response", string(r.body), refresh)
		})
	}
}

func TestPutTokensIsAnIdempotentUpsert(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user, provider := "alice", "github"
	full := map[string]any{
		"access_token": uniq("gho-"), "refresh_token": uniq("ghr-"),
		"access_token_expires_at": "2099-01-01T00:00:00Z", "refresh_token_expires_at": "2099-02-01T00:00:00Z",
	}
	type row struct {
		n       int
		version int64
		created time.Time
		refresh []byte
		accExp  *time.Time
		refExp  *time.Time
	}
	read := func() row {
		t.Helper()
		var r row
		err := inst.pool.QueryRow(context.Background(), `
			SELECT count(*) OVER (), version, created_at, refresh_token, access_token_expires_at, refresh_token_expires_at
			FROM auth_tokens WHERE user_id = $1 AND provider = $2`, user, provider).
			Scan(&r.n, &r.version, &r.created, &r.refresh, &r.accExp, &r.refExp)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	first := inst.do("PUT", tokensPath(user, provider), callerAll, full)
	wantStatus(t, first, http.StatusOK)
	r1 := read()
	again := inst.do("PUT", tokensPath(user, provider), callerAll, full)
	wantStatus(t, again, http.StatusOK)
	r2 := read()
	if r2.n != 1 || r2.version != r1.version+1 || !r2.created.Equal(r1.created) {
		t.Fatalf("after the same PUT twice: %d rows, version %d -> %d, created_at %v -> %v; want 1 row, version+1, same created_at",
			r2.n, r1.version, r2.version, r1.created, r2.created)
	}
	var a1, a2 map[string]any
	first.json(t, &a1)
	again.json(t, &a2)
	for _, k := range []string{"provider", "state", "access_token_expires_at", "refresh_token_expires_at", "has_refresh_token"} {
		if a1[k] != a2[k] {
			t.Errorf("second PUT %s = %v, first %v", k, a2[k], a1[k])
		}
	}

	// A second PUT replaces every field: omitted ones are gone, not kept.
	newAccess := uniq("gho-")
	r := inst.do("PUT", tokensPath(user, provider), callerAll, map[string]any{"access_token": newAccess})
	wantStatus(t, r, http.StatusOK)
	st := objectKeys(t, r, statusKeys...)
	if st["has_refresh_token"] != false || st["access_token_expires_at"] != nil || st["refresh_token_expires_at"] != nil {
		t.Errorf("PUT without refresh token and expiries = %s; want has_refresh_token false and null expiries", r.body)
	}
	r3 := read()
	if r3.n != 1 || r3.refresh != nil || r3.accExp != nil || r3.refExp != nil {
		t.Errorf("row after overwrite: %d rows, refresh_token %v, expiries %v %v; want 1 row, all NULL", r3.n, r3.refresh, r3.accExp, r3.refExp)
	}
	r = inst.do("GET", tokensPath(user, provider), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	got := objectKeys(t, r, "user", "provider", "access_token", "access_token_expires_at")
	if got["access_token"] != newAccess || got["access_token_expires_at"] != nil {
		t.Errorf("GET after overwrite = %s; want the new access token, never expiring", r.body)
	}
	r = inst.do("GET", providersPath(user), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	var list struct {
		Providers []map[string]any `json:"providers"`
	}
	r.json(t, &list)
	if len(list.Providers) != 1 || list.Providers[0]["has_refresh_token"] != false {
		t.Errorf("providers after overwrite = %s", r.body)
	}
}

func TestGetTokensNeverReturnsTheRefreshToken(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	tests := []struct {
		name string
		body map[string]any
	}{
		{"refresh token without expiry", map[string]any{"expires_in": 3600}},
		{"refresh token with expiry", map[string]any{"expires_in": 3600, "refresh_token_expires_in": 7200}},
		{"never-expiring access token", map[string]any{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			user := uniq("u-")
			access, refresh := uniq("at-"), uniq("rt-")
			body := map[string]any{"access_token": access, "refresh_token": refresh}
			for k, v := range tc.body {
				body[k] = v
			}
			wantStatus(t, inst.do("PUT", tokensPath(user, "bitbucket"), callerAll, body), http.StatusOK)
			r := inst.do("GET", tokensPath(user, "bitbucket"), callerAll, nil)
			wantStatus(t, r, http.StatusOK)
			m := objectKeys(t, r, "user", "provider", "access_token", "access_token_expires_at")
			if _, ok := m["refresh_token"]; ok {
				t.Error("GET tokens has a refresh_token member")
			}
			if m["access_token"] != access {
				t.Errorf("access_token = %v, want %s", m["access_token"], access)
			}
			notIn(t, "GET tokens body", string(r.body), refresh)
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
		})
	}
}

func TestDeleteTokens(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	c, ctx := inst.api(callerAll), context.Background()
	user := "bob"
	for _, p := range []string{"github", "gitlab"} {
		if _, err := c.PutTokens(ctx, user, p, client.PutTokensRequest{AccessToken: uniq(p)}); err != nil {
			t.Fatal(err)
		}
	}
	r := inst.do("DELETE", tokensPath(user, "github"), callerAll, nil)
	wantStatus(t, r, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Errorf("204 body = %q, want empty", r.body)
	}
	wantProblem(t, inst.do("GET", tokensPath(user, "github"), callerAll, nil), http.StatusNotFound, "not_found", "")
	wantProblem(t, inst.do("DELETE", tokensPath(user, "github"), callerAll, nil), http.StatusNotFound, "not_found", "")

	// The other provider is untouched.
	if _, err := c.GetAccessToken(ctx, user, "gitlab"); err != nil {
		t.Errorf("GetAccessToken of the other provider: %v", err)
	}
	list, err := c.ListProviders(ctx, user)
	if err != nil || len(list.Providers) != 1 || list.Providers[0].Provider != "gitlab" {
		t.Errorf("providers after delete = %+v, %v; want only gitlab", list, err)
	}
}

func TestListProviders(t *testing.T) {
	t.Parallel()
	inst := startWith(t, servicetest.Options{Configure: func(cfg *cli.Config) { // two names of its own
		cfg.App.Providers = append(cli.DevProviders(), "custom-idp_2", "zzz")
	}})
	user, other := "carol", "dave"
	past, past2, future := "2001-01-01T00:00:00Z", "2001-06-01T00:00:00Z", "2099-01-01T00:00:00Z"
	// Stored out of order; listed sorted by provider name.
	puts := []struct {
		provider string
		body     map[string]any
		want     map[string]any // expected status members besides provider and updated_at
	}{
		{"keycloak", map[string]any{"access_token_expires_at": past},
			map[string]any{"state": "reauth_required", "access_token_expires_at": past, "refresh_token_expires_at": nil, "has_refresh_token": false}},
		{"github", map[string]any{"access_token_expires_at": future, "refresh_token": "r1"},
			map[string]any{"state": "valid", "access_token_expires_at": future, "refresh_token_expires_at": nil, "has_refresh_token": true}},
		{"gitlab", map[string]any{"expires_in": 300, "refresh_token": "r2", "refresh_token_expires_at": future}, // a fresh 5-minute token: outside its 2.5m margin
			map[string]any{"state": "valid", "refresh_token_expires_at": future, "has_refresh_token": true}},
		{"bitbucket", map[string]any{"access_token_expires_at": past, "refresh_token": "r3", "refresh_token_expires_at": future},
			map[string]any{"state": "expired", "access_token_expires_at": past, "refresh_token_expires_at": future, "has_refresh_token": true}},
		{"azure_devops", map[string]any{"access_token_expires_at": past, "refresh_token": "r4", "refresh_token_expires_at": past2},
			map[string]any{"state": "reauth_required", "access_token_expires_at": past, "refresh_token_expires_at": past2, "has_refresh_token": true}},
		{"custom-idp_2", map[string]any{},
			map[string]any{"state": "valid", "access_token_expires_at": nil, "refresh_token_expires_at": nil, "has_refresh_token": false}},
	}
	for _, p := range puts {
		body := map[string]any{"access_token": uniq("at-")}
		for k, v := range p.body {
			body[k] = v
		}
		wantStatus(t, inst.do("PUT", tokensPath(user, p.provider), callerAll, body), http.StatusOK)
	}
	wantStatus(t, inst.do("PUT", tokensPath(other, "zzz"), callerAll, map[string]any{"access_token": "x"}), http.StatusOK)

	r := inst.do("GET", providersPath(user), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	m := objectKeys(t, r, "user", "providers")
	if m["user"] != user {
		t.Errorf("user = %v, want %s", m["user"], user)
	}
	got, _ := m["providers"].([]any)
	wantOrder := []string{"azure_devops", "bitbucket", "custom-idp_2", "github", "gitlab", "keycloak"}
	if len(got) != len(wantOrder) {
		t.Fatalf("providers = %s, want %v", r.body, wantOrder)
	}
	byName := map[string]map[string]any{}
	for _, p := range puts {
		byName[p.provider] = p.want
	}
	for i, name := range wantOrder {
		entry, _ := got[i].(map[string]any)
		if entry["provider"] != name {
			t.Fatalf("providers[%d] = %v, want %s (sorted); body %s", i, entry["provider"], name, r.body)
		}
		if len(entry) != len(statusKeys) {
			t.Errorf("providers[%d] has members %v, want %v", i, entry, statusKeys)
		}
		for k, v := range byName[name] {
			if entry[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", name, k, entry[k], v)
			}
		}
		parseTime(t, name+" updated_at", entry["updated_at"])
	}

	for _, u := range []string{"nobody", uniq("unknown-")} {
		r = inst.do("GET", providersPath(u), callerAll, nil)
		wantStatus(t, r, http.StatusOK)
		if want := `{"user":"` + u + `","providers":[]}`; strings.TrimSpace(string(r.body)) != want {
			t.Errorf("unknown user: body %s, want %s", r.body, want)
		}
	}
}

func TestOfflineToken(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := "f47ac10b-58cc-4372-a567-0e02b2c3d479"
	tok1, tok2 := uniq("offline-1-"), uniq("offline-2-")

	r := inst.do("PUT", offlinePath(user), callerAll, map[string]any{"offline_token": tok1})
	wantStatus(t, r, http.StatusOK)
	notIn(t, "PUT offline response", string(r.body), tok1)
	put1 := objectKeys(t, r, "user", "created_at", "updated_at")
	created := parseTime(t, "created_at", put1["created_at"])
	if put1["user"] != user {
		t.Errorf("user = %v, want %s", put1["user"], user)
	}

	r = inst.do("GET", offlinePath(user), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	get1 := objectKeys(t, r, "user", "offline_token", "created_at", "updated_at")
	if get1["offline_token"] != tok1 || get1["user"] != user || get1["created_at"] != put1["created_at"] || get1["updated_at"] != put1["updated_at"] {
		t.Errorf("GET offline = %s; PUT said %v", r.body, put1)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}

	// Replacing keeps created_at and moves updated_at.
	r = inst.do("PUT", offlinePath(user), callerAll, map[string]any{"offline_token": tok2})
	wantStatus(t, r, http.StatusOK)
	put2 := objectKeys(t, r, "user", "created_at", "updated_at")
	if got := parseTime(t, "created_at", put2["created_at"]); !got.Equal(created) {
		t.Errorf("created_at changed on replace: %v -> %v", created, got)
	}
	if u1, u2 := parseTime(t, "updated_at", put1["updated_at"]), parseTime(t, "updated_at", put2["updated_at"]); u2.Before(u1) {
		t.Errorf("updated_at went back: %v -> %v", u1, u2)
	}
	r = inst.do("GET", offlinePath(user), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	if m := objectKeys(t, r, "user", "offline_token", "created_at", "updated_at"); m["offline_token"] != tok2 {
		t.Errorf("GET after replace = %s, want %s", r.body, tok2)
	}
	var rows int
	if err := inst.pool.QueryRow(context.Background(), "SELECT count(*) FROM offline_tokens WHERE user_id = $1", user).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("offline_tokens rows = %d (%v), want 1", rows, err)
	}

	// Offline tokens and provider tokens are separate.
	r = inst.do("GET", providersPath(user), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	if m := objectKeys(t, r, "user", "providers"); len(m["providers"].([]any)) != 0 {
		t.Errorf("an offline token shows up as a provider: %s", r.body)
	}

	r = inst.do("DELETE", offlinePath(user), callerAll, nil)
	wantStatus(t, r, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Errorf("204 body = %q", r.body)
	}
	wantProblem(t, inst.do("GET", offlinePath(user), callerAll, nil), http.StatusNotFound, "not_found", "")
	wantProblem(t, inst.do("DELETE", offlinePath(user), callerAll, nil), http.StatusNotFound, "not_found", "")
}

// TestUnusualValidUserIDs: any opaque id within the rules round-trips
// through the path, escaped by the client.
func TestUnusualValidUserIDs(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	tests := []struct{ name, user string }{
		{"255 bytes", strings.Repeat("u", 255)},
		{"255 bytes of multi-byte runes", strings.Repeat("é", 127) + "x"},
		{"inner space", "alice smith"},
		{"slash", "realm/alice"},
		{"percent and question mark", "50%?x=1#y"},
		{"percent-encoded dot-segment", "%2E%2E"},
		{"non-ASCII", "名前-ü"},
		{"email", "alice@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			c, ctx := inst.api(callerAll), context.Background()
			access, offline := uniq("at-"), uniq("off-")
			if _, err := c.PutTokens(ctx, tc.user, "github", client.PutTokensRequest{AccessToken: access}); err != nil {
				t.Fatal(err)
			}
			if got, err := c.GetAccessToken(ctx, tc.user, "github"); err != nil || got.User != tc.user || got.AccessToken != access {
				t.Errorf("GetAccessToken = %+v, %v; want user %q", got, err, tc.user)
			}
			if list, err := c.ListProviders(ctx, tc.user); err != nil || list.User != tc.user || len(list.Providers) != 1 {
				t.Errorf("ListProviders = %+v, %v", list, err)
			}
			if _, err := c.PutOfflineToken(ctx, tc.user, offline); err != nil {
				t.Fatal(err)
			}
			if got, err := c.GetOfflineToken(ctx, tc.user); err != nil || got.User != tc.user || got.OfflineToken != offline {
				t.Errorf("GetOfflineToken = %+v, %v", got, err)
			}
			var n int
			if err := inst.pool.QueryRow(context.Background(), "SELECT count(*) FROM auth_tokens WHERE user_id = $1", tc.user).Scan(&n); err != nil || n != 1 {
				t.Errorf("rows stored under user_id %q: %d (%v), want 1", tc.user, n, err)
			}
			if err := c.DeleteTokens(ctx, tc.user, "github"); err != nil {
				t.Error(err)
			}
			if err := c.DeleteOfflineToken(ctx, tc.user); err != nil {
				t.Error(err)
			}
		})
	}
}
