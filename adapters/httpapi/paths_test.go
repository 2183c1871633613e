package httpapi_test

// Paths the standard router would clean and redirect: answered with a 400
// problem naming the path value, never a redirect with an empty body.

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUncleanPaths(t *testing.T) {
	t.Parallel()
	putTokens := `{"access_token":"at"}`
	putOffline := `{"offline_token":"ot"}`
	tests := []struct {
		method, path string
		body         string
		field        string
	}{
		{"PUT", "/v1/users//providers/github/tokens", putTokens, "user"},
		{"PUT", "/v1/users/alice/providers//tokens", putTokens, "provider"},
		{"GET", "/v1/users//providers/github/tokens", "", "user"},
		{"DELETE", "/v1/users/alice/providers//tokens", "", "provider"},
		{"PUT", "/v1/users//providers//tokens", putTokens, "user"},
		{"GET", "/v1/users//providers", "", "user"},
		{"PUT", "/v1/users//offline-token", putOffline, "user"},
		{"GET", "/v1/users//offline-token", "", "user"},
		{"DELETE", "/v1/users//offline-token", "", "user"},
		{"PUT", "/v1/users/./providers/github/tokens", putTokens, "user"},
		{"PUT", "/v1/users/../providers/github/tokens", putTokens, "user"},
		{"PUT", "/v1/users/alice/providers/./tokens", putTokens, "provider"},
		{"PUT", "/v1/users/alice/providers/../tokens", putTokens, "provider"},
		{"GET", "/v1/users/./offline-token", "", "user"},
		{"PUT", "/v1/users/../offline-token", putOffline, "user"},
		{"GET", "/v1/users/../providers", "", "user"},
		// Not in a path value: the path itself.
		{"PUT", "/v1//users/alice/providers/github/tokens", putTokens, "path"},
		{"PUT", "//v1/users/alice/providers/github/tokens", putTokens, "path"},
		{"PUT", "/v1/users/alice/providers/github//tokens", putTokens, "path"},
		{"PUT", "/v1/users/alice/providers/github/tokens/.", putTokens, "path"},
		{"PUT", "/v1/users/alice/providers/github/tokens/..", putTokens, "path"},
		{"GET", "/v1/users/alice/providers/github/tokens//", "", "path"},
		{"GET", "/v1/./users/alice/providers", "", "path"},
		{"GET", "/v1/users/alice/../bob/providers", "", "path"},
		{"GET", "/v1/users/alice/offline-token/.", "", "path"},
		{"GET", "/v1//", "", "path"},
		{"POST", "/v1/users//offline-token", "", "user"},
		// Outside /v1, without a credential: the same 400, not a redirect.
		{"GET", "//healthz", "", "path"},
		{"GET", "/./readyz", "", "path"},
		{"GET", "/x/../healthz", "", "path"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			caller := callerAll
			if !strings.Contains(tc.path, "v1") {
				caller = ""
			}
			var body any
			if tc.body != "" {
				body = tc.body
			}
			rec := a.do(tc.method, tc.path, caller, body)
			p := wantProblem(t, rec, http.StatusBadRequest, "invalid_request", tc.field)
			if !strings.HasPrefix(p.Detail, tc.field+" ") && !strings.HasPrefix(p.Detail, "invalid "+tc.field+": ") {
				t.Errorf("detail %q does not name %s", p.Detail, tc.field)
			}
			if loc := rec.Header().Get("Location"); loc != "" {
				t.Errorf("Location %q: the answer is no redirect", loc)
			}
			if len(a.svc.calls) != 0 {
				t.Errorf("an unclean path reached the service: %v", a.svc.calls)
			}
			if caller != "" {
				// Without a credential, the 401 comes first, as for every /v1 path.
				wantProblem(t, a.do(tc.method, tc.path, "", body), http.StatusUnauthorized, "unauthenticated", "")
			}
		})
	}
}

// TestPathValuesAreNotDecodedTwice: a percent-encoded character in a path
// value is data with exactly one meaning: user a%2Fb is the user "a/b"
// (never the path /a/b), %2E%2E a user id of two full stops, which user ids
// refuse, and %252F the three characters "%2F".
func TestPathValuesAreNotDecodedTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, user, provider string
		field                string // "": accepted
	}{
		{tokensPath("a%2Fb", "github"), "a/b", "github", ""},
		{tokensPath("a%2fb", "github"), "a/b", "github", ""},
		{tokensPath("a%252Fb", "github"), "a%2Fb", "github", ""},
		{tokensPath("%2E", "github"), "", "", "user"},
		{tokensPath("%2E%2E", "github"), "", "", "user"},
		{tokensPath(".%2E", "github"), "", "", "user"},
		{tokensPath("...", "github"), "...", "github", ""},
		{tokensPath("alice", "git%2Fhub"), "", "", "provider"},
		{tokensPath("alice", "%2E%2E"), "", "", "provider"},
		{offlinePath("%2E%2E"), "", "", "user"},
		{providersPath("%2E"), "", "", "user"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			a := setup(t)
			rec := a.do("GET", tc.path, callerAll, nil)
			if tc.field != "" {
				wantProblem(t, rec, http.StatusBadRequest, "invalid_request", tc.field)
				if len(a.svc.calls) != 0 {
					t.Errorf("reached the service: %v", a.svc.calls)
				}
				return
			}
			wantStatus(t, rec, http.StatusOK)
			if string(a.svc.gotUser) != tc.user || (strings.Contains(tc.path, "/tokens") && string(a.svc.gotProvider) != tc.provider) {
				t.Errorf("service got user %q provider %q, want %q %q", a.svc.gotUser, a.svc.gotProvider, tc.user, tc.provider)
			}
		})
	}
	// The unescaped slash is another path: no route.
	a := setup(t)
	wantProblem(t, a.do("GET", tokensPath("a/b", "github"), callerAll, nil), http.StatusNotFound, "not_found", "")
}

// TestNoPathIsRedirected compares the API with a bare http.ServeMux over
// many paths built from route segments and the segments the mux cleans:
// wherever the mux would redirect, the API answers a 400 problem; nowhere
// does it redirect; and a path the mux leaves alone is never refused as
// unclean.
func TestNoPathIsRedirected(t *testing.T) {
	t.Parallel()
	bare := http.NewServeMux()
	bare.HandleFunc("/", func(http.ResponseWriter, *http.Request) {})
	segments := []string{"v1", "users", "alice", "providers", "github", "tokens", "offline-token", "healthz",
		"", ".", "..", "%2E", "%2E%2E", "a%2Fb", "%2F"}
	rng := rand.New(rand.NewPCG(9, 9))
	a := setup(t)
	for range 3000 {
		n := 1 + rng.IntN(7)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = segments[rng.IntN(len(segments))]
		}
		if rng.IntN(2) == 0 { // most real paths start with /v1/users
			copy(parts, []string{"v1", "users"})
		}
		path := "/" + strings.Join(parts, "/")
		for _, method := range []string{"GET", "PUT"} {
			req := httptest.NewRequest(method, path, nil)
			bareRec := httptest.NewRecorder()
			bare.ServeHTTP(bareRec, req)
			redirected := bareRec.Code >= 300 && bareRec.Code < 400

			rec := a.do(method, path, callerAll, nil)
			if rec.Code >= 300 && rec.Code < 400 {
				t.Fatalf("%s %s = %d (Location %q): a redirect", method, path, rec.Code, rec.Header().Get("Location"))
			}
			unclean := rec.Code == http.StatusBadRequest && strings.Contains(rec.Body.String(), `"field":"path"`)
			if redirected && rec.Code != http.StatusBadRequest {
				t.Fatalf("%s %s = %d; the mux redirects it, want 400: %s", method, path, rec.Code, rec.Body)
			}
			if !redirected && unclean {
				t.Fatalf("%s %s refused as unclean, but the mux leaves it alone: %s", method, path, rec.Body)
			}
		}
	}
	if len(a.svc.calls) == 0 {
		t.Error("no generated path reached the service: the sample is too narrow")
	}
}

// TestQueryStringsAreRefused: no /v1 route takes a query parameter, so one
// is a 400 naming it rather than silently ignored (a filter that does not
// filter); the probes ignore queries as before.
func TestQueryStringsAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct{ query, field string }{
		{"?state=expired", "state"},
		{"?b=1&a=2", "a"},
		{"?flag", "flag"},
		{"?", "query"},
		{"?%FF=1", "query"},
		{"?a=%", "query"},
	}
	for _, rt := range v1Routes(t) {
		for _, tc := range tests {
			t.Run(rt.Method+" "+rt.Path+tc.query, func(t *testing.T) {
				t.Parallel()
				a := setup(t)
				target := concretePath(t, rt.Path) + tc.query
				body := nilIfEmpty(validBody(t, rt))
				wantProblem(t, a.do(rt.Method, target, callerAll, body), http.StatusBadRequest, "invalid_request", tc.field)
				if len(a.svc.calls) != 0 {
					t.Errorf("a request with a query reached the service: %v", a.svc.calls)
				}
				wantProblem(t, a.do(rt.Method, target, "", body), http.StatusUnauthorized, "unauthenticated", "")
			})
		}
	}
	a := setup(t)
	wantStatus(t, a.do("GET", "/healthz?probe=1", "", nil), http.StatusOK)
}
