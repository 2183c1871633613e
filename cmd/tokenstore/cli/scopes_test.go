package cli_test

// Per-caller scopes in the configuration: the providers and user_prefix
// members of a callers entry, in the file and in TOKENSTORE_CALLERS, read
// strictly and checked against the declared providers; and
// `callers generate`, which prints them.

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
)

// TestLoadCallerScopes: both scope members load from the file and from the
// variable; left out, the caller is unlimited.
func TestLoadCallerScopes(t *testing.T) {
	t.Parallel()
	_, hash, _ := httpapi.NewCredential()
	_, hash2, _ := httpapi.NewCredential()
	file := "callers:\n" +
		"  - name: gitlab-reader\n    credential_hash: " + hash + "\n    permissions: [tokens:read]\n    providers: [gitlab]\n" +
		"  - name: tenant-a\n    credential_hash: " + hash2 + "\n    permissions: [tokens:read, tokens:write]\n    user_prefix: tenant-a/\n"
	env := `[{"name":"gitlab-reader","credential_hash":"` + hash + `","permissions":["tokens:read"],"providers":["gitlab"]},` +
		`{"name":"tenant-a","credential_hash":"` + hash2 + `","permissions":["tokens:read","tokens:write"],"user_prefix":"tenant-a/"}]`
	want := []httpapi.Scope{{Providers: []domain.Provider{"gitlab"}}, {UserPrefix: "tenant-a/"}}
	for name, load := range map[string]func() (cli.Config, error){
		"file": func() (cli.Config, error) { return cli.Load(writeFile(t, "t.yaml", file, 0o600), false, envOf(nil)) },
		"variable": func() (cli.Config, error) {
			return cli.Load("", false, envOf(map[string]string{"TOKENSTORE_CALLERS": env}))
		},
	} {
		cfg, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(cfg.Callers) != 2 || !reflect.DeepEqual(cfg.Callers[0].Scope, want[0]) || !reflect.DeepEqual(cfg.Callers[1].Scope, want[1]) {
			t.Errorf("%s: callers %+v, want scopes %+v", name, cfg.Callers, want)
		}
	}
	value, _ := callersJSON(t, "svc")
	cfg, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_CALLERS": value}))
	if err != nil || !reflect.DeepEqual(cfg.Callers[0].Scope, httpapi.Scope{}) {
		t.Errorf("an entry without scope members loads as %+v, %v; want no limit", cfg.Callers, err)
	}
}

// TestLoadCallerScopesInvalid: a scope member means one thing or stops
// start-up naming the setting, the entry, the member and the caller.
func TestLoadCallerScopesInvalid(t *testing.T) {
	t.Parallel()
	_, hash, _ := httpapi.NewCredential()
	entry := `"name":"svc","credential_hash":"` + hash + `","permissions":["tokens:read"]`
	for _, tc := range []struct {
		name, value string
		want        []string
	}{
		{"providers twice", `[{` + entry + `,"providers":["gitlab"],"providers":["github"]}]`,
			[]string{"TOKENSTORE_CALLERS[0].providers: given twice"}},
		{"user_prefix twice", `[{` + entry + `,"user_prefix":"a/","user_prefix":"b/"}]`,
			[]string{"TOKENSTORE_CALLERS[0].user_prefix: given twice"}},
		{"case-folded member", `[{` + entry + `,"Providers":["gitlab"]}]`,
			[]string{`TOKENSTORE_CALLERS[0].Providers: unknown member "Providers" (did you mean providers?)`}},
		{"misspelt member", `[{` + entry + `,"user_prefx":"a/"}]`,
			[]string{`TOKENSTORE_CALLERS[0].user_prefx: unknown member "user_prefx" (did you mean user_prefix?)`}},
		{"providers not a list", `[{` + entry + `,"providers":"gitlab"}]`,
			[]string{"TOKENSTORE_CALLERS[0].providers: must be a list of strings"}},
		{"user_prefix not a string", `[{` + entry + `,"user_prefix":["a/"]}]`,
			[]string{"TOKENSTORE_CALLERS[0].user_prefix: must be a string"}},
		{"empty providers", `[{` + entry + `,"providers":[]}]`,
			[]string{`TOKENSTORE_CALLERS[0].providers (caller "svc")`, "list at least one provider", "leave providers out"}},
		{"provider name", `[{` + entry + `,"providers":["GitLab"]}]`,
			[]string{`TOKENSTORE_CALLERS[0].providers (caller "svc")`, `"GitLab" is not a provider name`}},
		{"provider twice", `[{` + entry + `,"providers":["gitlab","gitlab"]}]`,
			[]string{`TOKENSTORE_CALLERS[0].providers (caller "svc")`, `"gitlab" is listed twice`}},
		{"user_prefix control character", `[{` + entry + `,"user_prefix":"a\u0000/"}]`,
			[]string{`TOKENSTORE_CALLERS[0].user_prefix (caller "svc")`, "control"}},
		{"user_prefix white space", `[{` + entry + `,"user_prefix":" tenant-a/"}]`,
			[]string{`TOKENSTORE_CALLERS[0].user_prefix (caller "svc")`, "white space"}},
		{"user_prefix too long", `[{` + entry + `,"user_prefix":"` + strings.Repeat("u", 256) + `"}]`,
			[]string{`TOKENSTORE_CALLERS[0].user_prefix (caller "svc")`, "the limit is 255"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_CALLERS": tc.value}))
			wantErr(t, err, tc.want...)
			if err != nil {
				wantOperatorWords(t, err)
			}
		})
	}
	// The file's lists go through the same decoder.
	file := "callers:\n  - name: svc\n    credential_hash: " + hash + "\n    permissions: [tokens:read]\n    providers: []\n"
	_, err := cli.Load(writeFile(t, "t.yaml", file, 0o600), false, envOf(nil))
	wantErr(t, err, `callers[0].providers (caller "svc")`, "list at least one provider")
}

// TestValidateScopeProvidersDeclared: a provider in a caller's scope must
// be declared; the error names the caller and the provider.
func TestValidateScopeProvidersDeclared(t *testing.T) {
	t.Parallel()
	scoped := func(providers ...domain.Provider) func(*cli.Config) {
		return func(c *cli.Config) {
			c.OAuth.Providers = []oauth.ProviderConfig{{Name: "gitlab", StoreOnly: true}, {Name: "github", StoreOnly: true}}
			c.App.Providers = c.OAuth.Names()
			_, reader := newCaller(t, "gitlab-reader", httpapi.PermTokensRead)
			reader.Scope.Providers = providers
			c.Callers = append(c.Callers, reader)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*cli.Config)
		want   []string // nil: valid
	}{
		{"declared", scoped("gitlab"), nil},
		{"all declared", scoped("github", "gitlab"), nil},
		{"misspelt", scoped("gitlub"), []string{`caller "gitlab-reader"`, `"gitlub"`, "not declared", "declared: gitlab, github", "TOKENSTORE_PROVIDERS"}},
		{"one of two undeclared", scoped("gitlab", "bitbucket"), []string{`caller "gitlab-reader"`, `"bitbucket"`}},
		{"none declared", func(c *cli.Config) {
			scoped("gitlab")(c)
			c.OAuth.Providers, c.App.Providers = nil, nil
		}, []string{`caller "gitlab-reader"`, "declared: none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := validConfig(t)
			tc.change(&cfg)
			err := cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantErr(t, err, tc.want...)
		})
	}
}

// TestCallersGenerateCertIdentity: --client-cert-identity reaches the
// printed entry, which loads with that identity.
func TestCallersGenerateCertIdentity(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"spiffe://example.org/ns/jobs/sa/worker", "worker.internal.example.org"} {
		_, _, entry := callersGenerate(t, "generate", "--name", "w", "--client-cert-identity", id)
		callers := loadCallersEntry(t, entry)
		if len(callers) != 1 || callers[0].ClientCertIdentity.String() != id {
			t.Errorf("printed entry loads as %+v, want identity %s\n%s", callers, id, entry)
		}
	}
}

// TestCallersGenerateScopes: the scope flags reach the printed entry, and
// the entry loads into the same scope; a scope the loader would refuse is
// refused before anything is printed.
func TestCallersGenerateScopes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want httpapi.Scope
	}{
		{"gitlab reader", []string{"generate", "--name", "gitlab-reader", "--permissions", "tokens:read", "--providers", "gitlab"},
			httpapi.Scope{Providers: []domain.Provider{"gitlab"}}},
		{"two providers", []string{"generate", "--name", "w", "--providers", "gitlab, github"},
			httpapi.Scope{Providers: []domain.Provider{"gitlab", "github"}}},
		{"tenant", []string{"generate", "--name", "tenant-a", "--user-prefix", "tenant-a/"}, httpapi.Scope{UserPrefix: "tenant-a/"}},
		{"prefix YAML reads specially", []string{"generate", "--name", "t", "--user-prefix", "acme #1: 'x\"/"}, httpapi.Scope{UserPrefix: "acme #1: 'x\"/"}},
		{"both", []string{"generate", "--name", "t", "--providers", "gitlab", "--user-prefix", "tenant-a/"},
			httpapi.Scope{Providers: []domain.Provider{"gitlab"}, UserPrefix: "tenant-a/"}},
		{"none", []string{"generate", "--name", "t"}, httpapi.Scope{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, entry := callersGenerate(t, tc.args...)
			callers := loadCallersEntry(t, entry)
			if len(callers) != 1 || !reflect.DeepEqual(callers[0].Scope, tc.want) {
				t.Errorf("printed entry loads as %+v, want scope %+v\n%s", callers, tc.want, entry)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"empty providers", []string{"--providers", ""}, []string{"providers", "list at least one provider"}},
		{"bad provider", []string{"--providers", "GitLab"}, []string{"providers", `"GitLab" is not a provider name`}},
		{"provider twice", []string{"--providers", "gitlab,gitlab"}, []string{"providers", "listed twice"}},
		{"bad prefix", []string{"--user-prefix", "a\tb"}, []string{"user_prefix", "control"}},
		{"wildcard certificate identity", []string{"--client-cert-identity", "*.example.org"}, []string{"client_cert_identity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := run(t, nil, append([]string{"callers", "generate", "--name", "svc"}, tc.args...)...)
			wantErr(t, err, tc.want...)
			if strings.Contains(out, "credential") {
				t.Errorf("a refused scope still printed a credential:\n%s", out)
			}
		})
	}
}
