package cli_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
)

func TestLoadProviders(t *testing.T) {
	t.Parallel()
	secretFile := writeFile(t, "gitlab-secret", "file-secret\n", 0o600)
	file := writeFile(t, "config.yaml", `
providers:
  - name: gitlab
    kind: gitlab
    client_id: gl-id
    client_secret_file: `+secretFile+`
    base_url: https://gitlab.example.com
    timeout: 7s
    refresh_margin: 1m
  - name: corp-idp
    kind: oauth2
    token_url: https://idp.example.com/token
    client_id: corp
    client_secret_env: CORP_SECRET
    auth_style: header
  - name: github
    never_expires: true
`, 0o600)
	cfg, err := cli.Load(file, false, envOf(map[string]string{"CORP_SECRET": "env-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	ps := cfg.OAuth.Providers
	if len(ps) != 3 {
		t.Fatalf("%d providers, want 3", len(ps))
	}
	if ps[0].Name != "gitlab" || ps[0].ClientSecret.Reveal() != "file-secret" || ps[0].Timeout != 7*time.Second ||
		ps[0].BaseURL != "https://gitlab.example.com" {
		t.Errorf("gitlab = %+v", ps[0])
	}
	if m := cfg.App.ProviderMargins["gitlab"]; m != time.Minute || len(cfg.App.ProviderMargins) != 1 {
		t.Errorf("provider margins = %v, want gitlab: 1m only", cfg.App.ProviderMargins)
	}
	if ps[1].Kind != oauth.KindOAuth2 || ps[1].ClientSecret.Reveal() != "env-secret" || ps[1].TokenEndpointAuthMethod != oauth.AuthMethodClientSecretBasic {
		t.Errorf("corp-idp = %+v", ps[1])
	}
	if !ps[2].NeverExpires {
		t.Errorf("github = %+v, want never_expires", ps[2])
	}

	// The environment's list replaces the file's.
	cfg, err = cli.Load(file, false, envOf(map[string]string{
		"CORP_SECRET":          "env-secret",
		"TOKENSTORE_PROVIDERS": `[{"name":"keycloak","kind":"keycloak","base_url":"https://sso.example.com","realm":"main","client_id":"be"}]`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.OAuth.Providers) != 1 || cfg.OAuth.Providers[0].Realm != "main" {
		t.Errorf("TOKENSTORE_PROVIDERS did not replace the file's providers: %+v", cfg.OAuth.Providers)
	}
}

func TestLoadProvidersInvalid(t *testing.T) {
	t.Parallel()
	const secret = "Sup3rSecretClientValue"
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"bad name", map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"Git Lab","kind":"gitlab","client_id":"x"}]`},
			[]string{"TOKENSTORE_PROVIDERS[0]", "name"}},
		{"unknown field", map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"gitlab","colour":"red"}]`},
			[]string{"TOKENSTORE_PROVIDERS", "colour"}},
		{"two secret sources", map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"gitlab","client_id":"x","client_secret":"` + secret + `","client_secret_env":"X"}]`},
			[]string{"one way"}},
		{"secret env unset", map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"gitlab","client_id":"x","client_secret_env":"MISSING_VAR"}]`},
			[]string{"client_secret_env", "MISSING_VAR"}},
		{"bad timeout", map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"gitlab","client_id":"x","timeout":"soon"}]`},
			[]string{"timeout"}},
		{"bad refresh margin", map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"gitlab","client_id":"x","refresh_margin":"-1m"}]`},
			[]string{"refresh_margin"}},
		{"adapter validation", map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"corp","kind":"oauth2","client_id":"x","client_secret":"` + secret + `"}]`},
			[]string{"token_url"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := cli.Load("", false, envOf(tc.env))
			wantErr(t, err, tc.want...)
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error reveals the client secret: %v", err)
			}
		})
	}
}

// A provider timeout close to the lease would let a slow but successful
// refresh look interrupted, forcing the user to reconnect.
func TestValidateLeaseExceedsProviderTimeouts(t *testing.T) {
	t.Parallel()
	cfg := validConfig(t)
	cfg.OAuth.Providers = []oauth.ProviderConfig{{Name: "gitlab", Kind: oauth.KindGitLab, ClientID: "x", Timeout: 30 * time.Second}}
	cfg.App.Refresh.Lease = 20 * time.Second
	wantErr(t, cfg.Validate(), "TOKENSTORE_REFRESH_LEASE", "gitlab")
	cfg.App.Refresh.Lease = 40 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Errorf("lease 40s, timeout 30s: %v", err)
	}
}

// token_endpoint_auth_method takes RFC 7591's values; the older auth_style
// key and its values header and params still work.
func TestLoadProvidersAuthMethod(t *testing.T) {
	t.Parallel()
	entry := `[{"name":"corp","kind":"oauth2","token_url":"https://idp.example.com/token","client_id":"c",%s}]`
	tests := []struct {
		field string
		want  oauth.AuthMethod
	}{
		{`"token_endpoint_auth_method":"client_secret_post"`, oauth.AuthMethodClientSecretPost},
		{`"token_endpoint_auth_method":"client_secret_basic"`, oauth.AuthMethodClientSecretBasic},
		{`"token_endpoint_auth_method":"header"`, oauth.AuthMethodClientSecretBasic},
		{`"auth_style":"params"`, oauth.AuthMethodClientSecretPost},
		{`"auth_style":"client_secret_basic"`, oauth.AuthMethodClientSecretBasic},
		{`"auth_style":"auto"`, oauth.AuthMethodAuto},
	}
	for _, tc := range tests {
		cfg, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_PROVIDERS": fmt.Sprintf(entry, tc.field)}))
		if err != nil {
			t.Fatalf("%s: %v", tc.field, err)
		}
		if got := cfg.OAuth.Providers[0].TokenEndpointAuthMethod; got != tc.want {
			t.Errorf("%s: method %q, want %q", tc.field, got, tc.want)
		}
	}
	_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_PROVIDERS": fmt.Sprintf(entry, `"token_endpoint_auth_method":"basic"`)}))
	wantErr(t, err, "TOKENSTORE_PROVIDERS[0]", "token_endpoint_auth_method", `"basic"`, "client_secret_basic")
}
