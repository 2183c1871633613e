package httpapi_test

// Every error class at the HTTP edge: status, stable code, field, headers,
// and that a rejected request never reaches the service.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/domain"
)

// The details of the strict decoder's refusals, by field.
func loneSurrogate(field string) string {
	return field + ` has an invalid escape sequence; a lone surrogate such as \ud800 is not a character`
}
func twice(field string) string { return field + " is given more than once; send each member once" }
func caseFolded(name, right string) string {
	return name + " is not a known field; member names are case-sensitive: use " + right
}
func control(field, char string, at int) string {
	return fmt.Sprintf("%s must not contain control characters (found %s at byte %d); send the token exactly as the provider issued it", field, char, at)
}

func TestInvalidBody(t *testing.T) {
	t.Parallel()
	const (
		secret      = "gho_bodysecret0123456789"
		accessLife  = "expires_in must be at least 1 (seconds); leave it out for an access token that never expires"
		refreshLife = "refresh_token_expires_in must not be negative; 0 (or leaving it out) means the refresh token does not expire"
	)
	at := `{"access_token":"` + secret + `"`
	tests := []struct {
		name    string
		offline bool // PUT offline-token, not PUT tokens
		body    string
		detail  string // the problem's detail; its first word is the field
	}{
		{"unknown field", false, at + `,"scope":"repo"}`, "scope is not a known field; check the spelling against the API document"},
		{"unknown field only", false, `{"acces_token":"` + secret + `"}`, "acces_token is not a known field; check the spelling against the API document"},
		{"wrong type: expires_in string", false, at + `,"expires_in":"x"}`, "expires_in must be a whole number written with digits only (no fraction or exponent)"},
		{"wrong type: expires_in fraction", false, at + `,"expires_in":1.5}`, "expires_in must be a whole number written with digits only (no fraction or exponent)"},
		{"wrong type: access_token number", false, `{"access_token":12345}`, "access_token must be a string"},
		{"wrong type: refresh_token object", false, at + `,"refresh_token":{}}`, "refresh_token must be a string"},
		{"wrong type: refresh_token_expires_in bool", false, at + `,"refresh_token":"r","refresh_token_expires_in":true}`, "refresh_token_expires_in must be a whole number written with digits only (no fraction or exponent)"},
		{"malformed JSON", false, at + `,}`, "body is not valid JSON (near byte 42)"},
		{"cut short", false, at, "body is cut short: not a complete JSON object"},
		{"not JSON", false, `access_token=` + secret, "body is not valid JSON (near byte 0)"},
		{"empty body", false, ``, "body is empty; send a JSON object"},
		{"JSON array", false, `[` + at + `}]`, "body must be a JSON object"},
		{"JSON string", false, `"` + secret + `"`, "body must be a JSON object"},
		{"body over 64 KiB", false, `{"access_token":"` + secret + strings.Repeat("a", 64<<10) + `"}`, "body is larger than 64 KiB"},
		{"64 KiB of trailing white space", false, at + `}` + strings.Repeat(" ", 64<<10), "body is larger than 64 KiB"},
		{"two JSON objects", false, at + `}{"access_token":"b"}`, "body must hold exactly one JSON object"},
		{"trailing garbage", false, at + `} x`, "body must hold exactly one JSON object"},
		{"missing access_token", false, `{"refresh_token":"` + secret + `"}`, "access_token is required"},
		{"empty access_token", false, `{"access_token":""}`, "access_token is required"},
		{"null access_token", false, `{"access_token":null}`, "access_token is required"},
		{"JSON null", false, `null`, "access_token is required"},
		{"both expires_in and access_token_expires_at", false, at + `,"expires_in":60,"access_token_expires_at":"2099-01-01T00:00:00Z"}`, "expires_in and access_token_expires_at both give the expiry; send one of them"},
		{"both refresh expiry forms", false, `{"access_token":"a","refresh_token":"` + secret + `","refresh_token_expires_in":60,"refresh_token_expires_at":"2099-01-01T00:00:00Z"}`, "refresh_token_expires_in and refresh_token_expires_at both give the expiry; send one of them"},
		{"bad RFC 3339: date only", false, at + `,"access_token_expires_at":"2099-01-01"}`, "access_token_expires_at must be an RFC 3339 time such as 2026-01-02T15:04:05Z"},
		{"bad RFC 3339: no zone", false, at + `,"access_token_expires_at":"2099-01-01T00:00:00"}`, "access_token_expires_at must be an RFC 3339 time such as 2026-01-02T15:04:05Z"},
		{"bad RFC 3339: unix seconds as string", false, at + `,"access_token_expires_at":"4102444800"}`, "access_token_expires_at must be an RFC 3339 time such as 2026-01-02T15:04:05Z"},
		{"bad RFC 3339 refresh expiry", false, `{"access_token":"a","refresh_token":"` + secret + `","refresh_token_expires_at":"tomorrow"}`, "refresh_token_expires_at must be an RFC 3339 time such as 2026-01-02T15:04:05Z"},
		{"negative expires_in", false, at + `,"expires_in":-1}`, accessLife},
		{"expires_in 0: neither expired nor never", false, at + `,"expires_in":0}`, accessLife},
		{"expires_in -0", false, at + `,"expires_in":-0}`, accessLife},
		{"negative refresh_token_expires_in", false, `{"access_token":"a","refresh_token":"` + secret + `","refresh_token_expires_in":-60}`, refreshLife},
		{"refresh_token_expires_at without refresh_token", false, at + `,"refresh_token_expires_at":"2099-01-01T00:00:00Z"}`, "refresh_token is required when a refresh token expiry is given"},
		{"refresh_token_expires_in without refresh_token", false, at + `,"refresh_token_expires_in":60}`, "refresh_token is required when a refresh token expiry is given"},
		{"refresh_token_expires_in 0 without refresh_token", false, at + `,"refresh_token_expires_in":0}`, "refresh_token is required when a refresh token expiry is given"},
		{"refresh expiry with empty refresh_token", false, at + `,"refresh_token":"","refresh_token_expires_in":60}`, "refresh_token is required when a refresh token expiry is given"},

		// Strict by construction (issue 9): one meaning or a 400.
		{"raw invalid UTF-8 in access_token", false, "{\"access_token\":\"tok-\xff\xfe\"}", "access_token is not valid UTF-8 (byte 21); send the exact characters"},
		{"raw invalid UTF-8 in refresh_token", false, "{\"access_token\":\"a\",\"refresh_token\":\"r-\xc0\xaf\"}", "refresh_token is not valid UTF-8 (byte 39); send the exact characters"},
		{"UTF-8-encoded surrogate in access_token", false, "{\"access_token\":\"tok-\xed\xa0\x80\"}", "access_token is not valid UTF-8 (byte 21); send the exact characters"},
		{"invalid UTF-8 in a member name", false, "{\"access_token\xff\":\"a\"}", "body is not valid UTF-8 (byte 14); send the exact characters"},
		{"lone high surrogate in access_token", false, `{"access_token":"tok-\ud800"}`, loneSurrogate("access_token")},
		{"lone low surrogate in access_token", false, `{"access_token":"tok-\udc00"}`, loneSurrogate("access_token")},
		{"high surrogate then a letter", false, `{"access_token":"tok-\ud800\u0041"}`, loneSurrogate("access_token")},
		{"lone surrogate in refresh_token", false, `{"access_token":"a","refresh_token":"\ud83d"}`, loneSurrogate("refresh_token")},
		{"invalid escape in access_token", false, `{"access_token":"tok\x41"}`, loneSurrogate("access_token")},
		{"raw control character in access_token", false, "{\"access_token\":\"tok\n\"}", "access_token has a raw control character; JSON strings must escape them"},
		{"duplicate access_token", false, `{"access_token":"first","access_token":"second"}`, twice("access_token")},
		{"duplicate access_token, same value", false, `{"access_token":"same","access_token":"same"}`, twice("access_token")},
		{"duplicate expires_in hiding a negative one", false, `{"access_token":"x","expires_in":-5,"expires_in":60}`, twice("expires_in")},
		{"duplicate access_token_expires_at reviving an expired token", false,
			`{"access_token":"x","access_token_expires_at":"2000-01-01T00:00:00Z","access_token_expires_at":"2099-01-01T00:00:00Z"}`, twice("access_token_expires_at")},
		{"duplicate refresh_token", false, `{"access_token":"a","refresh_token":"r1","refresh_token":"r2"}`, twice("refresh_token")},
		{"duplicate refresh_token_expires_in", false, `{"access_token":"a","refresh_token":"r","refresh_token_expires_in":-1,"refresh_token_expires_in":60}`, twice("refresh_token_expires_in")},
		{"duplicate refresh_token_expires_at", false, `{"access_token":"a","refresh_token":"r","refresh_token_expires_at":"2000-01-01T00:00:00Z","refresh_token_expires_at":"2099-01-01T00:00:00Z"}`, twice("refresh_token_expires_at")},
		{"duplicate null member", false, `{"access_token":"a","refresh_token":null,"refresh_token":null}`, twice("refresh_token")},
		{"ACCESS_TOKEN", false, `{"ACCESS_TOKEN":"upper"}`, caseFolded("ACCESS_TOKEN", "access_token")},
		{"Access_Token after access_token", false, `{"access_token":"a","Access_Token":"b"}`, caseFolded("Access_Token", "access_token")},
		{"Refresh_Token", false, `{"Refresh_Token":"r"}`, caseFolded("Refresh_Token", "refresh_token")},
		{"Expires_In", false, `{"access_token":"a","Expires_In":60}`, caseFolded("Expires_In", "expires_in")},
		{"Offline_Token in a tokens PUT is unknown", false, `{"access_token":"a","Offline_Token":"c"}`, "Offline_Token is not a known field; check the spelling against the API document"},
		{"NUL in access_token", false, `{"access_token":"a\u0000b"}`, control("access_token", "U+0000", 1)},
		{"escaped newline in access_token", false, `{"access_token":"tok\n"}`, control("access_token", "U+000A", 3)},
		{"escaped DEL in access_token", false, `{"access_token":"\u007ftok"}`, control("access_token", "U+007F", 0)},
		{"U+001F in refresh_token", false, `{"access_token":"a","refresh_token":"r\u001f"}`, control("refresh_token", "U+001F", 1)},

		{"offline: raw invalid UTF-8", true, "{\"offline_token\":\"c-\xff\"}", "offline_token is not valid UTF-8 (byte 20); send the exact characters"},
		{"offline: lone surrogate", true, `{"offline_token":"c-\udfff"}`, loneSurrogate("offline_token")},
		{"offline: duplicate offline_token", true, `{"offline_token":"c1","offline_token":"c2"}`, twice("offline_token")},
		{"offline: Offline_Token", true, `{"Offline_Token":"c"}`, caseFolded("Offline_Token", "offline_token")},
		{"offline: OFFLINE_TOKEN after offline_token", true, `{"offline_token":"c","OFFLINE_TOKEN":"d"}`, caseFolded("OFFLINE_TOKEN", "offline_token")},
		{"offline: NUL", true, `{"offline_token":"c\u0000"}`, control("offline_token", "U+0000", 1)},
		{"offline: escaped CR", true, `{"offline_token":"\rc"}`, control("offline_token", "U+000D", 0)},

		{"offline: unknown field", true, `{"offline_token":"` + secret + `","token":"x"}`, "token is not a known field; check the spelling against the API document"},
		{"offline: wrong type", true, `{"offline_token":42}`, "offline_token must be a string"},
		{"offline: missing offline_token", true, `{}`, "offline_token is required"},
		{"offline: empty offline_token", true, `{"offline_token":""}`, "offline_token is required"},
		{"offline: empty body", true, ``, "body is empty; send a JSON object"},
		{"offline: malformed JSON", true, `{"offline_token":`, "body is cut short: not a complete JSON object"},
		{"offline: body over 64 KiB", true, `{"offline_token":"` + secret + strings.Repeat("b", 64<<10) + `"}`, "body is larger than 64 KiB"},
		{"offline: two JSON objects", true, `{"offline_token":"` + secret + `"} {}`, "body must hold exactly one JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			path := tokensPath("alice", "github")
			if tc.offline {
				path = offlinePath("alice")
			}
			rec := a.do("PUT", path, callerAll, tc.body)
			field, _, _ := strings.Cut(tc.detail, " ")
			if p := wantProblem(t, rec, http.StatusBadRequest, "invalid_request", field); p.Detail != tc.detail {
				t.Errorf("detail %q, want %q", p.Detail, tc.detail)
			}
			notIn(t, "problem", rec.Body.String(), secret)
			notIn(t, "log", a.logs.String(), secret)
			if len(a.svc.calls) != 0 {
				t.Errorf("a rejected PUT reached the service: %v", a.svc.calls)
			}
		})
	}
}

// TestInvalidPathValues: bad user ids and provider names are 400s naming the
// path parameter, on every route that has it, before the body is read.
func TestInvalidPathValues(t *testing.T) {
	t.Parallel()
	type route struct {
		method string
		path   func(user, provider string) string
		body   any
	}
	providers := func(u, _ string) string { return providersPath(u) }
	offline := func(u, _ string) string { return offlinePath(u) }
	withUser := []route{
		{"PUT", tokensPath, `{"access_token":"at"}`}, {"GET", tokensPath, nil}, {"DELETE", tokensPath, nil},
		{"GET", providers, nil},
		{"PUT", offline, `{"offline_token":"ot"}`}, {"GET", offline, nil}, {"DELETE", offline, nil},
	}
	withProvider := withUser[:3]
	tests := []struct {
		name           string
		user, provider string // already escaped for the path
		field          string
		routes         []route
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
				a := setup(t)
				wantProblem(t, a.do(rt.method, rt.path(tc.user, tc.provider), callerAll, rt.body), http.StatusBadRequest, "invalid_request", tc.field)
				if len(a.svc.calls) != 0 {
					t.Errorf("a bad path value reached the service: %v", a.svc.calls)
				}
			})
		}
	}
	// The path is checked before the body: a bad user with a bad body is a
	// 400 about the user.
	a := setup(t)
	rec := a.send("PUT", offlinePath("a%00"), map[string]string{"Authorization": a.bearer(callerAll), "Content-Type": "text/plain"}, "x")
	wantProblem(t, rec, http.StatusBadRequest, "invalid_request", "user")
}

func TestUnsupportedMediaType(t *testing.T) {
	t.Parallel()
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
		{"JSON in latin-1 is refused", tokensPath("alice", "github"), "application/json; charset=iso-8859-1", `{"access_token":"` + secret + `"}`, 415},
		{"offline JSON in UTF-16 is refused", offlinePath("alice"), "application/json; charset=utf-16", `{"offline_token":"` + secret + `"}`, 415},
		{"JSON with charset is accepted", tokensPath("bob", "github"), "application/json; charset=utf-8", `{"access_token":"` + secret + `"}`, 200},
		{"charset is case-insensitive", tokensPath("bob", "github"), "application/json; charset=UTF-8", `{"access_token":"` + secret + `"}`, 200},
		{"+json suffix is accepted", offlinePath("bob"), "application/vnd.tokenstore+json", `{"offline_token":"` + secret + `"}`, 200},
		{"no Content-Type is accepted", tokensPath("carol", "github"), "", `{"access_token":"` + secret + `"}`, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			h := map[string]string{"Authorization": a.bearer(callerAll)}
			if tc.contentType != "" {
				h["Content-Type"] = tc.contentType
			}
			rec := a.send("PUT", tc.path, h, tc.body)
			if tc.wantStatus == http.StatusUnsupportedMediaType {
				wantProblem(t, rec, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type")
				notIn(t, "problem", rec.Body.String(), secret)
				if len(a.svc.calls) != 0 {
					t.Errorf("a 415 reached the service: %v", a.svc.calls)
				}
				return
			}
			wantStatus(t, rec, tc.wantStatus)
		})
	}
}

// TestUnknownRoutes: a path no route serves is a 404 problem, with or
// without a credential outside /v1.
func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path string
		credential         bool
	}{
		{"unknown /v1 route", "GET", "/v1/nope", true},
		{"/v1/ root", "GET", "/v1/", true},
		{"/v1/users", "GET", "/v1/users", true},
		{"user without a sub-resource", "GET", "/v1/users/erin", true},
		{"provider without tokens", "GET", "/v1/users/erin/providers/github", true},
		{"tokens with a trailing slash", "GET", "/v1/users/erin/providers/github/tokens/", true},
		{"unknown /v1 route, PUT", "PUT", "/v1/users/erin/settings", true},
		{"unknown /v2 route", "GET", "/v2/users/erin/providers", false},
		{"unknown top-level route", "GET", "/nope", false},
		{"root", "GET", "/", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			h := map[string]string{}
			if tc.credential {
				h["Authorization"] = a.bearer(callerAll)
			}
			p := wantProblem(t, a.send(tc.method, tc.path, h, ""), http.StatusNotFound, "not_found", "")
			if p.Detail != "no such route; see the API document" {
				t.Errorf("detail = %q", p.Detail)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	const tokensAllow, offlineAllow, getAllow = "DELETE, GET, HEAD, PUT", "DELETE, GET, HEAD, PUT", "GET, HEAD"
	tests := []struct {
		method, path string
		credential   bool
		allow        string
	}{
		{"POST", tokensPath("alice", "github"), true, tokensAllow},
		{"PATCH", tokensPath("alice", "github"), true, tokensAllow},
		{"OPTIONS", tokensPath("alice", "github"), true, tokensAllow},
		{"POST", providersPath("alice"), true, getAllow},
		{"PUT", providersPath("alice"), true, getAllow},
		{"DELETE", providersPath("alice"), true, getAllow},
		{"POST", offlinePath("alice"), true, offlineAllow},
		{"PATCH", offlinePath("alice"), true, offlineAllow},
		{"POST", "/healthz", false, getAllow},
		{"PUT", "/readyz", false, getAllow},
		{"DELETE", "/healthz", false, getAllow},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			h := map[string]string{}
			if tc.credential {
				// Any caller: a wrong method is not a permission question.
				h["Authorization"] = a.bearer(callerWithout(httpapi.PermTokensWrite))
			}
			rec := a.send(tc.method, tc.path, h, "")
			p := wantProblem(t, rec, http.StatusMethodNotAllowed, "method_not_allowed", "")
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if want := tc.method + " is not allowed here; use " + tc.allow; p.Detail != want {
				t.Errorf("detail = %q, want %q", p.Detail, want)
			}
		})
	}
}

// TestUseCaseErrors: every error the service returns, on every route that
// calls it, is answered with its status, code, detail and headers; only a
// validation message is repeated, never an unexpected error's text.
func TestUseCaseErrors(t *testing.T) {
	t.Parallel()
	const (
		expired     = "the access token has expired and cannot be refreshed; store new tokens for this user and provider"
		reauth      = "the tokens can no longer be refreshed; the user must connect this provider again, then store the new tokens"
		notRefreshd = "the provider did not refresh the token in time; retry shortly"
		backOff     = "the provider failed recently; tokenstore retries it after a back-off"
		busy        = "the tokens are busy; retry shortly"
	)
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		field      string
		detail     string
		retryAfter func(string) bool // nil: no Retry-After
		logged     string            // the error-level log message, "" for none
	}{
		{"validation error names its field", &domain.ValidationError{Field: "access_token", Reason: "is too long"},
			400, "invalid_request", "access_token", "invalid access_token: is too long", nil, ""},
		{"ErrInvalid without a field", fmt.Errorf("check: %w", domain.ErrInvalid),
			400, "invalid_request", "", "check: invalid input", nil, ""},
		{"ErrNotFound", fmt.Errorf("load: %w", domain.ErrNotFound), 404, "not_found", "", "nothing is stored there", nil, ""},
		{"ErrTokenExpired", domain.ErrTokenExpired, 409, "token_expired", "", expired, nil, ""},
		{"ErrReauthRequired", fmt.Errorf("refresh: %w", domain.ErrReauthRequired), 409, "reauth_required", "", reauth, nil, ""},
		{"ErrConflict", domain.ErrConflict, 409, "conflict", "", "the tokens were changed concurrently; retry", nil, ""},
		{"ErrUnavailable", fmt.Errorf("refresh: %w", domain.ErrUnavailable), 503, "unavailable", "", notRefreshd, is("5"), ""},
		{"back-off already over", &domain.RetryAtError{At: time.Now().Add(-time.Minute), Err: domain.ErrUnavailable},
			503, "unavailable", "", backOff, is("1"), ""},
		{"back-off ending in 90 s", fmt.Errorf("get: %w", &domain.RetryAtError{At: time.Now().Add(90 * time.Second), Err: domain.ErrUnavailable}),
			503, "unavailable", "", backOff, between(1, 90), ""},
		{"back-off over an hour is capped", &domain.RetryAtError{At: time.Now().Add(5 * time.Hour), Err: domain.ErrUnavailable},
			503, "unavailable", "", backOff, is("3600"), ""},
		{"ErrBusy", fmt.Errorf("lock: %w", domain.ErrBusy), 503, "unavailable", "", busy, is("1"), ""},
		{"database unavailable", fmt.Errorf("load: %w: %w", domain.ErrStorageUnavailable, errors.New("connection refused")), 503, "unavailable", "",
			"the database is unavailable or did not answer in time; nothing was changed; retry shortly", is("2"), ""},
		{"database lost after a write was sent", fmt.Errorf("store: %w: %w: %w", domain.ErrStorageUnavailable, domain.ErrOutcomeUnknown, context.DeadlineExceeded),
			503, "unavailable", "", "the database stopped answering after the write was sent: the write may have been applied; read it back before retrying", is("2"), ""},
		{"deadline exceeded", context.DeadlineExceeded, 503, "unavailable", "", busy, is("1"), ""},
		{"client went away", context.Canceled, 499, "unavailable", "", "request canceled", nil, ""},
		{"ErrDecrypt", fmt.Errorf("open: %w", domain.ErrDecrypt), 500, "integrity_error", "",
			"a stored value cannot be decrypted with the configured keys", nil, "stored value cannot be decrypted"},
		{"unknown error", errors.New("pool exhausted: secret-in-an-unexpected-error"), 500, "internal", "",
			"internal error; see the server log for the request id", nil, "request failed"},
	}
	for _, rt := range v1Routes(t) {
		for _, tc := range tests {
			t.Run(rt.Method+" "+rt.Path+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				a := setup(t)
				a.svc.err = tc.err
				rec := a.do(rt.Method, concretePath(t, rt.Path), callerAll, nilIfEmpty(validBody(t, rt)))
				p := wantProblem(t, rec, tc.status, tc.code, tc.field)
				ra := rec.Header().Get("Retry-After")
				if tc.retryAfter == nil && ra != "" || tc.retryAfter != nil && !tc.retryAfter(ra) {
					t.Errorf("Retry-After = %q", ra)
				}
				if p.Detail != tc.detail {
					t.Errorf("detail = %q, want %q", p.Detail, tc.detail)
				}
				// Every line of the request carries the id its answer gives.
				for _, l := range a.logLines() {
					if l["request_id"] != p.RequestID {
						t.Errorf("log line without the answer's request_id %q: %v", p.RequestID, l)
					}
				}
				errs := a.logged(tc.logged)
				if tc.logged == "" {
					for _, l := range a.logLines() {
						if l["level"] == "ERROR" {
							t.Errorf("logged an error for an expected failure: %v", l)
						}
					}
					return
				}
				if len(errs) != 1 || errs[0]["level"] != "ERROR" || !strings.Contains(fmt.Sprint(errs[0]["err"]), tc.err.Error()) {
					t.Errorf("want one ERROR %q with the error; log:\n%s", tc.logged, a.logs.String())
				}
			})
		}
	}
}

func is(want string) func(string) bool { return func(got string) bool { return got == want } }

func between(lo, hi int) func(string) bool {
	return func(got string) bool {
		n, err := strconv.Atoi(got)
		return err == nil && n >= lo && n <= hi
	}
}

func nilIfEmpty(body string) any {
	if body == "" {
		return nil
	}
	return body
}

// TestPanicIsAProblem: a panicking handler is answered with a generic 500
// problem and logged without the panic value.
func TestPanicIsAProblem(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.svc.panics = true
	rec := a.do("GET", tokensPath("alice", "github"), callerAll, nil)
	p := wantProblem(t, rec, http.StatusInternalServerError, "internal", "")
	if p.Detail != "internal error" {
		t.Errorf("detail = %q, want internal error", p.Detail)
	}
	if l := a.logged("handler panicked"); len(l) != 1 || l[0]["request_id"] != p.RequestID ||
		l[0]["route"] != "GET /v1/users/{user}/providers/{provider}/tokens" {
		t.Errorf("want one panic line with the request id and route; log:\n%s", a.logs.String())
	}
	if l := a.logged("request"); len(l) != 1 || l[0]["status"] != float64(http.StatusInternalServerError) {
		t.Errorf("want one request line with status 500; log:\n%s", a.logs.String())
	}
	notIn(t, "log", a.logs.String(), "secret-panic-value")
}

// TestRequestID: a plain caller-supplied X-Request-Id is kept; anything else
// is replaced by a generated one. Either way the header and the problem's
// request_id agree.
func TestRequestID(t *testing.T) {
	t.Parallel()
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
			a := setup(t)
			a.svc.err = domain.ErrNotFound
			h := map[string]string{"Authorization": a.bearer(callerAll)}
			if tc.id != "" {
				h["X-Request-Id"] = tc.id
			}
			rec := a.send("GET", tokensPath("nobody", "github"), h, "")
			p := wantProblem(t, rec, http.StatusNotFound, "not_found", "")
			got := rec.Header().Get("X-Request-Id")
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
			a.svc.err = nil
			if rec := a.send("GET", providersPath("nobody"), h, ""); rec.Code != http.StatusOK || rec.Header().Get("X-Request-Id") == "" {
				t.Errorf("GET providers: %d with X-Request-Id %q; want 200 with one", rec.Code, rec.Header().Get("X-Request-Id"))
			}
		})
	}
}
