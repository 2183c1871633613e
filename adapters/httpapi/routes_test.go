package httpapi_test

// Success paths of every route: what the service is asked, and the answer
// byte for byte.

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

func TestHealthProbesNeedNoCredential(t *testing.T) {
	t.Parallel()
	a := setup(t)
	wantJSON(t, a.do("GET", "/healthz", "", nil), http.StatusOK, `{"status":"ok"}`)
	wantJSON(t, a.do("GET", "/readyz", "", nil), http.StatusOK, `{"status":"ready"}`)

	// Not ready: a 503 saying why, retried after 5 s, and a warning.
	a.ready.err = errors.New("database: connection refused")
	rec := a.do("GET", "/readyz", "", nil)
	p := wantProblem(t, rec, http.StatusServiceUnavailable, "unavailable", "")
	if p.Detail != "not ready: database: connection refused" || rec.Header().Get("Retry-After") != "5" {
		t.Errorf("detail %q, Retry-After %q; want the reason and 5", p.Detail, rec.Header().Get("Retry-After"))
	}
	if l := a.logged("not ready"); len(l) != 1 || l[0]["level"] != "WARN" {
		t.Errorf("want one WARN not ready line; log:\n%s", a.logs.String())
	}
	// The liveness probe does not ask the dependency.
	wantJSON(t, a.do("GET", "/healthz", "", nil), http.StatusOK, `{"status":"ok"}`)
}

// TestOpenAPIDocumentServed: GET /openapi.yaml answers the embedded
// document byte for byte, as application/yaml, to anyone (a credential, even
// a wrong one, changes nothing), and HEAD answers its headers.
func TestOpenAPIDocumentServed(t *testing.T) {
	t.Parallel()
	a := setup(t)
	for _, caller := range []string{"", callerAll, "tsc_wrongcredential"} {
		h := map[string]string{}
		if cred, ok := a.creds[caller]; ok {
			h["Authorization"] = "Bearer " + cred
		} else if caller != "" {
			h["Authorization"] = "Bearer " + caller
		}
		rec := a.send("GET", "/openapi.yaml", h, "")
		wantStatus(t, rec, http.StatusOK)
		if ct := rec.Header().Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("caller %q: Content-Type %q, want application/yaml", caller, ct)
		}
		if rec.Body.String() != string(httpapi.OpenAPI) || len(httpapi.OpenAPI) == 0 {
			t.Errorf("caller %q: body is not the embedded document (%d bytes, want %d)", caller, rec.Body.Len(), len(httpapi.OpenAPI))
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("Cache-Control %q, want no-cache", cc)
		}
	}
	rec := a.send("HEAD", "/openapi.yaml", nil, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Length") != fmt.Sprint(len(httpapi.OpenAPI)) {
		t.Errorf("HEAD /openapi.yaml = %d, Content-Length %q", rec.Code, rec.Header().Get("Content-Length"))
	}
}

func TestPutTokens(t *testing.T) {
	t.Parallel()
	maxSeconds := int64(math.MaxInt64 / int64(time.Second))
	tests := []struct {
		name          string
		body          string
		access        func(now time.Time) domain.Expiry
		refresh       string
		refreshExpiry func(now time.Time) domain.Expiry
	}{
		{"expires_in with refresh token and refresh_token_expires_in",
			`{"access_token":"at","refresh_token":"rt","expires_in":7200,"refresh_token_expires_in":86400}`,
			after(7200), "rt", after(86400)},
		{"RFC 3339 with offset",
			`{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2099-01-02T17:04:05+02:00","refresh_token_expires_at":"2099-06-01T00:00:00Z"}`,
			fixed("2099-01-02T15:04:05Z"), "rt", fixed("2099-06-01T00:00:00Z")},
		{"RFC 3339 fraction is kept to the microsecond",
			`{"access_token":"at","access_token_expires_at":"2099-01-02T15:04:05.123456789Z"}`,
			fixed("2099-01-02T15:04:05.123456Z"), "", never},
		{"no expiry and no refresh token: never",
			`{"access_token":"at"}`, never, "", never},
		{"refresh token without expiry",
			`{"access_token":"at","refresh_token":"rt","expires_in":3600}`, after(3600), "rt", never},
		{"expires_in 1", `{"access_token":"at","expires_in":1}`, after(1), "", never},
		{"refresh_token_expires_in 0: the refresh token does not expire (Keycloak offline tokens)",
			`{"access_token":"at","refresh_token":"rt","expires_in":300,"refresh_token_expires_in":0}`, after(300), "rt", never},
		{"non-ASCII tokens are kept byte for byte",
			`{"access_token":"at","refresh_token":"rt-ü-名前-😀-\u00e9"}`, never, "rt-ü-名前-😀-é", never},
		{"null members are absent ones",
			`{"access_token":"at","refresh_token":null,"expires_in":null,"access_token_expires_at":null}`, never, "", never},
		{"huge expires_in saturates", fmt.Sprintf(`{"access_token":"at","expires_in":%d}`, int64(math.MaxInt64)), after(maxSeconds), "", never},
		{"first overflowing expires_in saturates", fmt.Sprintf(`{"access_token":"at","expires_in":%d}`, maxSeconds+1), after(maxSeconds), "", never},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			before := time.Now().Truncate(time.Microsecond)
			rec := a.do("PUT", tokensPath("alice", "gitlab"), callerAll, tc.body)
			after := time.Now()
			wantStatus(t, rec, http.StatusOK)
			got := a.svc.gotTokens
			if got.User != "alice" || got.Provider != "gitlab" || got.AccessToken.Reveal() != "at" || got.RefreshToken.Reveal() != tc.refresh {
				t.Errorf("service got user %q provider %q access %q refresh %q", got.User, got.Provider, got.AccessToken.Reveal(), got.RefreshToken.Reveal())
			}
			checkExpiry(t, "access expiry", got.AccessExpiry, tc.access, before, after)
			checkExpiry(t, "refresh expiry", got.RefreshExpiry, tc.refreshExpiry, before, after)
		})
	}
}

// after and fixed say what an expiry must be, given the request's time.
func after(seconds int64) func(time.Time) domain.Expiry {
	return func(now time.Time) domain.Expiry { return domain.AfterSeconds(now, seconds) }
}

func fixed(rfc3339 string) func(time.Time) domain.Expiry {
	return func(time.Time) domain.Expiry {
		t, err := time.Parse(time.RFC3339Nano, rfc3339)
		if err != nil {
			panic(err)
		}
		return domain.At(t)
	}
}

func never(time.Time) domain.Expiry { return domain.Never() }

// checkExpiry: a relative expiry counts from a moment between before and
// after, truncated to the microsecond as PostgreSQL keeps it.
func checkExpiry(t *testing.T, what string, got domain.Expiry, want func(time.Time) domain.Expiry, before, after time.Time) {
	t.Helper()
	lo, hi := want(before), want(after)
	gt, gok := got.Time()
	lt, lok := lo.Time()
	ht, _ := hi.Time()
	if gok != lok || gok && (gt.Before(lt) || gt.After(ht) || !gt.Equal(gt.Truncate(time.Microsecond))) {
		t.Errorf("%s = %v, want between %v and %v", what, got, lo, hi)
	}
}

func TestPutTokensAnswer(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.svc.status = app.ProviderStatus{
		Provider: "gitlab", State: domain.StateExpiring,
		AccessExpiry:  domain.At(time.Date(2099, 1, 2, 17, 4, 5, 123456000, time.FixedZone("", 2*3600))),
		RefreshExpiry: domain.Never(), HasRefreshToken: true,
		UpdatedAt: time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", -3600)),
	}
	wantJSON(t, a.do("PUT", tokensPath("alice", "gitlab"), callerAll, `{"access_token":"at"}`), http.StatusOK,
		`{"provider":"gitlab","state":"expiring","access_token_expires_at":"2099-01-02T15:04:05.123456Z",`+
			`"refresh_token_expires_at":null,"has_refresh_token":true,"refresh_error":null,"ambiguous_retries":0,"updated_at":"2026-03-04T06:06:07Z"}`)
}

func TestGetTokens(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.svc.access = app.AccessToken{User: "alice", Provider: "github", Token: domain.NewSecret("gho_x"),
		Expiry: domain.At(time.Date(2099, 1, 2, 15, 4, 5, 0, time.UTC))}
	wantJSON(t, a.do("GET", tokensPath("alice", "github"), callerAll, nil), http.StatusOK,
		`{"user":"alice","provider":"github","access_token":"gho_x","access_token_expires_at":"2099-01-02T15:04:05Z"}`)
	if a.svc.gotUser != "alice" || a.svc.gotProvider != "github" {
		t.Errorf("service asked for %q/%q", a.svc.gotUser, a.svc.gotProvider)
	}
	a.svc.access.Expiry = domain.Never()
	wantJSON(t, a.do("GET", tokensPath("alice", "github"), callerAll, nil), http.StatusOK,
		`{"user":"alice","provider":"github","access_token":"gho_x","access_token_expires_at":null}`)
}

func TestListProviders(t *testing.T) {
	t.Parallel()
	a := setup(t)
	wantJSON(t, a.do("GET", providersPath("nobody"), callerAll, nil), http.StatusOK, `{"user":"nobody","providers":[]}`)
	a.svc.list = []app.ProviderStatus{
		{Provider: "bitbucket", State: domain.StateReauthRequired, AccessExpiry: domain.At(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)),
			RefreshExpiry: domain.At(time.Date(2001, 2, 1, 0, 0, 0, 0, time.UTC)), HasRefreshToken: true,
			LastError: "invalid_grant", AmbiguousRetries: 2, UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 1000, time.UTC)},
		{Provider: "github", State: domain.StateValid, AccessExpiry: domain.Never(), RefreshExpiry: domain.Never(),
			UpdatedAt: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	wantJSON(t, a.do("GET", providersPath("carol"), callerAll, nil), http.StatusOK, `{"user":"carol","providers":[`+
		`{"provider":"bitbucket","state":"reauth_required","access_token_expires_at":"2001-01-01T00:00:00Z",`+
		`"refresh_token_expires_at":"2001-02-01T00:00:00Z","has_refresh_token":true,"refresh_error":"invalid_grant","ambiguous_retries":2,"updated_at":"2026-01-01T00:00:00.000001Z"},`+
		`{"provider":"github","state":"valid","access_token_expires_at":null,"refresh_token_expires_at":null,`+
		`"has_refresh_token":false,"refresh_error":null,"ambiguous_retries":0,"updated_at":"2026-01-02T00:00:00Z"}]}`)
	if a.svc.gotUser != "carol" {
		t.Errorf("service asked for %q", a.svc.gotUser)
	}
}

func TestOfflineToken(t *testing.T) {
	t.Parallel()
	a := setup(t)
	a.svc.offline = domain.OfflineToken{User: "dave", Token: domain.NewSecret("off-1"),
		CreatedAt: time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("", 3600)), UpdatedAt: time.Date(2026, 1, 2, 0, 0, 0, 5000, time.UTC)}
	// PUT answers without the token.
	wantJSON(t, a.do("PUT", offlinePath("dave"), callerAll, `{"offline_token":"off-1"}`), http.StatusOK,
		`{"user":"dave","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00.000005Z"}`)
	if got := a.svc.gotOffline; got.User != "dave" || got.Token.Reveal() != "off-1" {
		t.Errorf("service got user %q token %q", got.User, got.Token.Reveal())
	}
	wantJSON(t, a.do("GET", offlinePath("dave"), callerAll, nil), http.StatusOK,
		`{"user":"dave","offline_token":"off-1","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00.000005Z"}`)
}

func TestDeletes(t *testing.T) {
	t.Parallel()
	tests := []struct{ path, call, provider string }{
		{tokensPath("erin", "gitlab"), "DeleteAuthTokens", "gitlab"},
		{offlinePath("erin"), "DeleteOfflineToken", ""},
	}
	for _, tc := range tests {
		a := setup(t)
		rec := a.do("DELETE", tc.path, callerAll, nil)
		wantStatus(t, rec, http.StatusNoContent)
		if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
			t.Errorf("204 with Content-Type %q body %q, want neither", rec.Header().Get("Content-Type"), rec.Body)
		}
		if len(a.svc.calls) != 1 || a.svc.calls[0] != tc.call || a.svc.gotUser != "erin" || a.svc.gotProvider != domain.Provider(tc.provider) {
			t.Errorf("service calls %v for %q/%q", a.svc.calls, a.svc.gotUser, a.svc.gotProvider)
		}
	}
}

// TestUnusualValidUserIDs: any opaque id within the rules reaches the
// service as sent, once unescaped from the path.
func TestUnusualValidUserIDs(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, user string }{
		{"255 bytes", strings.Repeat("u", 255)},
		{"255 bytes of multi-byte runes", strings.Repeat("é", 127) + "x"},
		{"inner space", "alice smith"},
		{"slash", "realm/alice"},
		{"percent and question mark", "50%?x=1#y"},
		{"non-ASCII", "名前-ü"},
		{"email", "alice@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			user := url.PathEscape(tc.user)
			for _, rq := range []struct {
				method, path string
				body         any
			}{
				{"PUT", tokensPath(user, "github"), `{"access_token":"at"}`},
				{"GET", tokensPath(user, "github"), nil},
				{"GET", providersPath(user), nil},
				{"PUT", offlinePath(user), `{"offline_token":"ot"}`},
				{"GET", offlinePath(user), nil},
			} {
				a.svc.gotUser = ""
				rec := a.do(rq.method, rq.path, callerAll, rq.body)
				if rec.Code != http.StatusOK || a.svc.gotUser != domain.UserID(tc.user) {
					t.Errorf("%s %s = %d, service got user %q, want 200 and %q", rq.method, rq.path, rec.Code, a.svc.gotUser, tc.user)
				}
			}
			if !strings.Contains(a.do("GET", providersPath(user), callerAll, nil).Body.String(), `"user":`) {
				t.Error("providers answer has no user")
			}
		})
	}
}

// TestRequestLog: one line per request with its method, route pattern,
// status, caller and request id; never the path (it holds the user id) and
// never token material or credentials.
func TestRequestLog(t *testing.T) {
	t.Parallel()
	a := setup(t)
	const user, access, junk = "log-user-7", "gho_logaccess_1", "gho_junk_2"
	const tokensRoute, offlineRoute = "/v1/users/{user}/providers/{provider}/tokens", "/v1/users/{user}/offline-token"
	wrongCred := "tsc_wrongcredential"
	reqs := []struct {
		method, path, caller, contentType, body string
		status                                  int
		route                                   string
	}{
		{"PUT", tokensPath(user, "github"), callerAll, "application/json", `{"access_token":"` + access + `","expires_in":3600}`, 200, "PUT " + tokensRoute},
		{"GET", tokensPath(user, "github"), callerAll, "", "", 200, "GET " + tokensRoute},
		{"GET", providersPath(user), callerAll, "", "", 200, "GET /v1/users/{user}/providers"},
		{"PUT", tokensPath(user, "github"), callerAll, "application/json", `{"access_token":"` + junk + `","bogus":"` + junk + `"}`, 400, "PUT " + tokensRoute},
		{"PUT", tokensPath(user, "github"), callerAll, "application/json", `{"access_token":"` + junk + strings.Repeat("z", 70<<10) + `"}`, 400, "PUT " + tokensRoute},
		{"PUT", tokensPath(user, "github"), callerAll, "text/plain", `{"access_token":"` + junk + `"}`, 415, "PUT " + tokensRoute},
		{"PUT", tokensPath(user, "github"), "", "application/json", `{"access_token":"` + junk + `"}`, 401, "unmatched"},
		{"GET", tokensPath(user, "github"), wrongCred, "", "", 401, "unmatched"},
		{"GET", tokensPath(user, "github"), callerWithout("tokens:read"), "", "", 403, "GET " + tokensRoute},
		{"DELETE", offlinePath(user), callerAll, "", "", 204, "DELETE " + offlineRoute},
		{"POST", tokensPath(user, "github"), callerAll, "", "", 405, tokensRoute},
		{"GET", "/v1/users/" + user + "/nope", callerAll, "", "", 404, "/"},
		{"GET", "/v1/users/" + user + "%0Aforged/providers", callerAll, "", "", 400, "GET /v1/users/{user}/providers"},
		{"GET", "/healthz", "", "", "", 200, "GET /healthz"},
		{"GET", "/nope/" + user, "", "", "", 404, "/"},
	}
	for i, rq := range reqs {
		h := map[string]string{"X-Request-Id": fmt.Sprintf("log-test-%02d", i)}
		if rq.contentType != "" {
			h["Content-Type"] = rq.contentType
		}
		if cred, ok := a.creds[rq.caller]; ok {
			h["Authorization"] = "Bearer " + cred
		} else if rq.caller != "" {
			h["Authorization"] = "Bearer " + rq.caller
		}
		if rec := a.send(rq.method, rq.path, h, rq.body); rec.Code != rq.status {
			t.Fatalf("request %d %s %s = %d, want %d; body %s", i, rq.method, rq.path, rec.Code, rq.status, rec.Body)
		}
	}
	lines := a.logged("request")
	if len(lines) != len(reqs) {
		t.Fatalf("%d request log lines for %d requests; log:\n%s", len(lines), len(reqs), a.logs.String())
	}
	for i, rq := range reqs {
		l := lines[i]
		wantCaller := rq.caller
		if _, known := a.creds[rq.caller]; !known {
			wantCaller = "" // no or a wrong credential: nobody
		}
		d, _ := l["duration_ms"].(float64)
		if l["method"] != rq.method || l["route"] != rq.route || l["status"] != float64(rq.status) ||
			l["caller"] != wantCaller || l["request_id"] != fmt.Sprintf("log-test-%02d", i) || d < 0 || l["level"] != "INFO" {
			t.Errorf("request %d: logged %v; want %s %q %d caller %q", i, l, rq.method, rq.route, rq.status, wantCaller)
		}
	}
	notIn(t, "log", a.logs.String(), user, access, junk, wrongCred)
	for _, cred := range a.creds {
		notIn(t, "log", a.logs.String(), cred)
	}
}
