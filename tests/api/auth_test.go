package api_test

// The authentication and authorization matrix over every /v1 route.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// routePermissions is the documented permission table; "" marks the routes
// that need no credential (the health probes and the API document). A route
// missing here fails TestAuthMatrix or TestRoutesWithoutPermission: document
// its permission and add it.
var routePermissions = map[string]httpapi.Permission{
	"GET /healthz":      "",
	"GET /readyz":       "",
	"GET /openapi.yaml": "",
	"PUT /v1/users/{user}/providers/{provider}/tokens":    httpapi.PermTokensWrite,
	"GET /v1/users/{user}/providers/{provider}/tokens":    httpapi.PermTokensRead,
	"DELETE /v1/users/{user}/providers/{provider}/tokens": httpapi.PermTokensDelete,
	"GET /v1/users/{user}/providers":                      httpapi.PermTokensRead,
	"PUT /v1/users/{user}/offline-token":                  httpapi.PermOfflineWrite,
	"GET /v1/users/{user}/offline-token":                  httpapi.PermOfflineRead,
	"DELETE /v1/users/{user}/offline-token":               httpapi.PermOfflineDelete,
	"GET /v1/events":                                      httpapi.PermEventsRead,
}

// user is the user concretePath puts in a route's path, or "".
func user(pattern string) string {
	if strings.Contains(pattern, "{user}") {
		return "matrix-user"
	}
	return ""
}

// provider is the provider concretePath puts in a route's path, or "".
func provider(pattern string) string {
	if strings.Contains(pattern, "{provider}") {
		return "gitlab"
	}
	return ""
}

// v1Routes lists the API's /v1 routes from httpapi.Routes().
func v1Routes(t *testing.T) []httpapi.Route {
	t.Helper()
	var out []httpapi.Route
	for _, r := range httpapi.Routes() {
		if strings.HasPrefix(r.Path, "/v1/") {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		t.Fatal("httpapi.Routes() has no /v1 route")
	}
	return out
}

// concretePath substitutes valid values for a route's path parameters.
func concretePath(t *testing.T, pattern string) string {
	t.Helper()
	values := map[string]string{"{user}": "matrix-user", "{provider}": "gitlab"}
	path := pattern
	for k, v := range values {
		path = strings.ReplaceAll(path, k, v)
	}
	if strings.ContainsAny(path, "{}") {
		t.Fatalf("route %s has a path parameter this test does not know; add a valid value for it", pattern)
	}
	return path
}

// validBody returns a valid request body for a route's method and path.
func validBody(t *testing.T, r httpapi.Route) []byte {
	t.Helper()
	if r.Method != "PUT" && r.Method != "POST" && r.Method != "PATCH" {
		return nil
	}
	switch {
	case strings.HasSuffix(r.Path, "/tokens"):
		return []byte(`{"access_token":"matrix-at","refresh_token":"matrix-rt","expires_in":3600}`)
	case strings.HasSuffix(r.Path, "/offline-token"):
		return []byte(`{"offline_token":"matrix-offline"}`)
	}
	t.Fatalf("route %s %s takes a body this test does not know; add a valid one", r.Method, r.Path)
	return nil
}

func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	for _, rt := range v1Routes(t) {
		key := rt.Method + " " + rt.Path
		if routeActions[key] == "" {
			t.Errorf("route %s has no audit action in routeActions", key)
			continue
		}
		perm, ok := routePermissions[key]
		if !ok || perm == "" {
			t.Errorf("route %s is not in the documented permission table (routePermissions) with a permission", key)
			continue
		}
		path := concretePath(t, rt.Path)
		body := validBody(t, rt)
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			req := func(authorization string) response {
				t.Helper()
				h := map[string]string{}
				if body != nil {
					h["Content-Type"] = "application/json"
				}
				if authorization != "" {
					h["Authorization"] = authorization
				}
				return inst.send(rawRequest{method: rt.Method, path: path, header: h, body: body})
			}
			unauthenticated := []struct {
				name, authorization, challenge string
			}{
				{"no Authorization header", "", `Bearer realm="tokenstore"`},
				{"wrong credential", "Bearer " + "tsc_" + strings.Repeat("A", 43), `Bearer realm="tokenstore", error="invalid_token"`},
				{"credential hash instead of credential", "Bearer " + httpapi.HashCredential(inst.creds[callerAll]), `Bearer realm="tokenstore", error="invalid_token"`},
				{"Basic scheme", "Basic xyz", `Bearer realm="tokenstore"`},
				{"Basic scheme with a valid credential", "Basic " + inst.creds[callerAll], `Bearer realm="tokenstore"`},
				{"scheme only", "Bearer", `Bearer realm="tokenstore"`},
				{"empty credential", "Bearer ", `Bearer realm="tokenstore"`},
				{"credential without scheme", inst.creds[callerAll], `Bearer realm="tokenstore"`},
			}
			for _, tc := range unauthenticated {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					r := req(tc.authorization)
					wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
					inst.wantAuditEvent(t, r, "", "authenticate", "", "")
					if got := r.Header.Get("WWW-Authenticate"); got != tc.challenge {
						t.Errorf("WWW-Authenticate = %q, want %q", got, tc.challenge)
					}
				})
			}
			t.Run("caller without "+string(perm), func(t *testing.T) {
				t.Parallel()
				r := req(inst.bearer(callerWithout(perm)))
				p := wantProblem(t, r, http.StatusForbidden, "forbidden", "")
				inst.wantAuditEvent(t, r, callerWithout(perm), routeActions[key], user(rt.Path), provider(rt.Path))
				if !strings.Contains(p.Detail, string(perm)) {
					t.Errorf("detail %q does not name the missing permission %s", p.Detail, perm)
				}
				if r.Header.Get("WWW-Authenticate") != "" {
					t.Errorf("403 has WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
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
					for _, authorization := range []string{
						inst.bearer(caller),
						"bearer " + inst.creds[caller], // the scheme is case-insensitive
					} {
						r := req(authorization)
						if r.StatusCode == http.StatusNotFound {
							// Nothing stored (yet): a failed request, recorded too.
							wantProblem(t, r, http.StatusNotFound, "not_found", "")
							inst.wantAuditEvent(t, r, caller, routeActions[key], user(rt.Path), provider(rt.Path))
							continue
						}
						if r.StatusCode < 200 || r.StatusCode > 299 {
							t.Errorf("%s: %d %s, want 2xx or 404", authorization[:6], r.StatusCode, r.body)
						} else if routeActions[key] != "list_providers" && routeActions[key] != "read_events" { // a listing hands out no token
							inst.wantAuditEvent(t, r, caller, routeActions[key], user(rt.Path), provider(rt.Path))
						}
					}
				})
			}
		})
	}
}

// TestRoutesWithoutPermission: every route outside /v1 is in the table as
// needing no credential, answers 200 without one, and ignores a wrong one
// (no 401 for a probe that sends a stale header); the table lists no route
// the server does not have.
func TestRoutesWithoutPermission(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	registered := map[string]bool{}
	for _, rt := range httpapi.Routes() {
		key := rt.Method + " " + rt.Path
		registered[key] = true
		if strings.HasPrefix(rt.Path, "/v1/") {
			continue
		}
		perm, ok := routePermissions[key]
		if !ok || perm != "" {
			t.Errorf("route %s is outside /v1 and so needs no credential; list it in routePermissions with \"\"", key)
			continue
		}
		for _, authorization := range []string{"", "Bearer tsc_" + strings.Repeat("A", 43)} {
			h := map[string]string{}
			if authorization != "" {
				h["Authorization"] = authorization
			}
			r := inst.send(rawRequest{method: rt.Method, path: rt.Path, header: h})
			if r.StatusCode != http.StatusOK || r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("%s with Authorization %q = %d (WWW-Authenticate %q), want 200 without a challenge; body %s",
					key, authorization, r.StatusCode, r.Header.Get("WWW-Authenticate"), r.body)
			}
		}
	}
	for key := range routePermissions {
		if !registered[key] {
			t.Errorf("routePermissions lists %s, which the server does not register", key)
		}
	}
}

// TestNoV1PathAnswersWithoutCredential: whatever the path under /v1 and
// whatever the method, a request without a credential learns nothing but 401.
func TestNoV1PathAnswersWithoutCredential(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	type probe struct{ method, path string }
	var probes []probe
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
	}
	for _, rt := range v1Routes(t) {
		paths = append(paths, concretePath(t, rt.Path))
	}
	for _, p := range paths {
		for _, m := range methods {
			probes = append(probes, probe{m, p})
		}
	}
	for _, pr := range probes {
		t.Run(pr.method+" "+pr.path, func(t *testing.T) {
			t.Parallel()
			inst := inst.forT(t)
			var body []byte
			h := map[string]string{}
			if pr.method == "PUT" || pr.method == "POST" || pr.method == "PATCH" {
				body = []byte(`{"access_token":"x","offline_token":"y"}`)
				h["Content-Type"] = "application/json"
			}
			r := inst.send(rawRequest{method: pr.method, path: pr.path, header: h, body: body})
			if r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("%s %s without credential = %d (Allow %q, Location %q), want 401; body %s",
					pr.method, pr.path, r.StatusCode, r.Header.Get("Allow"), r.Header.Get("Location"), r.body)
			}
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if r.Header.Get("Allow") != "" {
				t.Errorf("401 reveals the route's methods: Allow %q", r.Header.Get("Allow"))
			}
			if pr.method != "HEAD" {
				wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
			}
		})
	}
}

// TestPathsCleanedIntoV1DoNotRedirectWithoutCredential: ServeMux cleans
// paths before routing, so a path that only becomes /v1/... once cleaned
// ("//v1/...", "/x/../v1/...", "/./v1/...") must meet the credential check
// too, not a redirect that echoes the user id (a regression test: the gate
// once looked at the raw path only).
func TestPathsCleanedIntoV1DoNotRedirectWithoutCredential(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	paths := []string{
		"//v1/users/alice/providers",
		"/x/../v1/users/alice/providers",
		"/./v1/users/alice/providers",
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			r := inst.forT(t).send(rawRequest{method: "GET", path: p})
			if r.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without credential = %d (Location %q), want 401", p, r.StatusCode, r.Header.Get("Location"))
			}
		})
	}
}
