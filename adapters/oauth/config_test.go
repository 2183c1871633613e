package oauth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	secret := domain.NewSecret(clientSecret)
	tests := []struct {
		name string
		cfg  oauth.ProviderConfig
		want string // "" = valid; otherwise the exact message, or a prefix ending in "…"
	}{
		{"github by name", oauth.ProviderConfig{Name: "github", ClientID: "id", ClientSecret: secret}, ""},
		{"gitlab public client", oauth.ProviderConfig{Name: "gitlab", ClientID: "id"}, ""},
		{"azure with tenant", oauth.ProviderConfig{Name: "azure_devops", ClientID: "id", Tenant: "contoso.onmicrosoft.com"}, ""},
		{"azure with token_url instead", oauth.ProviderConfig{Name: "azure_devops", ClientID: "id", TokenURL: "https://login.example/t"}, ""},
		{"keycloak", oauth.ProviderConfig{Name: "keycloak", ClientID: "id", BaseURL: "http://keycloak:8080", Realm: "app"}, ""},
		{"never expires needs no credentials", oauth.ProviderConfig{Name: "github", NeverExpires: true}, ""},
		{"custom name with kind", oauth.ProviderConfig{Name: "gitlab-internal", Kind: oauth.KindGitLab, ClientID: "id", BaseURL: "https://git.example.com"}, ""},

		{"empty name", oauth.ProviderConfig{Kind: oauth.KindGitLab, ClientID: "id"},
			"providers[].name: must not be empty"},
		{"bad name", oauth.ProviderConfig{Name: "Git\nHub", Kind: oauth.KindGitLab, ClientID: "id"},
			`providers["Git\nHub"].name: …`},
		{"no kind", oauth.ProviderConfig{Name: "gitlab-internal", ClientID: "id"},
			"providers[gitlab-internal].kind: must not be empty: use one of github, gitlab, bitbucket, azure_devops, keycloak, oauth2, " +
				"or declare a store-only provider with refresh: false"},
		{"unknown kind", oauth.ProviderConfig{Name: "gitea", Kind: "gitea", ClientID: "id"},
			`providers[gitea].kind: "gitea" is not supported: use one of github, gitlab, bitbucket, azure_devops, keycloak, oauth2`},
		{"no client id", oauth.ProviderConfig{Name: "gitlab", ClientSecret: secret},
			"providers[gitlab].client_id: must not be empty"},
		{"github without secret", oauth.ProviderConfig{Name: "github", ClientID: "id"},
			"providers[github].client_secret: must not be empty: github authenticates every refresh with the client secret"},
		{"bitbucket without secret", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id"},
			"providers[bitbucket].client_secret: must not be empty: bitbucket authenticates every refresh with the client secret"},
		{"bitbucket params", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: secret, TokenEndpointAuthMethod: oauth.AuthMethodClientSecretPost},
			"providers[bitbucket].token_endpoint_auth_method: bitbucket accepts client credentials only as HTTP basic auth: use client_secret_basic or auto"},
		{"unknown auth style", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", TokenEndpointAuthMethod: "basic"},
			`providers[gitlab].token_endpoint_auth_method: "basic" is not supported: use auto, client_secret_basic or client_secret_post`},
		{"oauth2 without token_url", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id"},
			"providers[corp].token_url: must not be empty for kind oauth2"},
		{"token_url relative", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id", TokenURL: "/oauth/token"},
			`providers[corp].token_url: must be an absolute http or https URL, got scheme ""`},
		{"token_url ftp", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id", TokenURL: "ftp://example.com/t"},
			`providers[corp].token_url: must be an absolute http or https URL, got scheme "ftp"`},
		{"token_url with credentials", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id", TokenURL: "https://id:" + clientSecret + "@example.com/t"},
			"providers[corp].token_url: must not contain credentials: use client_id and client_secret"},
		{"token_url unparsable", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id", TokenURL: "https://example.com/%zz" + clientSecret},
			"providers[corp].token_url: is not a valid URL"},
		{"base_url without host", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", BaseURL: "https:///x"},
			"providers[gitlab].base_url: must include a host"},
		{"keycloak without base_url", oauth.ProviderConfig{Name: "keycloak", ClientID: "id", Realm: "app"},
			"providers[keycloak].base_url: must not be empty: set the Keycloak server URL, e.g. https://keycloak.example.com"},
		{"keycloak without realm", oauth.ProviderConfig{Name: "keycloak", ClientID: "id", BaseURL: "https://kc.example.com"},
			"providers[keycloak].realm: must not be empty"},
		{"azure without tenant", oauth.ProviderConfig{Name: "azure_devops", ClientID: "id"},
			`providers[azure_devops].tenant: must not be empty: set the Entra directory (tenant) ID, or "organizations" or "common" for a multi-tenant app (or set token_url)`},
		{"azure bad tenant", oauth.ProviderConfig{Name: "azure_devops", ClientID: "id", Tenant: "x/../y"},
			`providers[azure_devops].tenant: "x/../y" is not a tenant ID or domain: use letters, digits, '.' and '-'`},
		{"realm on gitlab", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", Realm: "app"},
			"providers[gitlab].realm: is used only by kind keycloak"},
		{"tenant on github", oauth.ProviderConfig{Name: "github", ClientID: "id", ClientSecret: secret, Tenant: "common"},
			"providers[github].tenant: is used only by kind azure_devops"},
		{"base_url on bitbucket", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: secret, BaseURL: "https://bitbucket.example.com"},
			"providers[bitbucket].base_url: is not used by kind bitbucket; set token_url to override the endpoint"},
		{"bitbucket client_secret_basic", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: secret, TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic}, ""},
		{"alias header", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: secret, TokenEndpointAuthMethod: "header"}, ""},
		{"alias params", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: secret, TokenEndpointAuthMethod: "params"},
			"providers[bitbucket].token_endpoint_auth_method: bitbucket accepts client credentials only as HTTP basic auth: use client_secret_basic or auto"},
		{"negative timeout", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", Timeout: -time.Second},
			"providers[gitlab].timeout: must not be negative"},

		// Upstream revocation on delete.
		{"revoke gitlab", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", RevokeOnDelete: true}, ""},
		{"revoke github oauth app", oauth.ProviderConfig{Name: "github", NeverExpires: true, ClientID: "id", ClientSecret: secret, RevokeOnDelete: true}, ""},
		{"revoke github oauth app without credentials", oauth.ProviderConfig{Name: "github", NeverExpires: true, RevokeOnDelete: true},
			"providers[github].client_id: must not be empty"},
		{"revoke bitbucket", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: secret, RevokeOnDelete: true},
			"providers[bitbucket].revoke_on_delete: bitbucket has no API to revoke tokens (see the README's revocation table): remove the setting"},
		{"revoke azure devops", oauth.ProviderConfig{Name: "ado", Kind: oauth.KindAzureDevOps, ClientID: "id", Tenant: "common", RevokeOnDelete: true},
			"providers[ado].revoke_on_delete: azure_devops has no API to revoke tokens (see the README's revocation table): remove the setting"},
		{"revoke oauth2 without revocation_url", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id", TokenURL: "https://idp.example.com/t", RevokeOnDelete: true},
			"providers[corp].revocation_url: must not be empty for kind oauth2 with revoke_on_delete: set the RFC 7009 revocation endpoint"},
		{"revoke keycloak by token_url", oauth.ProviderConfig{Name: "keycloak", ClientID: "id", TokenURL: "https://kc.example.com/t", RevokeOnDelete: true},
			"providers[keycloak].revocation_url: must not be empty when token_url replaces base_url and realm"},
		{"revoke refresh false", oauth.ProviderConfig{Name: "internal-ci", StoreOnly: true, RevokeOnDelete: true},
			"providers[internal-ci].revoke_on_delete: needs the provider's kind and client credentials, which refresh: false declares none of: " +
				"declare it with never_expires: true, kind, client_id and client_secret instead"},
		{"revocation_url without revoke_on_delete", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", RevocationURL: "https://gitlab.example.com/oauth/revoke"},
			"providers[gitlab].revocation_url: is not used: revoke_on_delete is false"},
		{"api_url without revoke_on_delete", oauth.ProviderConfig{Name: "github", ClientID: "id", ClientSecret: secret, APIURL: "https://api.example.com"},
			"providers[github].api_url: is not used: revoke_on_delete is false"},
		{"api_url on gitlab", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", RevokeOnDelete: true, APIURL: "https://api.example.com"},
			"providers[gitlab].api_url: is used only by kind github"},
		{"revocation_url on github", oauth.ProviderConfig{Name: "github", ClientID: "id", ClientSecret: secret, RevokeOnDelete: true, RevocationURL: "https://x.example.com"},
			"providers[github].revocation_url: is not used by kind github"},
		{"revocation_url with credentials", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id", TokenURL: "https://idp.example.com/t",
			RevokeOnDelete: true, RevocationURL: "https://id:" + clientSecret + "@idp.example.com/revoke"},
			"providers[corp].revocation_url: must not contain credentials: use client_id and client_secret"},
		{"api_url relative", oauth.ProviderConfig{Name: "github", ClientID: "id", ClientSecret: secret, RevokeOnDelete: true, APIURL: "/api"},
			`providers[github].api_url: must be an absolute http or https URL, got scheme ""`},
		{"revocation_url with refresh false", oauth.ProviderConfig{Name: "internal-ci", StoreOnly: true, RevocationURL: "https://x.example.com"},
			"providers[internal-ci].revocation_url: is not used: refresh is false, so this provider is never refreshed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want == "":
				return
			case err == nil:
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if prefix, ok := strings.CutSuffix(tt.want, "…"); ok {
				if !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("Validate() = %q, want prefix %q", err, prefix)
				}
			} else if err.Error() != tt.want {
				t.Errorf("Validate() = %q\n                 want %q", err, tt.want)
			}
			assertNoSecrets(t, err.Error())

			// New reports the same problem.
			if _, nerr := oauth.New([]oauth.ProviderConfig{tt.cfg}); nerr == nil || !strings.Contains(nerr.Error(), err.Error()) {
				t.Errorf("New() = %v, want it to contain %q", nerr, err)
			}
		})
	}
}

func TestNewRejectsDuplicateNames(t *testing.T) {
	t.Parallel()
	gh := oauth.ProviderConfig{Name: "github", ClientID: "a", ClientSecret: domain.NewSecret(clientSecret)}
	_, err := oauth.New([]oauth.ProviderConfig{gh, {Name: "gitlab", ClientID: "b"}, gh})
	want := "providers[github]: configured twice: each provider name may appear once"
	if err == nil || err.Error() != want {
		t.Fatalf("New() = %v, want %q", err, want)
	}
}

func TestNewNamesTheEntryWithoutAName(t *testing.T) {
	t.Parallel()
	_, err := oauth.New([]oauth.ProviderConfig{{Name: "gitlab", ClientID: "a"}, {Kind: oauth.KindGitLab, ClientID: "b"}})
	want := "provider #2: providers[].name: must not be empty"
	if err == nil || err.Error() != want {
		t.Fatalf("New() = %v, want %q", err, want)
	}
}

func TestNewWithoutProviders(t *testing.T) {
	t.Parallel()
	r, err := oauth.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Configured("github") {
		t.Error("Configured(github) = true with no providers")
	}
}

// TestNewFromConfig: the composition root always builds a Refresher; with
// no providers it refreshes nothing and reports nothing as configured.
func TestNewFromConfig(t *testing.T) {
	t.Parallel()
	r, err := oauth.NewFromConfig(oauth.Config{Providers: []oauth.ProviderConfig{
		{Name: "github", ClientID: "id", ClientSecret: domain.NewSecret(clientSecret)},
		{Name: "keycloak", ClientID: "id", BaseURL: "http://keycloak:8080", Realm: "app"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Configured("keycloak") || !r.Configured("github") || r.Configured("gitlab") {
		t.Errorf("Configured: keycloak %v, github %v, gitlab %v; want true, true, false",
			r.Configured("keycloak"), r.Configured("github"), r.Configured("gitlab"))
	}

	empty, err := oauth.NewFromConfig(oauth.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []domain.Provider{"github", "gitlab", "keycloak", "corp"} {
		if empty.Configured(p) {
			t.Errorf("no providers: Configured(%s) = true", p)
		}
	}
	if ps := empty.Providers(); len(ps) != 0 {
		t.Errorf("no providers: Providers() = %v", ps)
	}
	if _, err := empty.Refresh(t.Context(), "github", domain.NewSecret(oldRefresh)); !errors.Is(err, domain.ErrProviderNotConfigured) {
		t.Errorf("no providers: Refresh error = %v, want ErrProviderNotConfigured", err)
	}

	_, err = oauth.NewFromConfig(oauth.Config{Providers: []oauth.ProviderConfig{{Name: "gitlab", ClientSecret: domain.NewSecret(clientSecret)}}})
	if err == nil || !strings.Contains(err.Error(), "providers[gitlab].client_id: must not be empty") {
		t.Fatalf("invalid config: err = %v", err)
	}
	assertNoSecrets(t, err.Error())
}

// TestAuthMethodAliases: configuration files written before the RFC 7591
// names keep working; decoding turns the aliases into the RFC names.
func TestAuthMethodAliases(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]oauth.AuthMethod{
		"header":              oauth.AuthMethodClientSecretBasic,
		"params":              oauth.AuthMethodClientSecretPost,
		"client_secret_basic": oauth.AuthMethodClientSecretBasic,
		"client_secret_post":  oauth.AuthMethodClientSecretPost,
		"auto":                oauth.AuthMethodAuto,
		"":                    "",
		"basic":               "basic", // kept for Validate to report
	} {
		var m oauth.AuthMethod
		if err := m.UnmarshalText([]byte(in)); err != nil || m != want {
			t.Errorf("UnmarshalText(%q) = %q, %v; want %q", in, m, err, want)
		}
	}
}

func TestProviderConfigRedactsSecret(t *testing.T) {
	t.Parallel()
	cfg := oauth.ProviderConfig{Name: "github", ClientID: "gh-client", ClientSecret: domain.NewSecret(clientSecret)}
	renderings := map[string]string{
		"%v":           fmt.Sprintf("%v", cfg),
		"%+v":          fmt.Sprintf("%+v", cfg),
		"%#v":          fmt.Sprintf("%#v", cfg),
		"%v of Config": fmt.Sprintf("%+v", oauth.Config{Providers: []oauth.ProviderConfig{cfg}}),
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	renderings["json"] = string(js)
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("config", "provider", cfg)
		renderings[name] = buf.String()
	}
	for name, s := range renderings {
		if strings.Contains(s, clientSecret) {
			t.Errorf("%s leaks the client secret: %s", name, s)
		}
		if !strings.Contains(s, domain.Redacted) {
			t.Errorf("%s does not show %s: %s", name, domain.Redacted, s)
		}
	}
}

// TestDefaultEndpoints checks each kind's default token URL by sending the
// request to a test server through a transport that records the real URL.
func TestDefaultEndpoints(t *testing.T) {
	t.Parallel()
	secret := domain.NewSecret(clientSecret)
	tests := []struct {
		name string
		cfg  oauth.ProviderConfig
		want string
	}{
		{"github", oauth.ProviderConfig{Name: "github", ClientID: "id", ClientSecret: secret},
			"https://github.com/login/oauth/access_token"},
		{"github enterprise", oauth.ProviderConfig{Name: "ghes", Kind: oauth.KindGitHub, ClientID: "id", ClientSecret: secret, BaseURL: "https://ghe.example.com/"},
			"https://ghe.example.com/login/oauth/access_token"},
		{"gitlab.com", oauth.ProviderConfig{Name: "gitlab", ClientID: "id"},
			"https://gitlab.com/oauth/token"},
		{"gitlab self-hosted", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", BaseURL: "https://example.com/gitlab"},
			"https://example.com/gitlab/oauth/token"},
		{"bitbucket", oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: secret},
			"https://bitbucket.org/site/oauth2/access_token"},
		{"azure devops", oauth.ProviderConfig{Name: "azure_devops", ClientID: "id", Tenant: "organizations"},
			"https://login.microsoftonline.com/organizations/oauth2/v2.0/token"},
		{"keycloak", oauth.ProviderConfig{Name: "keycloak", ClientID: "id", BaseURL: "https://kc.example.com/auth/", Realm: "open hands"},
			"https://kc.example.com/auth/realms/open%20hands/protocol/openid-connect/token"},
		{"token_url overrides", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", TokenURL: "https://proxy.example.com/gl/token"},
			"https://proxy.example.com/gl/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, seen := fakeProvider(t, always(okJSON(`{"access_token":"at-NEW"}`)))
			target, _ := url.Parse(srv.URL)
			client := &http.Client{Transport: rewriteTransport{target: target, base: srv.Client().Transport}}
			r, err := oauth.New([]oauth.ProviderConfig{tt.cfg}, oauth.WithHTTPClient(client))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Refresh(t.Context(), tt.cfg.Name, domain.NewSecret(oldRefresh)); err != nil {
				t.Fatal(err)
			}
			reqs := drain(seen)
			if len(reqs) != 1 || reqs[0].origURL != tt.want {
				t.Fatalf("requests = %+v, want one to %s", reqs, tt.want)
			}
		})
	}
}

// NewConfig reads the providers setting as written: where each client
// secret comes from, the durations as text, auth_style as an alias; its
// errors name the setting, the entry and the field, never the secret.
func TestNewConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := dir + "/gitlab-secret"
	if err := os.WriteFile(secretFile, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(name string) string { return map[string]string{"CORP_SECRET": "env-secret"}[name] }
	cfg, err := oauth.NewConfig([]oauth.ProviderSettings{
		{ProviderConfig: oauth.ProviderConfig{Name: "gitlab", ClientID: "gl"}, ClientSecretFile: secretFile, Timeout: "7s", RefreshMargin: "1m"},
		{ProviderConfig: oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "c", TokenURL: "https://idp.example.com/token"},
			ClientSecretEnv: "CORP_SECRET", AuthStyle: oauth.AuthMethodClientSecretPost},
	}, "providers", getenv)
	if err != nil {
		t.Fatal(err)
	}
	gl, corp := cfg.Providers[0], cfg.Providers[1]
	if gl.ClientSecret.Reveal() != "file-secret" || gl.Timeout != 7*time.Second || gl.RefreshMargin != time.Minute {
		t.Errorf("gitlab = %+v", gl)
	}
	if corp.ClientSecret.Reveal() != "env-secret" || corp.TokenEndpointAuthMethod != oauth.AuthMethodClientSecretPost {
		t.Errorf("corp = %+v", corp)
	}
	if m := cfg.Margins(); len(m) != 1 || m["gitlab"] != time.Minute {
		t.Errorf("Margins() = %v, want gitlab: 1m only", m)
	}

	gitlab := oauth.ProviderConfig{Name: "gitlab", ClientID: "x"}
	emptyFile, sharedFile, no := dir+"/empty", dir+"/shared", false
	for path, mode := range map[string]os.FileMode{emptyFile: 0o600, sharedFile: 0o644} {
		if err := os.WriteFile(path, []byte("\n"), mode); err != nil || os.Chmod(path, mode) != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		entry oauth.ProviderSettings
		want  string
	}{
		{"two secret sources", oauth.ProviderSettings{ProviderConfig: gitlab, ClientSecret: clientSecret, ClientSecretEnv: "X"},
			"TOKENSTORE_PROVIDERS[0] (gitlab): give the client secret one way: client_secret, client_secret_file or client_secret_env"},
		{"secret env unset", oauth.ProviderSettings{ProviderConfig: gitlab, ClientSecretEnv: "MISSING"},
			"TOKENSTORE_PROVIDERS[0] (gitlab).client_secret_env: the variable MISSING is empty or unset"},
		{"empty secret file", oauth.ProviderSettings{ProviderConfig: gitlab, ClientSecretFile: emptyFile},
			"TOKENSTORE_PROVIDERS[0] (gitlab).client_secret_file: " + emptyFile + " is empty"},
		{"missing secret file", oauth.ProviderSettings{ProviderConfig: gitlab, ClientSecretFile: dir + "/missing"},
			"TOKENSTORE_PROVIDERS[0] (gitlab).client_secret_file: stat " + dir + "/missing: no such file or directory"},
		{"shared secret file", oauth.ProviderSettings{ProviderConfig: gitlab, ClientSecretFile: sharedFile},
			"TOKENSTORE_PROVIDERS[0] (gitlab).client_secret_file: " + sharedFile + " is readable by group or others (mode 0644); run `chmod 600 " + sharedFile + "`"},
		{"store-only with a client id", oauth.ProviderSettings{ProviderConfig: oauth.ProviderConfig{Name: "corp", ClientID: "x"}, Refresh: &no},
			"TOKENSTORE_PROVIDERS[0] (corp): providers[corp].client_id: is not used: refresh is false, so this provider is never refreshed"},
		{"store-only with a secret", oauth.ProviderSettings{ProviderConfig: oauth.ProviderConfig{Name: "corp"}, ClientSecretEnv: "CORP_SECRET", Refresh: &no},
			"TOKENSTORE_PROVIDERS[0] (corp): providers[corp].client_secret: is not used: refresh is false, so this provider is never refreshed"},
		{"store-only that revokes", oauth.ProviderSettings{ProviderConfig: oauth.ProviderConfig{Name: "corp", RevokesPreviousAccessToken: &no}, Refresh: &no},
			"TOKENSTORE_PROVIDERS[0] (corp): providers[corp].revokes_previous_access_token: is not used: refresh is false, so this provider is never refreshed"},
		{"store-only with an unknown kind", oauth.ProviderSettings{ProviderConfig: oauth.ProviderConfig{Name: "corp", Kind: "corpidp"}, Refresh: &no},
			`TOKENSTORE_PROVIDERS[0] (corp): providers[corp].kind: "corpidp" is not supported: use one of github, gitlab, bitbucket, azure_devops, keycloak, oauth2`},
		{"no kind, refreshed", oauth.ProviderSettings{ProviderConfig: oauth.ProviderConfig{Name: "corp"}},
			"TOKENSTORE_PROVIDERS[0] (corp): providers[corp].kind: must not be empty: use one of github, gitlab, bitbucket, azure_devops, keycloak, oauth2, " +
				"or declare a store-only provider with refresh: false"},
		{"bad timeout", oauth.ProviderSettings{ProviderConfig: gitlab, Timeout: "soon"},
			`TOKENSTORE_PROVIDERS[0] (gitlab).timeout: "soon" is not a duration such as 5s or 15m`},
		{"negative margin", oauth.ProviderSettings{ProviderConfig: gitlab, RefreshMargin: "-1m"},
			`TOKENSTORE_PROVIDERS[0] (gitlab).refresh_margin: "-1m" is not a duration such as 5s or 15m`},
		{"invalid entry", oauth.ProviderSettings{ProviderConfig: oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "x"}, ClientSecret: clientSecret},
			"TOKENSTORE_PROVIDERS[0] (corp): providers[corp].token_url: must not be empty for kind oauth2"},
	}
	for _, tc := range tests {
		_, err := oauth.NewConfig([]oauth.ProviderSettings{tc.entry}, "TOKENSTORE_PROVIDERS", getenv)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestStoreOnlyProviders: an entry with refresh: false declares a provider
// whose tokens are stored but never refreshed; it needs no kind and no
// credentials, is listed by Names with every other entry, and the
// refresher reports it as not refreshable.
func TestStoreOnlyProviders(t *testing.T) {
	t.Parallel()
	no, yes := false, true
	cfg, err := oauth.NewConfig([]oauth.ProviderSettings{
		{ProviderConfig: oauth.ProviderConfig{Name: "corp"}, Refresh: &no},
		{ProviderConfig: oauth.ProviderConfig{Name: "github", NeverExpires: true}},
		{ProviderConfig: oauth.ProviderConfig{Name: "gitlab", ClientID: "gl"}, Refresh: &yes},
	}, "providers", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Names(); fmt.Sprint(got) != "[corp github gitlab]" {
		t.Errorf("Names() = %v, want every entry", got)
	}
	if !cfg.Providers[0].StoreOnly || cfg.Providers[2].StoreOnly {
		t.Errorf("StoreOnly = %v, %v; want true for refresh: false only", cfg.Providers[0].StoreOnly, cfg.Providers[2].StoreOnly)
	}
	r, err := oauth.NewFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Configured("corp") || r.Configured("github") || !r.Configured("gitlab") {
		t.Errorf("Configured: corp %v github %v gitlab %v; want only gitlab", r.Configured("corp"), r.Configured("github"), r.Configured("gitlab"))
	}
	if _, err := r.Refresh(t.Context(), "corp", domain.NewSecret("r")); !errors.Is(err, domain.ErrProviderNotConfigured) {
		t.Errorf("Refresh(store-only) = %v, want not configured", err)
	}
	if (oauth.Config{}).Names() != nil {
		t.Error("Names() of no providers is not nil")
	}
}
