package api_test

// Every error class: status, stable code, field, problem+json, request id.

import (
	"net/http"
	"strings"
	"testing"
)

func TestInvalidBody(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	const secret = "gho_bodysecret0123456789"
	tooBig := `{"access_token":"` + secret + strings.Repeat("a", 64<<10) + `"}`
	tests := []struct {
		name  string
		path  string // "" means the tokens route
		body  string
		field string
	}{
		{"unknown field", "", `{"access_token":"` + secret + `","scope":"repo"}`, "scope"},
		{"unknown field only", "", `{"acces_token":"` + secret + `"}`, "acces_token"},
		{"wrong type: expires_in string", "", `{"access_token":"` + secret + `","expires_in":"x"}`, "expires_in"},
		{"wrong type: expires_in fraction", "", `{"access_token":"` + secret + `","expires_in":1.5}`, "expires_in"},
		{"wrong type: access_token number", "", `{"access_token":12345}`, "access_token"},
		{"wrong type: refresh_token object", "", `{"access_token":"` + secret + `","refresh_token":{}}`, "refresh_token"},
		{"wrong type: refresh_token_expires_in bool", "", `{"access_token":"` + secret + `","refresh_token":"r","refresh_token_expires_in":true}`, "refresh_token_expires_in"},
		{"malformed JSON", "", `{"access_token":"` + secret + `",}`, "body"},
		{"cut short", "", `{"access_token":"` + secret + `"`, "body"},
		{"not JSON", "", `access_token=` + secret, "body"},
		{"empty body", "", ``, "body"},
		{"JSON array", "", `[{"access_token":"` + secret + `"}]`, "body"},
		{"JSON string", "", `"` + secret + `"`, "body"},
		{"body over 64 KiB", "", tooBig, "body"},
		{"64 KiB of trailing white space", "", `{"access_token":"` + secret + `"}` + strings.Repeat(" ", 64<<10), "body"},
		{"two JSON objects", "", `{"access_token":"` + secret + `"}{"access_token":"b"}`, "body"},
		{"trailing garbage", "", `{"access_token":"` + secret + `"} x`, "body"},
		{"missing access_token", "", `{"refresh_token":"` + secret + `"}`, "access_token"},
		{"empty access_token", "", `{"access_token":""}`, "access_token"},
		{"null access_token", "", `{"access_token":null}`, "access_token"},
		{"JSON null", "", `null`, "access_token"},
		{"both expires_in and access_token_expires_at", "", `{"access_token":"` + secret + `","expires_in":60,"access_token_expires_at":"2099-01-01T00:00:00Z"}`, "expires_in"},
		{"both refresh expiry forms", "", `{"access_token":"a","refresh_token":"` + secret + `","refresh_token_expires_in":60,"refresh_token_expires_at":"2099-01-01T00:00:00Z"}`, "refresh_token_expires_in"},
		{"bad RFC 3339: date only", "", `{"access_token":"` + secret + `","access_token_expires_at":"2099-01-01"}`, "access_token_expires_at"},
		{"bad RFC 3339: no zone", "", `{"access_token":"` + secret + `","access_token_expires_at":"2099-01-01T00:00:00"}`, "access_token_expires_at"},
		{"bad RFC 3339: unix seconds as string", "", `{"access_token":"` + secret + `","access_token_expires_at":"4102444800"}`, "access_token_expires_at"},
		{"bad RFC 3339 refresh expiry", "", `{"access_token":"a","refresh_token":"` + secret + `","refresh_token_expires_at":"tomorrow"}`, "refresh_token_expires_at"},
		{"negative expires_in", "", `{"access_token":"` + secret + `","expires_in":-1}`, "expires_in"},
		{"negative refresh_token_expires_in", "", `{"access_token":"a","refresh_token":"` + secret + `","refresh_token_expires_in":-60}`, "refresh_token_expires_in"},
		{"refresh_token_expires_at without refresh_token", "", `{"access_token":"` + secret + `","refresh_token_expires_at":"2099-01-01T00:00:00Z"}`, "refresh_token"},
		{"refresh_token_expires_in without refresh_token", "", `{"access_token":"` + secret + `","refresh_token_expires_in":60}`, "refresh_token"},
		{"refresh expiry with empty refresh_token", "", `{"access_token":"` + secret + `","refresh_token":"","refresh_token_expires_in":60}`, "refresh_token"},

		{"offline: unknown field", "offline", `{"offline_token":"` + secret + `","token":"x"}`, "token"},
		{"offline: wrong type", "offline", `{"offline_token":42}`, "offline_token"},
		{"offline: missing offline_token", "offline", `{}`, "offline_token"},
		{"offline: empty offline_token", "offline", `{"offline_token":""}`, "offline_token"},
		{"offline: empty body", "offline", ``, "body"},
		{"offline: malformed JSON", "offline", `{"offline_token":`, "body"},
		{"offline: body over 64 KiB", "offline", `{"offline_token":"` + secret + strings.Repeat("b", 64<<10) + `"}`, "body"},
		{"offline: two JSON objects", "offline", `{"offline_token":"` + secret + `"} {}`, "body"},
	}
	// The group waits for its parallel cases, so the log is checked after all.
	t.Run("cases", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				inst := inst.forT(t)
				user := uniq("u-")
				path := tokensPath(user, "github")
				if tc.path == "offline" {
					path = offlinePath(user)
				}
				r := inst.do("PUT", path, callerAll, tc.body)
				wantProblem(t, r, http.StatusBadRequest, "invalid_request", tc.field)
				notIn(t, "problem", string(r.body), secret)
				// Nothing was stored.
				if tc.path == "offline" {
					wantProblem(t, inst.do("GET", offlinePath(user), callerAll, nil), http.StatusNotFound, "not_found", "")
					return
				}
				r = inst.do("GET", providersPath(user), callerAll, nil)
				wantStatus(t, r, http.StatusOK)
				if strings.Contains(string(r.body), "github") {
					t.Errorf("a rejected PUT stored tokens: %s", r.body)
				}
			})
		}
	})
	inst.noSecretsInLogs(secret)
}

// TestInvalidPathValues: bad user ids and provider names are 400s naming the
// path parameter, on every route that has it.
func TestInvalidPathValues(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	tokenBody := map[string]any{"access_token": "at"}
	offlineBody := map[string]any{"offline_token": "ot"}
	type route struct {
		method string
		path   func(user, provider string) string
		body   any
	}
	tokens := func(u, p string) string { return "/v1/users/" + u + "/providers/" + p + "/tokens" }
	providers := func(u, _ string) string { return "/v1/users/" + u + "/providers" }
	offline := func(u, _ string) string { return "/v1/users/" + u + "/offline-token" }
	withUser := []route{
		{"PUT", tokens, tokenBody}, {"GET", tokens, nil}, {"DELETE", tokens, nil},
		{"GET", providers, nil},
		{"PUT", offline, offlineBody}, {"GET", offline, nil}, {"DELETE", offline, nil},
	}
	withProvider := withUser[:3]

	tests := []struct {
		name     string
		user     string // already escaped for the path
		provider string
		field    string
		routes   []route
	}{
		{"provider upper case", "alice", "GitHub", "provider", withProvider},
		{"provider with dot", "alice", "a.b", "provider", withProvider},
		{"provider starting with dash", "alice", "-gh", "provider", withProvider},
		{"provider starting with underscore", "alice", "_gh", "provider", withProvider},
		{"provider with space", "alice", "git%20hub", "provider", withProvider},
		{"provider 65 bytes", "alice", strings.Repeat("p", 65), "provider", withProvider},
		{"user 256 bytes", strings.Repeat("u", 256), "github", "user", withUser},
		{"user with NUL", "a%00b", "github", "user", withUser},
		{"user with newline", "alice%0A", "github", "user", withUser},
		{"user with CR LF forging a log line", "alice%0D%0Alevel=ERROR", "github", "user", withUser},
		{"user with tab", "al%09ice", "github", "user", withUser},
		{"user with DEL", "alice%7F", "github", "user", withUser},
		{"user with C1 control", "alice%C2%85", "github", "user", withUser},
		{"user with zero-width space", "ali%E2%80%8Bce", "github", "user", withUser},
		{"user with bidi override", "%E2%80%AEalice", "github", "user", withUser},
		{"user with line separator", "alice%E2%80%A8", "github", "user", withUser},
		{"user with invalid UTF-8", "alice%FF", "github", "user", withUser},
		{"user with leading space", "%20alice", "github", "user", withUser},
		{"user with trailing space", "alice%20", "github", "user", withUser},
		{"bad user checked before bad provider", "a%00", "GitHub", "user", withProvider},
	}
	for _, tc := range tests {
		for _, rt := range tc.routes {
			t.Run(tc.name+"/"+rt.method+" "+rt.path("{user}", "{provider}"), func(t *testing.T) {
				t.Parallel()
				r := inst.forT(t).do(rt.method, rt.path(tc.user, tc.provider), callerAll, rt.body)
				wantProblem(t, r, http.StatusBadRequest, "invalid_request", tc.field)
			})
		}
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	const secret = "gho_mediasecret42"
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		wantStatus  int
	}{
		{"tokens text/plain", tokensPath("alice", "github"), "text/plain", `{"access_token":"` + secret + `"}`, 415},
		{"tokens form", tokensPath("alice", "github"), "application/x-www-form-urlencoded", `access_token=` + secret, 415},
		{"tokens xml", tokensPath("alice", "github"), "application/xml", `<t>` + secret + `</t>`, 415},
		{"tokens malformed media type", tokensPath("alice", "github"), "application/json;;", `{"access_token":"` + secret + `"}`, 415},
		{"offline text/plain", offlinePath("alice"), "text/plain; charset=utf-8", `{"offline_token":"` + secret + `"}`, 415},
		{"JSON with charset is accepted", tokensPath("bob", "github"), "application/json; charset=utf-8", `{"access_token":"` + secret + `"}`, 200},
		{"+json suffix is accepted", offlinePath("bob"), "application/vnd.tokenstore+json", `{"offline_token":"` + secret + `"}`, 200},
		{"no Content-Type is accepted", tokensPath("carol", "github"), "", `{"access_token":"` + secret + `"}`, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			h := map[string]string{"Authorization": inst.bearer(callerAll)}
			if tc.contentType != "" {
				h["Content-Type"] = tc.contentType
			}
			r := inst.send(rawRequest{method: "PUT", path: tc.path, header: h, body: []byte(tc.body)})
			if tc.wantStatus == 415 {
				wantProblem(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type")
				notIn(t, "problem", string(r.body), secret)
				return
			}
			wantStatus(t, r, tc.wantStatus)
		})
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	wantStatus(t, inst.do("PUT", tokensPath("erin", "github"), callerAll, map[string]any{"access_token": "x"}), http.StatusOK)
	tests := []struct {
		name   string
		method string
		path   string
		caller string
	}{
		{"GET tokens never stored", "GET", tokensPath("nobody", "github"), callerAll},
		{"GET tokens of another provider", "GET", tokensPath("erin", "gitlab"), callerAll},
		{"DELETE tokens never stored", "DELETE", tokensPath("nobody", "github"), callerAll},
		{"GET offline token never stored", "GET", offlinePath("erin"), callerAll},
		{"DELETE offline token never stored", "DELETE", offlinePath("erin"), callerAll},
		{"unknown /v1 route", "GET", "/v1/nope", callerAll},
		{"/v1/ root", "GET", "/v1/", callerAll},
		{"/v1/users", "GET", "/v1/users", callerAll},
		{"user without a sub-resource", "GET", "/v1/users/erin", callerAll},
		{"provider without tokens", "GET", "/v1/users/erin/providers/github", callerAll},
		{"tokens with a trailing slash", "GET", "/v1/users/erin/providers/github/tokens/", callerAll},
		{"unknown /v1 route, PUT", "PUT", "/v1/users/erin/settings", callerAll},
		{"unknown /v2 route", "GET", "/v2/users/erin/providers", ""},
		{"unknown top-level route", "GET", "/nope", ""},
		{"root", "GET", "/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			h := map[string]string{}
			if tc.caller != "" {
				h["Authorization"] = inst.bearer(tc.caller)
			}
			r := inst.send(rawRequest{method: tc.method, path: tc.path, header: h})
			wantProblem(t, r, http.StatusNotFound, "not_found", "")
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	const tokensAllow, offlineAllow, getAllow = "DELETE, GET, HEAD, PUT", "DELETE, GET, HEAD, PUT", "GET, HEAD"
	tests := []struct {
		method, path, caller, allow string
	}{
		{"POST", tokensPath("alice", "github"), callerAll, tokensAllow},
		{"PATCH", tokensPath("alice", "github"), callerAll, tokensAllow},
		{"OPTIONS", tokensPath("alice", "github"), callerAll, tokensAllow},
		{"POST", providersPath("alice"), callerAll, getAllow},
		{"PUT", providersPath("alice"), callerAll, getAllow},
		{"DELETE", providersPath("alice"), callerAll, getAllow},
		{"POST", offlinePath("alice"), callerAll, offlineAllow},
		{"PATCH", offlinePath("alice"), callerAll, offlineAllow},
		{"POST", "/healthz", "", getAllow},
		{"PUT", "/readyz", "", getAllow},
		{"DELETE", "/healthz", "", getAllow},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			h := map[string]string{}
			if tc.caller != "" {
				h["Authorization"] = inst.bearer(tc.caller)
			}
			r := inst.send(rawRequest{method: tc.method, path: tc.path, header: h})
			wantProblem(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "")
			if got := r.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}

// TestExpiredAccessTokenIsNotReturned: GET answers 409 token_expired for an
// access token whose expiry has passed, and never the stale token itself.
func TestExpiredAccessTokenIsNotReturned(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	tests := []struct {
		name string
		body map[string]any
	}{
		{"expires_at in the past", map[string]any{"access_token_expires_at": "2020-01-01T00:00:00Z"}},
		{"expires_at in the past with a usable refresh token", map[string]any{"access_token_expires_at": "2020-01-01T00:00:00Z", "refresh_token": uniq("rt-")}},
		{"expires_at in the past in another zone", map[string]any{"access_token_expires_at": "2021-06-01T02:00:00.000001+02:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			user, access := uniq("u-"), uniq("stale-")
			body := map[string]any{"access_token": access}
			for k, v := range tc.body {
				body[k] = v
			}
			wantStatus(t, inst.do("PUT", tokensPath(user, "gitlab"), callerAll, body), http.StatusOK)
			r := inst.do("GET", tokensPath(user, "gitlab"), callerAll, nil)
			wantProblem(t, r, http.StatusConflict, "token_expired", "")
			notIn(t, "409 body", string(r.body), access)
			if rt, ok := tc.body["refresh_token"].(string); ok {
				notIn(t, "409 body", string(r.body), rt)
			}
		})
	}
}

// TestRequestID: a plain caller-supplied X-Request-Id is kept; anything else
// is replaced by a generated one. Either way the header and the problem's
// request_id agree.
func TestRequestID(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	tests := []struct {
		name, id string
		kept     bool
	}{
		{"plain id kept", "req-123_abc.def:1", true},
		{"128 chars kept", strings.Repeat("a", 128), true},
		{"129 chars replaced", strings.Repeat("a", 129), false},
		{"space replaced", "req 1", false},
		{"quote replaced", `req"1`, false},
		{"none", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			h := map[string]string{"Authorization": inst.bearer(callerAll)}
			if tc.id != "" {
				h["X-Request-Id"] = tc.id
			}
			r := inst.send(rawRequest{method: "GET", path: tokensPath("nobody", "github"), header: h})
			p := wantProblem(t, r, http.StatusNotFound, "not_found", "")
			got := r.Header.Get("X-Request-Id")
			if tc.kept && got != tc.id {
				t.Errorf("X-Request-Id = %q, want the caller's %q", got, tc.id)
			}
			if !tc.kept && (got == tc.id || len(got) != 24) {
				t.Errorf("X-Request-Id = %q, want a generated 24-hex-digit id", got)
			}
			if p.RequestID != got {
				t.Errorf("request_id %q != header %q", p.RequestID, got)
			}
			// Success responses carry the header too.
			r = inst.send(rawRequest{method: "GET", path: providersPath("nobody"), header: h})
			wantStatus(t, r, http.StatusOK)
			if r.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on a 200")
			}
		})
	}
}
