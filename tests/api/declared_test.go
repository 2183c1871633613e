package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
)

// startWith is setup with options: an instance of its own cluster.
func startWith(t *testing.T, o servicetest.Options) *instance {
	t.Helper()
	c := servicetest.Start(t, o)
	in := c.Instances[0]
	return &instance{
		t: t, base: in.URL, creds: c.Credentials, pool: c.DB, logs: in.Logs, app: in,
		keyring: c.Keyring, client: &http.Client{Timeout: 30 * time.Second}, cluster: c,
	}
}

func (inst *instance) authRows(t *testing.T) (n int) {
	t.Helper()
	if err := inst.pool.QueryRow(context.Background(), "SELECT count(*) FROM auth_tokens").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPutForUndeclaredProviderIsRefused: with no providers configured,
// `PUT /v1/users/alice/providers/foo/tokens` answered 200, and a typo
// stored tokens nobody would refresh. Now it is 400 invalid_request for
// field provider, listing the declared names, and nothing is written.
func TestPutForUndeclaredProviderIsRefused(t *testing.T) {
	t.Parallel()
	const secret = "gho_undeclaredsecret42"
	declared := startWith(t, servicetest.Options{Configure: func(cfg *cli.Config) {
		cfg.App.Providers = []domain.Provider{"github", "gitlab"}
	}})
	none := startWith(t, servicetest.Options{Configure: func(cfg *cli.Config) { cfg.App.Providers = []domain.Provider{} }})
	for _, tc := range []struct {
		name     string
		inst     *instance
		provider string
		detail   []string
	}{
		{"typo", declared, "gitlub", []string{`"gitlub" is not a declared provider (declared: github, gitlab)`, "refresh: false"}},
		{"foo", declared, "foo", []string{`"foo" is not a declared provider`}},
		{"no provider declared", none, "foo", []string{`"foo" is not declared, and no provider is`, "providers setting"}},
		{"no provider declared, well-known name", none, "github", []string{`"github" is not declared, and no provider is`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			inst := tc.inst.forT(t)
			r := inst.do("PUT", tokensPath("alice-"+tc.name, tc.provider), callerAll, map[string]any{"access_token": secret})
			p := wantProblem(t, r, http.StatusBadRequest, "invalid_request", "provider")
			for _, w := range tc.detail {
				if !strings.Contains(p.Detail, w) {
					t.Errorf("detail %q does not say %q", p.Detail, w)
				}
			}
			notIn(t, "the problem", string(r.body), secret)
			wantStatus(t, inst.do("GET", tokensPath("alice-"+tc.name, tc.provider), callerAll, nil), http.StatusNotFound)
		})
	}
	t.Cleanup(func() { // after the parallel subtests
		if n := declared.authRows(t) + none.authRows(t); n != 1 {
			t.Errorf("%d rows stored, want bob's only: refused PUTs wrote", n)
		}
	})
	// A declared name is stored as before.
	wantStatus(t, declared.do("PUT", tokensPath("bob", "gitlab"), callerAll, map[string]any{"access_token": "at"}), http.StatusOK)
}

// TestUndeclaredProviderRowsStayReachable: tokens stored while a provider
// was declared are still the user's after it leaves the configuration:
// readable, listed and deletable; only storing new ones is refused.
func TestUndeclaredProviderRowsStayReachable(t *testing.T) {
	t.Parallel()
	before := startWith(t, servicetest.Options{Configure: func(cfg *cli.Config) {
		cfg.App.Providers = append(cli.DevProviders(), "corp")
	}})
	wantStatus(t, before.do("PUT", tokensPath("alice", "corp"), callerAll, map[string]any{"access_token": "corp-at"}), http.StatusOK)

	after := startWith(t, servicetest.Options{DSN: before.cluster.DSN, Keys: before.cluster.Keys}) // corp no longer declared
	r := after.do("GET", tokensPath("alice", "corp"), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	var got struct {
		AccessToken string `json:"access_token"`
	}
	r.json(t, &got)
	if got.AccessToken != "corp-at" {
		t.Errorf("GET = %q, want the stored token", got.AccessToken)
	}
	var list struct {
		Providers []struct{ Provider string } `json:"providers"`
	}
	after.do("GET", providersPath("alice"), callerAll, nil).json(t, &list)
	if !slices.ContainsFunc(list.Providers, func(p struct{ Provider string }) bool { return p.Provider == "corp" }) {
		t.Errorf("the provider list lacks corp: %+v", list)
	}
	wantProblem(t, after.do("PUT", tokensPath("alice", "corp"), callerAll, map[string]any{"access_token": "new"}),
		http.StatusBadRequest, "invalid_request", "provider")
	wantStatus(t, after.do("DELETE", tokensPath("alice", "corp"), callerAll, nil), http.StatusNoContent)
	wantStatus(t, after.do("GET", tokensPath("alice", "corp"), callerAll, nil), http.StatusNotFound)
}
