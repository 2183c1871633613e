package api_test

// Per-caller scopes end to end: the route × credential × scope matrix over
// every /v1 route on the wired server and a real database, and the
// provider list's filter.

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/client"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
)

// The scoped callers of startScoped: a worker limited to GitLab, a service
// limited to the users tenant-a/..., each holding every permission.
const (
	callerGitLab  = "scope-gitlab"
	callerTenantA = "scope-tenant-a"
)

func startScoped(t *testing.T) *instance {
	t.Helper()
	return startWith(t, servicetest.Options{Scoped: map[string]httpapi.Scope{
		callerGitLab:  {Providers: []domain.Provider{domain.ProviderGitLab}},
		callerTenantA: {UserPrefix: "tenant-a/"},
	}})
}

// stored is what a user has before a request: tokens for gitlab and github
// and an offline token, each a fresh value.
type stored struct{ gitlab, github, offline string }

func (inst *instance) seed(user string) stored {
	inst.t.Helper()
	s := stored{uniq("scope-gl-"), uniq("scope-gh-"), uniq("scope-off-")}
	c, ctx := inst.api(callerAll), context.Background()
	for provider, token := range map[string]string{"gitlab": s.gitlab, "github": s.github} {
		if _, err := c.PutTokens(ctx, user, provider, client.PutTokensRequest{AccessToken: token}); err != nil {
			inst.t.Fatal(err)
		}
	}
	if _, err := c.PutOfflineToken(ctx, user, s.offline); err != nil {
		inst.t.Fatal(err)
	}
	return s
}

// unchanged fails t unless user's tokens are still s.
func (inst *instance) unchanged(user string, s stored) {
	inst.t.Helper()
	c, ctx := inst.api(callerAll), context.Background()
	for provider, want := range map[string]string{"gitlab": s.gitlab, "github": s.github} {
		if got, err := c.GetAccessToken(ctx, user, provider); err != nil || got.AccessToken != want {
			inst.t.Errorf("%s token of %s changed by a refused request (%v)", provider, user, err)
		}
	}
	if got, err := c.GetOfflineToken(ctx, user); err != nil || got.OfflineToken != s.offline {
		inst.t.Errorf("offline token of %s changed by a refused request (%v)", user, err)
	}
}

// TestAuthMatrixScopes: every /v1 route, as each scoped caller, for users
// and providers in and out of its scope. In scope, the route answers as for
// an unlimited caller; out of scope it is 403 out_of_scope naming the path
// value, and the stored tokens are as they were (nothing written or
// deleted). Every exchange is checked against openapi.yaml.
func TestAuthMatrixScopes(t *testing.T) {
	t.Parallel()
	inst := startScoped(t)
	const ok, outUser, outProvider = "", "user", "provider"
	targets := []struct {
		tenant, provider string
		want             map[string]string // on a route naming a user and a provider, by caller
	}{
		{"tenant-a/", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: ok}},
		{"tenant-a/", "github", map[string]string{callerAll: ok, callerGitLab: outProvider, callerTenantA: ok}},
		{"tenant-b/", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: outUser}},
		{"tenant-b/", "github", map[string]string{callerAll: ok, callerGitLab: outProvider, callerTenantA: outUser}},
		{"Tenant-A/", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: outUser}},
		{"tenant-a-", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: outUser}},
	}
	for _, rt := range v1Routes(t) {
		key := rt.Method + " " + rt.Path
		hasProvider, hasUser := strings.Contains(rt.Path, "{provider}"), strings.Contains(rt.Path, "{user}")
		body := validBody(t, rt)
		for _, tg := range targets {
			for _, caller := range []string{callerAll, callerGitLab, callerTenantA} {
				want := tg.want[caller]
				if want == outProvider && !hasProvider {
					want = ok // the offline token and the list name no provider
				}
				if want == outUser && !hasUser {
					want = ok // the event feed names neither: it filters by scope
				}
				t.Run(key+" "+tg.tenant+" "+tg.provider+" as "+caller, func(t *testing.T) {
					t.Parallel()
					inst := inst.forT(t)
					user := uniq(tg.tenant)
					before := inst.seed(user)
					path := strings.NewReplacer("{user}", strings.ReplaceAll(user, "/", "%2F"), "{provider}", tg.provider).Replace(rt.Path)
					h := map[string]string{"Authorization": inst.bearer(caller)}
					if body != nil {
						h["Content-Type"] = "application/json"
					}
					r := inst.send(rawRequest{method: rt.Method, path: path, header: h, body: body})
					prov := ""
					if hasProvider {
						prov = tg.provider
					}
					if want == ok {
						if r.StatusCode < 200 || r.StatusCode > 299 {
							t.Errorf("%s %s as %s = %d %s, want 2xx", rt.Method, path, caller, r.StatusCode, r.body)
						} else if routeActions[key] != "list_providers" && routeActions[key] != "read_events" { // reads of no token material: successes unrecorded
							inst.wantAuditEvent(t, r, caller, routeActions[key], user, prov)
						}
						return
					}
					p := wantProblem(t, r, http.StatusForbidden, httpapi.CodeOutOfScope, want)
					inst.wantAuditEvent(t, r, caller, routeActions[key], user, prov)
					if !strings.HasPrefix(p.Detail, `caller "`+caller+`" may touch only `) {
						t.Errorf("detail %q does not say what the caller may touch", p.Detail)
					}
					inst.unchanged(user, before)
				})
			}
		}
	}
}

// TestListProvidersShowsOnlyTheScope: the provider list of a caller
// limited to GitLab names GitLab alone; a tenant service lists its own
// users' providers and is refused another tenant's.
func TestListProvidersShowsOnlyTheScope(t *testing.T) {
	t.Parallel()
	inst := startScoped(t)
	user := uniq("tenant-a/")
	for _, provider := range []string{"bitbucket", "github", "gitlab"} {
		wantStatus(t, inst.do("PUT", tokensPath(user, provider), callerAll, map[string]any{"access_token": uniq("at-")}), http.StatusOK)
	}
	names := func(caller, user string) []string {
		t.Helper()
		r := inst.do("GET", providersPath(user), caller, nil)
		wantStatus(t, r, http.StatusOK)
		var body struct {
			Providers []struct {
				Provider string `json:"provider"`
			} `json:"providers"`
		}
		r.json(t, &body)
		var out []string
		for _, p := range body.Providers {
			out = append(out, p.Provider)
		}
		return out
	}
	if got := names(callerAll, user); !slices.Equal(got, []string{"bitbucket", "github", "gitlab"}) {
		t.Errorf("unlimited caller lists %v", got)
	}
	if got := names(callerGitLab, user); !slices.Equal(got, []string{"gitlab"}) {
		t.Errorf("GitLab worker lists %v, want [gitlab]", got)
	}
	if got := names(callerTenantA, user); !slices.Equal(got, []string{"bitbucket", "github", "gitlab"}) {
		t.Errorf("tenant-a service lists %v for its own user", got)
	}
	other := uniq("tenant-b/")
	wantStatus(t, inst.do("PUT", tokensPath(other, "gitlab"), callerAll, map[string]any{"access_token": uniq("at-")}), http.StatusOK)
	wantProblem(t, inst.do("GET", providersPath(other), callerTenantA, nil), http.StatusForbidden, httpapi.CodeOutOfScope, "user")
	// A user without tokens: an empty list, as for any caller.
	if got := names(callerGitLab, uniq("nobody-")); len(got) != 0 {
		t.Errorf("a user without tokens lists %v", got)
	}
}
