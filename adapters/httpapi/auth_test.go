package httpapi_test

// The authentication and authorization matrix over every /v1 route.

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// routePermissions is the documented permission table. A /v1 route missing
// here fails TestAuthMatrix: document its permission (openapi.yaml's
// x-permission) and add it.
var routePermissions = map[string]httpapi.Permission{
	"PUT /v1/users/{user}/providers/{provider}/tokens":    httpapi.PermTokensWrite,
	"GET /v1/users/{user}/providers/{provider}/tokens":    httpapi.PermTokensRead,
	"DELETE /v1/users/{user}/providers/{provider}/tokens": httpapi.PermTokensDelete,
	"GET /v1/users/{user}/providers":                      httpapi.PermTokensRead,
	"PUT /v1/users/{user}/offline-token":                  httpapi.PermOfflineWrite,
	"GET /v1/users/{user}/offline-token":                  httpapi.PermOfflineRead,
	"DELETE /v1/users/{user}/offline-token":               httpapi.PermOfflineDelete,
	"GET /v1/events":                                      httpapi.PermEventsRead,
}

// TestPermissionTableMatchesOpenAPI: the table and the document's
// x-permission say the same, and the table names no route that is gone.
func TestPermissionTableMatchesOpenAPI(t *testing.T) {
	t.Parallel()
	ops := operations(loadOpenAPI(t))
	for key, perm := range routePermissions {
		op := ops[key]
		if op == nil {
			t.Errorf("%s is in routePermissions but not in openapi.yaml", key)
			continue
		}
		if got, _ := op.Extensions["x-permission"].(string); got != string(perm) {
			t.Errorf("%s: openapi.yaml x-permission %q, routePermissions %q", key, got, perm)
		}
	}
}

func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	_, creds := testCallers()
	unauthenticated := []struct {
		name, authorization, challenge string
	}{
		{"no Authorization header", "", `Bearer realm="tokenstore"`},
		{"wrong credential", "Bearer tsc_" + strings.Repeat("A", 43), `Bearer realm="tokenstore", error="invalid_token"`},
		{"credential hash instead of credential", "Bearer " + httpapi.HashCredential(creds[callerAll]), `Bearer realm="tokenstore", error="invalid_token"`},
		{"Basic scheme", "Basic xyz", `Bearer realm="tokenstore"`},
		{"Basic scheme with a valid credential", "Basic " + creds[callerAll], `Bearer realm="tokenstore"`},
		{"scheme only", "Bearer", `Bearer realm="tokenstore"`},
		{"empty credential", "Bearer ", `Bearer realm="tokenstore"`},
		{"credential without scheme", creds[callerAll], `Bearer realm="tokenstore"`},
	}
	for _, rt := range v1Routes(t) {
		key := rt.Method + " " + rt.Path
		perm, ok := routePermissions[key]
		if !ok {
			t.Errorf("route %s is not in the documented permission table (routePermissions)", key)
			continue
		}
		path, body := concretePath(t, rt.Path), validBody(t, rt)
		req := func(a *apiTest, authorization string) *httptest.ResponseRecorder {
			h := map[string]string{}
			if body != "" {
				h["Content-Type"] = "application/json"
			}
			if authorization != "" {
				h["Authorization"] = authorization
			}
			return a.send(rt.Method, path, h, body)
		}
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			for _, tc := range unauthenticated {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					a := setup(t)
					rec := req(a, tc.authorization)
					p := wantProblem(t, rec, http.StatusUnauthorized, "unauthenticated", "")
					want := "send Authorization: Bearer <caller credential>"
					if strings.Contains(tc.challenge, "invalid_token") {
						want = "the credential is not valid"
					}
					if p.Detail != want {
						t.Errorf("detail %q, want %q", p.Detail, want)
					}
					if got := rec.Header().Get("WWW-Authenticate"); got != tc.challenge {
						t.Errorf("WWW-Authenticate = %q, want %q", got, tc.challenge)
					}
					if len(a.svc.calls) != 0 {
						t.Errorf("an unauthenticated request reached the service: %v", a.svc.calls)
					}
				})
			}
			t.Run("caller without "+string(perm), func(t *testing.T) {
				t.Parallel()
				a := setup(t)
				rec := req(a, a.bearer(callerWithout(perm)))
				p := wantProblem(t, rec, http.StatusForbidden, "forbidden", "")
				if want := `caller "` + callerWithout(perm) + `" lacks the ` + string(perm) + " permission"; p.Detail != want {
					t.Errorf("detail %q, want %q", p.Detail, want)
				}
				if rec.Header().Get("WWW-Authenticate") != "" {
					t.Errorf("403 has WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
				}
				if len(a.svc.calls) != 0 {
					t.Errorf("a forbidden request reached the service: %v", a.svc.calls)
				}
			})
			// Every caller holding perm passes, whatever else it lacks.
			allowed := []string{callerAll}
			for _, p := range httpapi.AllPermissions {
				if p != perm {
					allowed = append(allowed, callerWithout(p))
				}
			}
			for _, caller := range allowed {
				t.Run("caller "+caller, func(t *testing.T) {
					t.Parallel()
					a := setup(t)
					for _, authorization := range []string{
						a.bearer(caller),
						"bearer " + creds[caller], // the scheme is case-insensitive
					} {
						if rec := req(a, authorization); rec.Code < 200 || rec.Code > 299 {
							t.Errorf("%s: %d %s, want 2xx", authorization[:6], rec.Code, rec.Body)
						}
					}
					if len(a.svc.calls) != 2 {
						t.Errorf("service calls %v, want one per request", a.svc.calls)
					}
				})
			}
		})
	}
}

// TestNoV1PathAnswersWithoutCredential: whatever the path under /v1 and
// whatever the method, a request without a credential learns nothing but 401.
func TestNoV1PathAnswersWithoutCredential(t *testing.T) {
	t.Parallel()
	methods := []string{"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"}
	paths := []string{
		"/v1/",
		"/v1/nope",
		"/v1/users",
		"/v1/users/alice",
		"/v1/users/alice/providers/gitlab",
		"/v1/users/alice/providers/gitlab/tokens/extra",
		"/v1/users/alice/offline-token/",
		"/v1/users/Bad%00User/providers/GitHub/tokens",
		"/v1/users/" + strings.Repeat("x", 300) + "/providers",
		"/v1%2Fusers/alice/providers",
		"/%761/users/alice/providers",
		// Paths the router would redirect (subtree root, unclean paths).
		"/v1",
		"/v1//users/alice/providers",
		"/v1/users/alice/./providers",
		"/v1/users/alice/../bob/providers",
		"/v1/users/alice/providers/gitlab/tokens/..",
		// Paths that only become /v1/... once cleaned.
		"//v1/users/alice/providers",
		"/x/../v1/users/alice/providers",
		"/./v1/users/alice/providers",
	}
	for _, rt := range v1Routes(t) {
		paths = append(paths, concretePath(t, rt.Path))
	}
	for _, path := range paths {
		for _, method := range methods {
			t.Run(method+" "+path, func(t *testing.T) {
				t.Parallel()
				a := setup(t)
				var body string
				h := map[string]string{}
				if method == "PUT" || method == "POST" || method == "PATCH" {
					body = `{"access_token":"x","offline_token":"y"}`
					h["Content-Type"] = "application/json"
				}
				rec := a.send(method, path, h, body)
				if rec.Code != http.StatusUnauthorized {
					t.Fatalf("%s %s without credential = %d (Allow %q, Location %q), want 401; body %s",
						method, path, rec.Code, rec.Header().Get("Allow"), rec.Header().Get("Location"), rec.Body)
				}
				wantProblem(t, rec, http.StatusUnauthorized, "unauthenticated", "")
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if rec.Header().Get("Allow") != "" {
					t.Errorf("401 reveals the route's methods: Allow %q", rec.Header().Get("Allow"))
				}
			})
		}
	}
}

// TestNewAuthenticator: caller names are unique and non-empty, and no two
// callers share a credential.
func TestNewAuthenticator(t *testing.T) {
	t.Parallel()
	callers, creds := testCallers()
	a, b := callers[0], callers[1]
	tests := []struct {
		name    string
		callers []httpapi.Caller
		err     string // "" for none
	}{
		{"none", nil, ""},
		{"distinct", []httpapi.Caller{a, b}, ""},
		{"empty name", []httpapi.Caller{a, {CredentialHash: b.CredentialHash}}, "callers[1]: name must not be empty"},
		{"name twice", []httpapi.Caller{a, {Name: a.Name, CredentialHash: b.CredentialHash}}, `callers[1]: name "all" is used twice`},
		{"credential twice", []httpapi.Caller{a, {Name: "other", CredentialHash: a.CredentialHash}},
			"callers[1] (other): same credential as all; give each caller its own"},
	}
	for _, tc := range tests {
		auth, err := httpapi.NewAuthenticator(tc.callers)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, c := range tc.callers {
			if got := auth.Authenticate(creds[c.Name]); got == nil || got.Name != c.Name {
				t.Errorf("%s: %s's credential authenticates %v", tc.name, c.Name, got)
			}
		}
		if got := auth.Authenticate(httpapi.HashCredential(creds[callerAll])); got != nil {
			t.Errorf("%s: the hash of a credential authenticates %s", tc.name, got.Name)
		}
	}
}

func TestParseCredentialHash(t *testing.T) {
	t.Parallel()
	good := httpapi.HashCredential("tsc_x")
	if _, err := httpapi.ParseCredentialHash(good); err != nil {
		t.Errorf("%s: %v", good, err)
	}
	for _, bad := range []string{"", strings.TrimPrefix(good, "sha256:"), "sha256:" + strings.Repeat("0", 63), "sha256:" + strings.Repeat("g", 64), "SHA256:" + good[7:]} {
		if _, err := httpapi.ParseCredentialHash(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if _, err := httpapi.ParsePermission("tokens:admin"); err == nil || !strings.Contains(err.Error(), "use one of tokens:read") {
		t.Errorf("unknown permission: %v", err)
	}
}
