package httpapi_test

// Per-caller scopes: authorize's table, the route × credential × scope
// matrix over every /v1 route, the provider list's filter, and the scope
// members of a callers entry.

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// The scoped callers every setup has: a GitLab worker, a tenant service,
// and a GitLab reader (tokens:read only, to show the permission is checked
// before the scope).
const (
	callerGitLab       = "scope-gitlab"
	callerTenantA      = "scope-tenant-a"
	callerGitLabReader = "scope-gitlab-reader"
)

var scopedCallers = map[string]struct {
	perms []httpapi.Permission
	scope httpapi.Scope
}{
	callerGitLab:       {httpapi.AllPermissions, httpapi.Scope{Providers: []domain.Provider{"gitlab"}}},
	callerTenantA:      {httpapi.AllPermissions, httpapi.Scope{UserPrefix: "tenant-a/"}},
	callerGitLabReader: {[]httpapi.Permission{httpapi.PermTokensRead}, httpapi.Scope{Providers: []domain.Provider{"gitlab"}}},
}

// TestAuthorize is the specification of the one function that authorizes
// a request: permission first, then the user, then the provider.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	caller := func(perms []httpapi.Permission, scope httpapi.Scope) *httpapi.Caller {
		return &httpapi.Caller{Name: "svc", Permissions: perms, Scope: scope}
	}
	all := httpapi.AllPermissions
	read := []httpapi.Permission{httpapi.PermTokensRead}
	gitlab := httpapi.Scope{Providers: []domain.Provider{"gitlab"}}
	two := httpapi.Scope{Providers: []domain.Provider{"gitlab", "github"}}
	tenant := httpapi.Scope{UserPrefix: "tenant-a/"}
	both := httpapi.Scope{Providers: []domain.Provider{"gitlab"}, UserPrefix: "tenant-a/"}
	type target = map[httpapi.ScopeTarget]string
	tests := []struct {
		name   string
		caller *httpapi.Caller
		perm   httpapi.Permission
		target target
		code   string // "" admitted
		field  string
		detail string
	}{
		{"no permission needed", nil, "", target{}, "", "", ""},
		{"no permission needed, even out of scope", caller(nil, both), "", target{"user": "b", "provider": "github"}, "", "", ""},
		{"no caller", nil, httpapi.PermTokensRead, target{}, "forbidden", "", `caller "" lacks the tokens:read permission`},
		{"permission missing", caller(read, httpapi.Scope{}), httpapi.PermTokensWrite, target{"user": "a"}, "forbidden", "", `caller "svc" lacks the tokens:write permission`},
		{"permission missing comes before scope", caller(read, both), httpapi.PermTokensWrite, target{"user": "x", "provider": "github"}, "forbidden", "", ""},
		{"unscoped", caller(all, httpapi.Scope{}), httpapi.PermTokensRead, target{"user": "anyone", "provider": "anything"}, "", "", ""},
		{"provider in scope", caller(all, gitlab), httpapi.PermTokensRead, target{"user": "a", "provider": "gitlab"}, "", "", ""},
		{"provider out of scope", caller(all, gitlab), httpapi.PermTokensRead, target{"user": "a", "provider": "github"},
			"out_of_scope", "provider", `caller "svc" may touch only the providers gitlab`},
		{"second of two providers", caller(all, two), httpapi.PermTokensDelete, target{"user": "a", "provider": "github"}, "", "", ""},
		{"neither of two providers", caller(all, two), httpapi.PermTokensDelete, target{"user": "a", "provider": "bitbucket"},
			"out_of_scope", "provider", `caller "svc" may touch only the providers gitlab, github`},
		{"provider differently cased", caller(all, gitlab), httpapi.PermTokensRead, target{"provider": "GitLab"}, "out_of_scope", "provider", ""},
		{"provider empty", caller(all, gitlab), httpapi.PermTokensRead, target{"provider": ""}, "out_of_scope", "provider", ""},
		{"route names no provider", caller(all, gitlab), httpapi.PermOfflineRead, target{"user": "a"}, "", "", ""},
		{"user in scope", caller(all, tenant), httpapi.PermOfflineWrite, target{"user": "tenant-a/alice"}, "", "", ""},
		{"user is the prefix itself", caller(all, tenant), httpapi.PermOfflineWrite, target{"user": "tenant-a/"}, "", "", ""},
		{"user of another tenant", caller(all, tenant), httpapi.PermOfflineWrite, target{"user": "tenant-b/alice"},
			"out_of_scope", "user", `caller "svc" may touch only users whose id starts with "tenant-a/"`},
		{"user lacks the separator", caller(all, tenant), httpapi.PermTokensRead, target{"user": "tenant-a"}, "out_of_scope", "user", ""},
		{"user shares a longer prefix", caller(all, tenant), httpapi.PermTokensRead, target{"user": "tenant-ab/x"}, "out_of_scope", "user", ""},
		{"user differently cased", caller(all, tenant), httpapi.PermTokensRead, target{"user": "Tenant-A/alice"}, "out_of_scope", "user", ""},
		{"user contains the prefix later", caller(all, tenant), httpapi.PermTokensRead, target{"user": "x/tenant-a/alice"}, "out_of_scope", "user", ""},
		{"user with dot segments after the prefix", caller(all, tenant), httpapi.PermTokensRead, target{"user": "tenant-a/../tenant-b/x"}, "", "", ""},
		{"user empty", caller(all, tenant), httpapi.PermTokensRead, target{"user": ""}, "out_of_scope", "user", ""},
		{"route names no user", caller(all, tenant), httpapi.PermTokensRead, target{}, "", "", ""},
		{"user checked before provider", caller(all, both), httpapi.PermTokensRead, target{"user": "tenant-b/x", "provider": "github"}, "out_of_scope", "user", ""},
		{"both in scope", caller(all, both), httpapi.PermTokensRead, target{"user": "tenant-a/x", "provider": "gitlab"}, "", "", ""},
		{"user in, provider out", caller(all, both), httpapi.PermTokensRead, target{"user": "tenant-a/x", "provider": "github"}, "out_of_scope", "provider", ""},
	}
	for _, tc := range tests {
		err := httpapi.Authorize(tc.caller, tc.perm, tc.target)
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: %v, want admitted", tc.name, err)
			}
			continue
		}
		p, ok := err.(*httpapi.Problem)
		if !ok {
			t.Errorf("%s: %v, want a %s problem", tc.name, err, tc.code)
			continue
		}
		if p.Status != http.StatusForbidden || p.Code != tc.code || p.Field != tc.field || tc.detail != "" && p.Detail != tc.detail {
			t.Errorf("%s: %d %s field %q detail %q; want 403 %s field %q detail %q", tc.name, p.Status, p.Code, p.Field, p.Detail, tc.code, tc.field, tc.detail)
		}
	}
}

// TestAuthMatrixScopes is the matrix's scope dimension: every /v1 route,
// as each scoped caller, for users and providers in and out of its scope.
// A refusal is 403 out_of_scope naming the path value, and the service is
// not asked (nothing read, nothing written); an admitted request is
// answered by its handler.
func TestAuthMatrixScopes(t *testing.T) {
	t.Parallel()
	const ok, outUser, outProvider = "", "user", "provider"
	// want gives the outcome on a route naming both a user and a provider,
	// by caller; a route without {provider} admits what only the provider
	// would refuse.
	targets := []struct {
		user, provider string
		want           map[string]string
	}{
		{"tenant-a/alice", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: ok}},
		{"tenant-a/alice", "github", map[string]string{callerAll: ok, callerGitLab: outProvider, callerTenantA: ok}},
		{"tenant-b/alice", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: outUser}},
		{"tenant-b/alice", "bitbucket", map[string]string{callerAll: ok, callerGitLab: outProvider, callerTenantA: outUser}},
		{"tenant-a", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: outUser}},
		{"Tenant-A/alice", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: outUser}},
		{"tenant-a/../tenant-b", "gitlab", map[string]string{callerAll: ok, callerGitLab: ok, callerTenantA: ok}}, // an opaque id, not a path
	}
	for _, rt := range v1Routes(t) {
		key := rt.Method + " " + rt.Path
		hasProvider, hasUser := strings.Contains(rt.Path, "{provider}"), strings.Contains(rt.Path, "{user}")
		body := validBody(t, rt)
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			for _, tg := range targets {
				path := strings.NewReplacer("{user}", url.PathEscape(tg.user), "{provider}", tg.provider).Replace(rt.Path)
				for _, caller := range []string{callerAll, callerGitLab, callerTenantA} {
					want := tg.want[caller]
					if want == outProvider && !hasProvider || want == outUser && !hasUser {
						want = ok // a route naming neither (the event feed) filters by scope instead
					}
					a := setup(t)
					rec := a.do(rt.Method, path, caller, body)
					if want == ok {
						if rec.Code < 200 || rec.Code > 299 || len(a.svc.calls) != 1 {
							t.Errorf("%s %s as %s: %d %s, service calls %v; want 2xx and one call", rt.Method, path, caller, rec.Code, rec.Body, a.svc.calls)
						}
						a.wantUnserved(rec) // a success is the service's to record
						continue
					}
					p := wantProblem(t, rec, http.StatusForbidden, httpapi.CodeOutOfScope, want)
					prov := ""
					if hasProvider {
						prov = tg.provider
					}
					a.wantUnserved(rec, fmt.Sprintf("%s %s %s 403 out_of_scope %s", routeActions[key], tg.user, prov, caller))
					if !strings.HasPrefix(p.Detail, `caller "`+caller+`" may touch only `) {
						t.Errorf("%s %s as %s: detail %q does not say what the caller may touch", rt.Method, path, caller, p.Detail)
					}
					if len(a.svc.calls) != 0 {
						t.Errorf("%s %s as %s: an out-of-scope request reached the service: %v", rt.Method, path, caller, a.svc.calls)
					}
				}
			}
			// A scoped caller lacking the route's permission is refused for
			// the permission, in scope or not.
			if routePermissions[key] != httpapi.PermTokensRead {
				for _, provider := range []string{"gitlab", "github"} {
					a := setup(t)
					path := strings.NewReplacer("{user}", "u", "{provider}", provider).Replace(rt.Path)
					rec := a.do(rt.Method, path, callerGitLabReader, body)
					wantProblem(t, rec, http.StatusForbidden, httpapi.CodeForbidden, "")
					prov := ""
					if hasProvider {
						prov = provider
					}
					user := ""
					if hasUser {
						user = "u"
					}
					a.wantUnserved(rec, fmt.Sprintf("%s %s %s 403 forbidden %s", routeActions[key], user, prov, callerGitLabReader))
				}
			}
		})
	}
}

// TestScopeComesBeforeTheBody: an out-of-scope PUT is refused whatever its
// body, so a caller learns nothing about what it may not touch.
func TestScopeComesBeforeTheBody(t *testing.T) {
	t.Parallel()
	a := setup(t)
	for _, body := range []string{`{"access_token":""}`, `not json`, `{"bogus":1}`} {
		wantProblem(t, a.do("PUT", tokensPath("u", "github"), callerGitLab, body), http.StatusForbidden, httpapi.CodeOutOfScope, "provider")
		wantProblem(t, a.do("PUT", offlinePath("tenant-b%2Fu"), callerTenantA, body), http.StatusForbidden, httpapi.CodeOutOfScope, "user")
	}
	// In scope, the body is judged as usual.
	wantProblem(t, a.do("PUT", tokensPath("u", "gitlab"), callerGitLab, `{"bogus":1}`), http.StatusBadRequest, "invalid_request", "bogus")
	if len(a.svc.calls) != 0 {
		t.Errorf("service calls %v, want none", a.svc.calls)
	}
}

// TestListProvidersShowsOnlyTheScope: the provider list names only the
// providers the caller may touch; a user outside its scope is 403.
func TestListProvidersShowsOnlyTheScope(t *testing.T) {
	t.Parallel()
	a := setup(t)
	stored := []app.ProviderStatus{
		{Provider: "bitbucket", State: domain.StateValid, AccessExpiry: domain.Never(), RefreshExpiry: domain.Never()},
		{Provider: "github", State: domain.StateValid, AccessExpiry: domain.Never(), RefreshExpiry: domain.Never()},
		{Provider: "gitlab", State: domain.StateValid, AccessExpiry: domain.Never(), RefreshExpiry: domain.Never()},
	}
	a.svc.list = slices.Clone(stored)
	names := func(caller, user string) []string {
		t.Helper()
		rec := a.do("GET", providersPath(user), caller, nil)
		wantStatus(t, rec, http.StatusOK)
		var body struct {
			Providers []struct {
				Provider string `json:"provider"`
			} `json:"providers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range body.Providers {
			out = append(out, p.Provider)
		}
		return out
	}
	for _, tc := range []struct {
		caller, user string
		want         []string
	}{
		{callerAll, "alice", []string{"bitbucket", "github", "gitlab"}},
		{callerGitLab, "alice", []string{"gitlab"}},
		{callerGitLabReader, "alice", []string{"gitlab"}},
		{callerTenantA, "tenant-a%2Falice", []string{"bitbucket", "github", "gitlab"}},
	} {
		if got := names(tc.caller, tc.user); !slices.Equal(got, tc.want) {
			t.Errorf("%s lists %v, want %v", tc.caller, got, tc.want)
		}
	}
	if !slices.EqualFunc(a.svc.list, stored, func(x, y app.ProviderStatus) bool { return x.Provider == y.Provider }) {
		t.Errorf("the filter changed the service's answer: %v", a.svc.list)
	}
	// Nothing in scope: an empty list, not 404.
	a.svc.list = stored[:2]
	if got := names(callerGitLab, "alice"); len(got) != 0 {
		t.Errorf("nothing in scope lists %v", got)
	}
	calls := len(a.svc.calls)
	wantProblem(t, a.do("GET", providersPath("tenant-b%2Falice"), callerTenantA, nil), http.StatusForbidden, httpapi.CodeOutOfScope, "user")
	if len(a.svc.calls) != calls {
		t.Errorf("an out-of-scope list reached the service: %v", a.svc.calls[calls:])
	}
}

// TestCallerConfigScope: the scope members of a callers entry, as the
// loader validates them; errors name the member and the caller.
func TestCallerConfigScope(t *testing.T) {
	t.Parallel()
	_, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	entry := func(providers []string, prefix string) httpapi.CallerConfig {
		return httpapi.CallerConfig{Name: "svc", CredentialHash: hash, Permissions: []string{"tokens:read"}, Providers: providers, UserPrefix: prefix}
	}
	for _, tc := range []struct {
		name  string
		entry httpapi.CallerConfig
		want  httpapi.Scope
		err   string
	}{
		{"none", entry(nil, ""), httpapi.Scope{}, ""},
		{"providers", entry([]string{"gitlab", "github"}, ""), httpapi.Scope{Providers: []domain.Provider{"gitlab", "github"}}, ""},
		{"prefix", entry(nil, "tenant-a/"), httpapi.Scope{UserPrefix: "tenant-a/"}, ""},
		{"empty list", entry([]string{}, ""), httpapi.Scope{},
			`providers (caller "svc"): list at least one provider, or leave providers out to allow every provider`},
		{"bad name", entry([]string{"Git Lab"}, ""), httpapi.Scope{}, `providers (caller "svc"): "Git Lab" is not a provider name`},
		{"twice", entry([]string{"gitlab", "gitlab"}, ""), httpapi.Scope{}, `providers (caller "svc"): "gitlab" is listed twice: keep one`},
		{"prefix with a line feed", entry(nil, "a\nb"), httpapi.Scope{}, `user_prefix (caller "svc"): must not contain control`},
		{"prefix invalid UTF-8", entry(nil, "a\xff"), httpapi.Scope{}, `user_prefix (caller "svc"): must be valid UTF-8`},
		{"prefix a dot-segment", entry(nil, ".."), httpapi.Scope{}, `user_prefix (caller "svc"): must not be a dot-segment`},
	} {
		c, err := tc.entry.Caller()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		case tc.err == "" && !slices.Equal(c.Scope.Providers, tc.want.Providers) || c.Scope.UserPrefix != tc.want.UserPrefix:
			t.Errorf("%s: scope %+v, want %+v", tc.name, c.Scope, tc.want)
		}
	}
}

// TestValidateScopes: a scope may name only declared providers.
func TestValidateScopes(t *testing.T) {
	t.Parallel()
	callers := []httpapi.Caller{{Name: "all"}, {Name: "reader", Scope: httpapi.Scope{Providers: []domain.Provider{"gitlab", "gitlub"}}}}
	if err := httpapi.ValidateScopes(callers[:1], nil); err != nil {
		t.Errorf("an unscoped caller with no provider declared: %v", err)
	}
	if err := httpapi.ValidateScopes(callers, []domain.Provider{"gitlab", "gitlub"}); err != nil {
		t.Errorf("declared: %v", err)
	}
	err := httpapi.ValidateScopes(callers, []domain.Provider{"github", "gitlab"})
	want := `callers (TOKENSTORE_CALLERS): caller "reader" may touch provider "gitlub", which is not declared (declared: github, gitlab); ` +
		"declare it in providers (TOKENSTORE_PROVIDERS) or fix the name"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestProblemCodesDocumented: every problem code the server can answer
// (problem.go's Code constants) is in openapi.yaml's Problem.code enum, in
// its table of codes, and in the README's, so a new code (out_of_scope)
// cannot be answered before it is documented.
func TestProblemCodesDocumented(t *testing.T) {
	t.Parallel()
	file, err := parser.ParseFile(token.NewFileSet(), "problem.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && strings.HasPrefix(name.Name, "Code") && lit.Kind == token.STRING {
					code, _ := strconv.Unquote(lit.Value)
					codes = append(codes, code)
				}
			}
		}
	}
	if !slices.Contains(codes, httpapi.CodeOutOfScope) {
		t.Fatalf("found codes %v, not out_of_scope: the parse is wrong", codes)
	}
	doc := loadOpenAPI(t)
	var enum []string
	for _, v := range doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum {
		enum = append(enum, v.(string))
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range codes {
		if !slices.Contains(enum, code) {
			t.Errorf("code %s is not in openapi.yaml's Problem.code enum", code)
		}
		if !strings.Contains(doc.Info.Description, "| `"+code+"`") {
			t.Errorf("code %s is not in openapi.yaml's table of problem codes", code)
		}
		if !strings.Contains(string(readme), "| `"+code+"` |") {
			t.Errorf("code %s is not in the README's table of errors", code)
		}
	}
}

// TestRoutesDeclareScopeTargets: every path parameter of every route says
// whether, and as what, a caller's scope limits it, so a route with a new
// parameter cannot be added without that decision; the check itself
// refuses each way of getting the declaration wrong.
func TestRoutesDeclareScopeTargets(t *testing.T) {
	t.Parallel()
	for _, r := range httpapi.Routes() {
		if err := httpapi.CheckParams(r); err != nil {
			t.Error(err)
		}
		// The scope matrix above relies on the names it substitutes.
		for name, target := range r.Params {
			if string(target) != name {
				t.Errorf("%s %s: {%s} is a %s; TestAuthMatrixScopes only knows {user} and {provider}", r.Method, r.Path, name, target)
			}
		}
	}
	user := httpapi.ScopeUser
	for _, tc := range []struct {
		name  string
		route httpapi.Route
		err   string // "": accepted
	}{
		{"no parameter", httpapi.Route{Method: "GET", Path: "/healthz"}, ""},
		{"declared", httpapi.Route{Method: "GET", Path: "/v1/users/{user}/keys/{key}", Params: map[string]httpapi.ScopeTarget{"user": user, "key": httpapi.ScopeNone}}, ""},
		{"end anchor", httpapi.Route{Method: "GET", Path: "/v1/users/{user}/{$}", Params: map[string]httpapi.ScopeTarget{"user": user}}, ""},
		{"undeclared", httpapi.Route{Method: "GET", Path: "/v1/tenants/{tenant}/users/{user}", Params: map[string]httpapi.ScopeTarget{"user": user}},
			"route GET /v1/tenants/{tenant}/users/{user}: path parameter {tenant} has no scope target"},
		{"undeclared wildcard", httpapi.Route{Method: "GET", Path: "/v1/files/{rest...}"}, "path parameter {rest} has no scope target"},
		{"declared but absent", httpapi.Route{Method: "GET", Path: "/v1/users/{user}", Params: map[string]httpapi.ScopeTarget{"user": user, "provider": httpapi.ScopeProvider}},
			"Params declares {provider}, which the path does not have"},
		{"unknown target", httpapi.Route{Method: "GET", Path: "/v1/users/{user}", Params: map[string]httpapi.ScopeTarget{"user": "tenant"}}, `unknown scope target "tenant"`},
		{"two users", httpapi.Route{Method: "POST", Path: "/v1/users/{from}/copy/{to}", Params: map[string]httpapi.ScopeTarget{"from": user, "to": user}},
			"{from} and {to} both name a user"},
	} {
		err := httpapi.CheckParams(tc.route)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

// routeActions is the audit action of each /v1 route.
var routeActions = httpapi.RouteAuditActions

// wantUnserved fails the test unless the requests reported to the audit
// trail as unserved are want (each "action user provider status code
// caller"), all with rec's request id.
func (a *apiTest) wantUnserved(rec *httptest.ResponseRecorder, want ...string) {
	a.t.Helper()
	id := rec.Header().Get("X-Request-Id")
	for i := range want {
		want[i] += " " + id
	}
	if !slices.Equal(a.svc.unserved, want) {
		a.t.Errorf("unserved requests recorded:\n got %q\nwant %q", a.svc.unserved, want)
	}
}

// TestFailedRequestsAreRecorded: every /v1 route whose request fails in
// the service (404, 409, 503...) or in its request checks (400) reports
// itself to the audit trail with the status and code it answered, the
// caller and the request id; a success reports nothing (the service
// records it).
func TestFailedRequestsAreRecorded(t *testing.T) {
	t.Parallel()
	failures := []struct {
		err    error
		status int
		code   string
	}{
		{domain.ErrNotFound, 404, "not_found"},
		{fmt.Errorf("gitlab tokens (invalid_grant): %w", domain.ErrReauthRequired), 409, "reauth_required"},
		{domain.ErrTokenExpired, 409, "token_expired"},
		{domain.ErrConflict, 409, "conflict"},
		{fmt.Errorf("%w: down", domain.ErrStorageUnavailable), 503, "unavailable"},
		{fmt.Errorf("%w: %w: refused", domain.ErrStorageUnavailable, domain.ErrAuditUnavailable), 503, "unavailable"},
		{&domain.RetryAtError{At: time.Now().Add(time.Minute), Err: domain.ErrUnavailable}, 503, "unavailable"},
		{domain.ErrBusy, 503, "unavailable"},
		{fmt.Errorf("%w: bad key", domain.ErrDecrypt), 500, "integrity_error"},
	}
	for _, rt := range v1Routes(t) {
		key := rt.Method + " " + rt.Path
		path := concretePath(t, rt.Path)
		body := validBody(t, rt)
		prov, user := "", ""
		if strings.Contains(rt.Path, "{provider}") {
			prov = "gitlab"
		}
		if strings.Contains(rt.Path, "{user}") {
			user = "matrix-user"
		}
		for _, f := range failures {
			a := setup(t)
			a.svc.err = f.err
			rec := a.do(rt.Method, path, callerAll, body)
			wantProblem(t, rec, f.status, f.code, "")
			a.wantUnserved(rec, fmt.Sprintf("%s %s %s %d %s %s", routeActions[key], user, prov, f.status, f.code, callerAll))
		}
		// A request check's refusal, before the service.
		a := setup(t)
		rec := a.do(rt.Method, path+"?x=1", callerAll, body)
		wantProblem(t, rec, 400, "invalid_request", "x")
		a.wantUnserved(rec, fmt.Sprintf("%s %s %s 400 invalid_request %s", routeActions[key], user, prov, callerAll))
		// A success is not reported here.
		a = setup(t)
		rec = a.do(rt.Method, path, callerAll, body)
		if rec.Code >= 300 {
			t.Errorf("%s: %d %s", key, rec.Code, rec.Body)
		}
		a.wantUnserved(rec)
	}
	// A refused credential: action authenticate, no caller, no user.
	a := setup(t)
	rec := a.do("GET", tokensPath("matrix-user", "gitlab"), "", nil)
	wantProblem(t, rec, 401, "unauthenticated", "")
	a.wantUnserved(rec, "authenticate   401 unauthenticated ")
}
