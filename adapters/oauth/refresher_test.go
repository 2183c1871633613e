package oauth_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
)

// TestRequestShape checks what each kind puts on the wire.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	secret := domain.NewSecret(clientSecret)
	const ado = "499b84ac-1321-427f-aa17-267ca6975798/.default offline_access"
	tests := []struct {
		name       string
		cfg        func(base string) oauth.ProviderConfig
		wantPath   string
		wantHeader bool   // client credentials as HTTP basic auth, else in the body
		wantSecret string // "" = public client: no secret anywhere
		wantScope  string // "" = no scope parameter
	}{
		{"github enterprise: body", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "github", ClientID: "gh-id", ClientSecret: secret, BaseURL: b}
		}, "/login/oauth/access_token", false, clientSecret, ""},
		{"gitlab self-hosted: body", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "gitlab", ClientID: "gl-id", ClientSecret: secret, BaseURL: b + "/gitlab/"}
		}, "/gitlab/oauth/token", false, clientSecret, ""},
		{"gitlab configured for header", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "gitlab", ClientID: "gl-id", ClientSecret: secret, BaseURL: b, TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic}
		}, "/oauth/token", true, clientSecret, ""},
		{"bitbucket: basic auth", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "bitbucket", ClientID: "bb id", ClientSecret: secret, TokenURL: b + "/site/oauth2/access_token"}
		}, "/site/oauth2/access_token", true, clientSecret, ""},
		{"azure devops: default scope", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "azure_devops", ClientID: "az-id", ClientSecret: secret, TokenURL: b + "/contoso/oauth2/v2.0/token"}
		}, "/contoso/oauth2/v2.0/token", false, clientSecret, ado},
		{"azure devops: configured scopes", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "azure_devops", ClientID: "az-id", ClientSecret: secret, TokenURL: b + "/t",
				Scopes: []string{" 499b84ac-1321-427f-aa17-267ca6975798/vso.code  offline_access", "openid"}}
		}, "/t", false, clientSecret, "499b84ac-1321-427f-aa17-267ca6975798/vso.code offline_access openid"},
		{"keycloak realm: body", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "keycloak", ClientID: "kc-id", ClientSecret: secret, BaseURL: b + "/auth", Realm: "open hands"}
		}, "/auth/realms/open%20hands/protocol/openid-connect/token", false, clientSecret, ""},
		{"keycloak public client", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "keycloak", ClientID: "kc-public", BaseURL: b, Realm: "app"}
		}, "/realms/app/protocol/openid-connect/token", false, "", ""},
		{"oauth2 header", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "c:id", ClientSecret: domain.NewSecret("p+w/" + clientSecret), TokenURL: b + "/token", TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic}
		}, "/token", true, "p+w/" + clientSecret, ""},
		{"oauth2 params with scopes", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "c-id", ClientSecret: secret, TokenURL: b + "/token", TokenEndpointAuthMethod: oauth.AuthMethodClientSecretPost, Scopes: []string{"read", "write"}}
		}, "/token", false, clientSecret, "read write"},
		{"oauth2 auto starts with header", func(b string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "c-id", ClientSecret: secret, TokenURL: b + "/token"}
		}, "/token", true, clientSecret, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, seen := fakeProvider(t, always(okJSON(`{"access_token":"at-NEW","token_type":"bearer","expires_in":3600}`)))
			cfg := tt.cfg(srv.URL)
			r := newRefresher(t, srv, cfg)
			got, err := r.Refresh(t.Context(), cfg.Name, domain.NewSecret(oldRefresh))
			if err != nil {
				t.Fatal(err)
			}
			if got.AccessToken.Reveal() != "at-NEW" {
				t.Errorf("access token = %q", got.AccessToken.Reveal())
			}
			reqs := drain(seen)
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			req := reqs[0]
			if req.method != http.MethodPost || req.path != tt.wantPath {
				t.Errorf("request %s %s, want POST %s", req.method, req.path, tt.wantPath)
			}
			if req.contentType != formCT || req.accept != jsonCT {
				t.Errorf("Content-Type %q, Accept %q", req.contentType, req.accept)
			}
			if g, rt := req.form.Get("grant_type"), req.form.Get("refresh_token"); g != "refresh_token" || rt != oldRefresh {
				t.Errorf("grant_type=%q refresh_token=%q", g, rt)
			}
			if got, ok := req.form["scope"]; tt.wantScope == "" && ok || tt.wantScope != "" && strings.Join(got, "|") != tt.wantScope {
				t.Errorf("scope = %q, want %q", got, tt.wantScope)
			}
			if tt.wantHeader {
				if !req.basic || req.user != cfg.ClientID || req.pass != tt.wantSecret {
					t.Errorf("basic auth = %v %q:%q, want %q:%q", req.basic, req.user, req.pass, cfg.ClientID, tt.wantSecret)
				}
				if req.form.Has("client_id") || req.form.Has("client_secret") {
					t.Errorf("credentials also in the body: %v", req.form)
				}
				return
			}
			if req.basic {
				t.Error("basic auth sent, want credentials in the body")
			}
			if id := req.form.Get("client_id"); id != cfg.ClientID {
				t.Errorf("client_id = %q, want %q", id, cfg.ClientID)
			}
			if s, ok := req.form["client_secret"]; tt.wantSecret == "" && ok || tt.wantSecret != "" && strings.Join(s, "|") != tt.wantSecret {
				t.Errorf("client_secret = %q, want %q", s, tt.wantSecret)
			}
		})
	}
}

// TestResponses checks how answers become RefreshedTokens.
func TestResponses(t *testing.T) {
	t.Parallel()
	at := func(seconds int64) domain.Expiry { return domain.AfterSeconds(t0, seconds) }
	never := domain.Never()
	tests := []struct {
		name          string
		reply         reply
		wantRefresh   string // "" = zero: keep the old one
		accessExpiry  domain.Expiry
		refreshExpiry domain.Expiry
	}{
		{"github app json",
			okJSON(`{"access_token":"at-NEW","expires_in":28800,"refresh_token":"rt-NEW","refresh_token_expires_in":15724800,"scope":"","token_type":"bearer"}`),
			"rt-NEW", at(28800), at(15724800)},
		{"github app form-encoded (GitHub's default)",
			reply{status: 200, contentType: formCT, body: "access_token=at-NEW&expires_in=28800&refresh_token=rt-NEW&refresh_token_expires_in=15724800&scope=&token_type=bearer"},
			"rt-NEW", at(28800), at(15724800)},
		{"form as text/plain",
			reply{status: 200, contentType: "text/plain; charset=utf-8", body: "access_token=at-NEW&expires_in=60"},
			"", at(60), never},
		{"json without content type",
			reply{status: 200, body: `{"access_token":"at-NEW","expires_in":60,"refresh_token":"rt-NEW"}`},
			"rt-NEW", at(60), never},
		{"form without content type",
			reply{status: 200, body: "access_token=at-NEW&expires_in=60"},
			"", at(60), never},
		{"json with charset",
			reply{status: 200, contentType: "application/json; charset=utf-8", body: `{"access_token":"at-NEW","expires_in":60}`},
			"", at(60), never},
		{"no refresh token: keep the old one",
			okJSON(`{"access_token":"at-NEW","expires_in":7200}`),
			"", at(7200), never},
		{"no refresh token but a refresh lifetime: lifetime ignored",
			okJSON(`{"access_token":"at-NEW","refresh_token_expires_in":99}`),
			"", never, never},
		{"null refresh token",
			okJSON(`{"access_token":"at-NEW","refresh_token":null}`),
			"", never, never},
		{"same refresh token returned",
			okJSON(`{"access_token":"at-NEW","refresh_token":"` + oldRefresh + `"}`),
			oldRefresh, never, never},
		{"no expires_in: never expires",
			okJSON(`{"access_token":"at-NEW","refresh_token":"rt-NEW"}`),
			"rt-NEW", never, never},
		{"expires_in 0: no expiry announced",
			okJSON(`{"access_token":"at-NEW","expires_in":0}`),
			"", never, never},
		{"expires_in as a string",
			okJSON(`{"access_token":"at-NEW","expires_in":"3600"}`),
			"", at(3600), never},
		{"expires_in fractional",
			okJSON(`{"access_token":"at-NEW","expires_in":3599.9}`),
			"", at(3599), never},
		{"expires_in garbage: tokens kept, refreshed on next use",
			okJSON(`{"access_token":"at-NEW","expires_in":"soon","refresh_token":"rt-NEW"}`),
			"rt-NEW", domain.At(t0), never},
		{"expires_in negative",
			okJSON(`{"access_token":"at-NEW","expires_in":-5}`),
			"", domain.At(t0), never},
		{"expires_in absurd: saturates",
			okJSON(`{"access_token":"at-NEW","expires_in":1e300}`),
			"", at(1 << 62), never},
		{"keycloak refresh_expires_in",
			okJSON(`{"access_token":"at-NEW","expires_in":300,"refresh_expires_in":1800,"refresh_token":"rt-NEW","token_type":"Bearer"}`),
			"rt-NEW", at(300), at(1800)},
		{"keycloak offline token: refresh_expires_in 0",
			okJSON(`{"access_token":"at-NEW","expires_in":300,"refresh_expires_in":0,"refresh_token":"rt-NEW"}`),
			"rt-NEW", at(300), never},
		{"refresh lifetime garbage: never",
			okJSON(`{"access_token":"at-NEW","refresh_token":"rt-NEW","refresh_token_expires_in":"later"}`),
			"rt-NEW", never, never},
		// The body decides, never the label (issue 9).
		{"json labelled text/plain",
			reply{status: 200, contentType: "text/plain", body: `{"access_token":"at-NEW","expires_in":60,"refresh_token":"rt-NEW"}`},
			"rt-NEW", at(60), never},
		{"json labelled text/html",
			reply{status: 200, contentType: "text/html; charset=iso-8859-1", body: `{"access_token":"at-NEW","expires_in":60}`},
			"", at(60), never},
		{"json labelled form-encoded",
			reply{status: 200, contentType: formCT, body: `{"access_token":"at-NEW","refresh_token":"rt-NEW"}`},
			"rt-NEW", never, never},
		{"json labelled with an unparseable media type",
			reply{status: 200, contentType: ";;", body: `{"access_token":"at-NEW","expires_in":60}`},
			"", at(60), never},
		{"form labelled application/json (GitHub without Accept honoured)",
			reply{status: 200, contentType: jsonCT, body: "access_token=at-NEW&expires_in=28800&refresh_token=rt-NEW&refresh_token_expires_in=15724800&token_type=bearer"},
			"rt-NEW", at(28800), at(15724800)},
		{"json after a byte order mark and blank lines",
			reply{status: 200, contentType: jsonCT, body: "\uFEFF\r\n  {\"access_token\":\"at-NEW\"}\n"},
			"", never, never},
		{"refresh_token_expires_in 0: no expiry",
			okJSON(`{"access_token":"at-NEW","refresh_token":"rt-NEW","refresh_token_expires_in":0}`),
			"rt-NEW", never, never},
		{"refresh lifetime as a string",
			okJSON(`{"access_token":"at-NEW","refresh_token":"rt-NEW","refresh_expires_in":"1800"}`),
			"rt-NEW", never, at(1800)},
		{"expires_in null: not given",
			okJSON(`{"access_token":"at-NEW","expires_in":null}`),
			"", never, never},
		{"expires_in sent twice: unreadable, refreshed on next use",
			okJSON(`{"access_token":"at-NEW","expires_in":3600,"expires_in":60}`),
			"", domain.At(t0), never},
		{"side members may be broken: scope with invalid UTF-8, token_type twice",
			okJSON("{\"access_token\":\"at-NEW\",\"scope\":\"a\xff\",\"token_type\":\"bearer\",\"token_type\":\"x\",\"expires_in\":60}"),
			"", at(60), never},
		{"empty error: not an error",
			okJSON(`{"access_token":"at-NEW","error":""}`),
			"", never, never},
		{"201 counts as success",
			reply{status: 201, contentType: jsonCT, body: `{"access_token":"at-NEW"}`},
			"", never, never},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeProvider(t, always(tt.reply))
			r := newRefresher(t, srv, generic(srv.URL))
			got, err := r.Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			if err != nil {
				t.Fatal(err)
			}
			if got.AccessToken.Reveal() != "at-NEW" {
				t.Errorf("AccessToken = %q, want at-NEW", got.AccessToken.Reveal())
			}
			if got.RefreshToken.Reveal() != tt.wantRefresh {
				t.Errorf("RefreshToken = %q, want %q", got.RefreshToken.Reveal(), tt.wantRefresh)
			}
			if !got.AccessExpiry.Equal(tt.accessExpiry) {
				t.Errorf("AccessExpiry = %v, want %v", got.AccessExpiry, tt.accessExpiry)
			}
			if !got.RefreshExpiry.Equal(tt.refreshExpiry) {
				t.Errorf("RefreshExpiry = %v, want %v", got.RefreshExpiry, tt.refreshExpiry)
			}
		})
	}
}

// TestErrorClassification checks which sentinel each failure wraps and that
// the message names provider, status and code but no token, secret or body.
func TestErrorClassification(t *testing.T) {
	t.Parallel()
	const bodyMarker = "BODY-MARKER-7q"
	echo := "refresh token " + oldRefresh + " with client secret " + clientSecret + " is unknown"
	tests := []struct {
		name    string
		kind    oauth.Kind
		reply   reply
		want    error
		inMsg   []string
		notIn   []string
		oneLine bool
	}{
		{"400 invalid_grant", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: `{"error":"invalid_grant","error_description":"Token is not active"}`},
			domain.ErrGrantRevoked, []string{"corp: HTTP 400, error invalid_grant", `"Token is not active"`}, nil, true},
		{"github: 200 with bad_refresh_token, form-encoded", oauth.KindGitHub,
			reply{status: 200, contentType: formCT, body: "error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.github.com"},
			domain.ErrGrantRevoked, []string{"HTTP 200, error bad_refresh_token", "incorrect or expired"}, nil, true},
		{"github: 200 with bad_refresh_token, json", oauth.KindGitHub,
			okJSON(`{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}`),
			domain.ErrGrantRevoked, []string{"HTTP 200, error bad_refresh_token"}, nil, true},
		{"entra interaction_required", oauth.KindAzureDevOps,
			reply{status: 400, contentType: jsonCT, body: `{"error":"interaction_required","error_description":"AADSTS50076: multi-factor authentication required"}`},
			domain.ErrGrantRevoked, []string{"interaction_required", "AADSTS50076"}, nil, true},
		{"401 invalid_client", oauth.KindGitLab,
			reply{status: 401, contentType: jsonCT, body: `{"error":"invalid_client","error_description":"Client authentication failed"}`},
			domain.ErrProviderRejected, []string{"HTTP 401, error invalid_client"}, nil, true},
		{"400 unauthorized_client", oauth.KindKeycloak,
			reply{status: 400, contentType: jsonCT, body: `{"error":"unauthorized_client"}`},
			domain.ErrProviderRejected, []string{"HTTP 400, error unauthorized_client"}, nil, true},
		{"github: 200 with incorrect_client_credentials", oauth.KindGitHub,
			reply{status: 200, contentType: formCT, body: "error=incorrect_client_credentials"},
			domain.ErrProviderRejected, []string{"error incorrect_client_credentials"}, nil, true},
		{"404 html", oauth.KindOAuth2,
			reply{status: 404, contentType: "text/html", body: "<h1>Not Found " + bodyMarker + "</h1>"},
			domain.ErrProviderRejected, []string{"HTTP 404"}, []string{bodyMarker}, true},
		{"400 without body", oauth.KindOAuth2,
			reply{status: 400},
			domain.ErrProviderRejected, []string{"HTTP 400"}, nil, true},
		{"302 is not followed", oauth.KindOAuth2,
			reply{status: 302, header: map[string]string{"Location": "/elsewhere"}},
			domain.ErrProviderRejected, []string{"HTTP 302", "redirects are not followed"}, nil, true},
		{"500 html", oauth.KindOAuth2,
			reply{status: 500, contentType: "text/html", body: "<pre>" + bodyMarker + " " + oldRefresh + " " + clientSecret + "</pre>"},
			domain.ErrProviderUnavailable, []string{"HTTP 500"}, []string{bodyMarker}, true},
		{"502", oauth.KindBitbucket, reply{status: 502}, domain.ErrProviderUnavailable, []string{"HTTP 502"}, nil, true},
		{"503 temporarily_unavailable", oauth.KindAzureDevOps,
			reply{status: 503, contentType: jsonCT, body: `{"error":"temporarily_unavailable"}`},
			domain.ErrProviderUnavailable, []string{"HTTP 503, error temporarily_unavailable"}, nil, true},
		{"429", oauth.KindGitHub,
			reply{status: 429, header: map[string]string{"Retry-After": "60"}},
			domain.ErrProviderUnavailable, []string{"HTTP 429"}, nil, true},
		{"400 temporarily_unavailable", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: `{"error":"temporarily_unavailable"}`},
			domain.ErrProviderUnavailable, []string{"temporarily_unavailable"}, nil, true},
		{"200 without access_token", oauth.KindOAuth2,
			okJSON(`{"refresh_token":"rt-NEW","token_type":"bearer"}`),
			domain.ErrProviderUnavailable, []string{"HTTP 200", "no access_token"}, []string{"rt-NEW"}, true},
		{"200 html (a login page)", oauth.KindOAuth2,
			reply{status: 200, contentType: "text/html", body: "<form>" + bodyMarker + "</form>"},
			domain.ErrProviderUnavailable, []string{"HTTP 200", "no access_token"}, []string{bodyMarker}, true},
		{"200 truncated json", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-NEW","expi`),
			domain.ErrProviderUnavailable, []string{"the body is not valid JSON"}, []string{"at-NEW"}, true},
		// The body decides, never the label (issue 9): each of these was a
		// "rejected request" or "no access_token" before.
		{"400 text/plain invalid_grant", oauth.KindOAuth2,
			reply{status: 400, contentType: "text/plain", body: `{"error":"invalid_grant"}`},
			domain.ErrGrantRevoked, []string{"HTTP 400, error invalid_grant"}, nil, true},
		{"400 without a label, invalid_grant", oauth.KindOAuth2,
			reply{status: 400, body: `{"error":"invalid_grant","error_description":"Token is not active"}`},
			domain.ErrGrantRevoked, []string{"error invalid_grant", "Token is not active"}, nil, true},
		{"400 text/html invalid_grant", oauth.KindKeycloak,
			reply{status: 400, contentType: "text/html", body: ` {"error":"invalid_grant"}`},
			domain.ErrGrantRevoked, []string{"error invalid_grant"}, nil, true},
		{"400 form-encoded labelled json", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: "error=invalid_grant&error_description=expired"},
			domain.ErrGrantRevoked, []string{"error invalid_grant", "expired"}, nil, true},
		{"200 text/plain bad_refresh_token (GitHub)", oauth.KindGitHub,
			reply{status: 200, contentType: "text/plain", body: `{"error":"bad_refresh_token"}`},
			domain.ErrGrantRevoked, []string{"HTTP 200, error bad_refresh_token"}, nil, true},
		{"401 text/plain invalid_client", oauth.KindGitLab,
			reply{status: 401, contentType: "text/plain", body: `{"error":"invalid_client"}`},
			domain.ErrProviderRejected, []string{"HTTP 401, error invalid_client"}, nil, true},
		{"403 text/plain unauthorized_client", oauth.KindOAuth2,
			reply{status: 403, contentType: "text/plain", body: `{"error":"unauthorized_client"}`},
			domain.ErrProviderRejected, []string{"HTTP 403, error unauthorized_client"}, nil, true},
		{"503 text/plain temporarily_unavailable", oauth.KindOAuth2,
			reply{status: 503, contentType: "text/plain", body: `{"error":"temporarily_unavailable"}`},
			domain.ErrProviderUnavailable, []string{"HTTP 503, error temporarily_unavailable"}, nil, true},
		{"500 text/html with a json invalid_grant: the code decides", oauth.KindOAuth2,
			reply{status: 500, contentType: "text/html", body: `{"error":"invalid_grant"}`},
			domain.ErrGrantRevoked, []string{"HTTP 500, error invalid_grant"}, nil, true},
		// A token is stored exactly as sent or not at all.
		{"access_token sent twice", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-ONE","access_token":"at-TWO"}`),
			domain.ErrProviderUnavailable, []string{"access_token appears more than once"}, []string{"at-ONE", "at-TWO"}, true},
		{"refresh_token sent twice", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-NEW","refresh_token":"rt-ONE","refresh_token":"rt-TWO"}`),
			domain.ErrProviderUnavailable, []string{"refresh_token appears more than once"}, []string{"at-NEW", "rt-ONE"}, true},
		{"access_token with invalid UTF-8", oauth.KindOAuth2,
			okJSON("{\"access_token\":\"at-\xff\xfe\"}"),
			domain.ErrProviderUnavailable, []string{"access_token is not valid UTF-8"}, nil, true},
		{"access_token with a lone surrogate", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-\ud800"}`),
			domain.ErrProviderUnavailable, []string{"access_token is not valid UTF-8"}, nil, true},
		{"access_token with NUL", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-\u0000x"}`),
			domain.ErrProviderUnavailable, []string{"access_token holds control characters"}, nil, true},
		{"access_token a number", oauth.KindOAuth2,
			okJSON(`{"access_token":12345678}`),
			domain.ErrProviderUnavailable, []string{"access_token is not a string"}, nil, true},
		{"refresh_token an object", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-NEW","refresh_token":{"v":"rt-NEW"}}`),
			domain.ErrProviderUnavailable, []string{"refresh_token is not a string"}, []string{"at-NEW"}, true},
		{"form access_token with a broken escape", oauth.KindGitHub,
			reply{status: 200, contentType: formCT, body: "access_token=at-%zz&token_type=bearer"},
			domain.ErrProviderUnavailable, []string{"access_token is not valid UTF-8 or not properly escaped"}, nil, true},
		{"form access_token decoding to invalid UTF-8", oauth.KindGitHub,
			reply{status: 200, contentType: formCT, body: "access_token=at-%FF"},
			domain.ErrProviderUnavailable, []string{"access_token is not valid UTF-8"}, nil, true},
		{"form access_token twice", oauth.KindGitHub,
			reply{status: 200, contentType: formCT, body: "access_token=at-ONE&access_token=at-TWO"},
			domain.ErrProviderUnavailable, []string{"access_token appears more than once"}, []string{"at-ONE"}, true},
		{"json object followed by garbage (found by FuzzParseAnswer)", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-NEW"}A`),
			domain.ErrProviderUnavailable, []string{"not valid JSON"}, []string{"at-NEW"}, true},
		{"json object followed by more", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-NEW"}{"access_token":"at-TWO"}`),
			domain.ErrProviderUnavailable, []string{"not valid JSON"}, []string{"at-NEW"}, true},
		{"200 with tokens and a non-string error: an error answer", oauth.KindOAuth2,
			okJSON(`{"access_token":"at-NEW","error":5}`),
			domain.ErrProviderRejected, []string{"HTTP 200, error (unreadable)"}, []string{"at-NEW"}, true},
		{"400 with two error codes: the status decides", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: `{"error":"invalid_grant","error":"invalid_client"}`},
			domain.ErrProviderRejected, []string{"HTTP 400, error (unreadable)"}, nil, true},
		{"description with control and format characters", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: "{\"error\":\"invalid_grant\",\"error_description\":\"a\\u0007b\\u202ec\\u2028d\\r\\ne\\u0000f\\u001b[31mg\xffh\"}"},
			domain.ErrGrantRevoked, []string{`"abcdef[31mgh"`}, nil, true},
		{"description echoing secrets", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: `{"error":"invalid_grant","error_description":"` + echo + `"}`},
			domain.ErrGrantRevoked, []string{"refresh token [REDACTED] with client secret [REDACTED] is unknown"}, nil, true},
		{"code echoing the refresh token", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: `{"error":"bad token ` + oldRefresh + `"}`},
			domain.ErrProviderRejected, []string{`error "bad token [REDACTED]"`}, nil, true},
		{"description forging a log line", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: `{"error":"invalid_grant","error_description":"x\nlevel=INFO msg=forged"}`},
			domain.ErrGrantRevoked, []string{`"xlevel=INFO msg=forged"`}, nil, true},
		{"long description is cut", oauth.KindOAuth2,
			reply{status: 400, contentType: jsonCT, body: `{"error":"invalid_grant","error_description":"` + strings.Repeat("é", 300) + `"}`},
			domain.ErrGrantRevoked, []string{"invalid_grant", "…"}, []string{strings.Repeat("é", 101)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, seen := fakeProvider(t, always(tt.reply))
			cfg := oauth.ProviderConfig{Name: "corp", Kind: tt.kind, ClientID: "id", ClientSecret: domain.NewSecret(clientSecret), TokenURL: srv.URL + "/token"}
			if tt.kind == oauth.KindAzureDevOps {
				cfg.Tenant = "contoso"
			}
			r := newRefresher(t, srv, cfg)
			got, err := r.Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Refresh() error = %v, want %v", err, tt.want)
			}
			if !got.AccessToken.IsZero() || !got.RefreshToken.IsZero() {
				t.Error("tokens returned with an error")
			}
			msg := err.Error()
			for _, s := range tt.inMsg {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			for _, s := range tt.notIn {
				if strings.Contains(msg, s) {
					t.Errorf("error %q contains %q", msg, s)
				}
			}
			if !strings.Contains(msg, "corp") {
				t.Errorf("error %q does not name the provider", msg)
			}
			if tt.oneLine && strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q spans lines", msg)
			}
			assertNoSecrets(t, msg)
			if n := len(drain(seen)); n != 1 {
				t.Errorf("%d requests, want exactly 1", n)
			}
		})
	}
}

// A secret of a few characters cannot be replaced without mangling the
// provider's text, so the description is dropped and the code kept whole.
func TestShortSecretDropsDescription(t *testing.T) {
	t.Parallel()
	srv, _ := fakeProvider(t, always(reply{status: 400, contentType: jsonCT,
		body: `{"error":"invalid_grant","error_description":"the abc token is unknown"}`}))
	cfg := generic(srv.URL)
	cfg.ClientSecret = domain.NewSecret("abc")
	_, err := newRefresher(t, srv, cfg).Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
	if !errors.Is(err, domain.ErrGrantRevoked) {
		t.Fatalf("error = %v, want ErrGrantRevoked", err)
	}
	if want := "provider rejected the refresh token: corp: HTTP 400, error invalid_grant"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// hangingProvider accepts requests and never answers until the client gives up.
func hangingProvider(t *testing.T) (*httptest.Server, chan struct{}) {
	t.Helper()
	started := make(chan struct{}, 8)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) }) // runs first: no handler outlives the test
	return srv, started
}

func TestTransportFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		run    func(t *testing.T) error
		alsoIs error
		// unknown: the request had been sent, so the provider may have
		// refreshed (domain.ErrProviderOutcomeUnknown).
		unknown bool
	}{
		{"hanging server, provider timeout", func(t *testing.T) error {
			srv, _ := hangingProvider(t)
			cfg := generic(srv.URL)
			cfg.Timeout = 50 * time.Millisecond
			_, err := newRefresher(t, srv, cfg).Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			return err
		}, nil, true},
		{"caller's deadline", func(t *testing.T) error {
			srv, _ := hangingProvider(t)
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			_, err := newRefresher(t, srv, generic(srv.URL)).Refresh(ctx, "corp", domain.NewSecret(oldRefresh))
			return err
		}, context.DeadlineExceeded, true},
		{"caller cancels mid-request", func(t *testing.T) error {
			srv, started := hangingProvider(t)
			ctx, cancel := context.WithCancel(t.Context())
			go func() { <-started; cancel() }()
			_, err := newRefresher(t, srv, generic(srv.URL)).Refresh(ctx, "corp", domain.NewSecret(oldRefresh))
			return err
		}, context.Canceled, true},
		{"context already cancelled", func(t *testing.T) error {
			srv, _ := fakeProvider(t, always(okJSON(`{"access_token":"at-NEW"}`)))
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := newRefresher(t, srv, generic(srv.URL)).Refresh(ctx, "corp", domain.NewSecret(oldRefresh))
			return err
		}, context.Canceled, false},
		{"connection refused", func(t *testing.T) error {
			srv := httptest.NewServer(http.NotFoundHandler())
			r := newRefresher(t, srv, generic(srv.URL))
			srv.Close()
			_, err := r.Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			return err
		}, nil, false},
		{"connection reset after the request was sent", func(t *testing.T) error {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			}))
			t.Cleanup(srv.Close)
			_, err := newRefresher(t, srv, generic(srv.URL)).Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			return err
		}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.run(t)
			if !errors.Is(err, domain.ErrProviderUnavailable) {
				t.Fatalf("error = %v, want ErrProviderUnavailable", err)
			}
			if tt.alsoIs != nil && !errors.Is(err, tt.alsoIs) {
				t.Errorf("error = %v, want it to wrap %v", err, tt.alsoIs)
			}
			if got := errors.Is(err, domain.ErrProviderOutcomeUnknown); got != tt.unknown {
				t.Errorf("error %q: outcome unknown = %v, want %v", err, got, tt.unknown)
			}
			if !strings.Contains(err.Error(), "corp") {
				t.Errorf("error %q does not name the provider", err)
			}
			assertNoSecrets(t, err.Error())
		})
	}
}

func TestRefreshWithoutRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		provider domain.Provider
		token    domain.Secret
		want     error
	}{
		{"unknown provider", "gitea", domain.NewSecret(oldRefresh), domain.ErrProviderNotConfigured},
		{"never-expiring provider", "github", domain.NewSecret(oldRefresh), domain.ErrProviderNotConfigured},
		{"no refresh token", "corp", domain.Secret{}, domain.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, seen := fakeProvider(t, always(okJSON(`{"access_token":"at-NEW"}`)))
			r := newRefresher(t, srv, generic(srv.URL), oauth.ProviderConfig{Name: "github", NeverExpires: true})
			_, err := r.Refresh(t.Context(), tt.provider, tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), string(tt.provider)) && tt.want != domain.ErrInvalid {
				t.Errorf("error %q does not name %s", err, tt.provider)
			}
			if n := len(drain(seen)); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

func TestConfigured(t *testing.T) {
	t.Parallel()
	srv, _ := fakeProvider(t, always(okJSON(`{}`)))
	r := newRefresher(t, srv, generic(srv.URL), oauth.ProviderConfig{Name: "github", NeverExpires: true})
	for provider, want := range map[domain.Provider]bool{"corp": true, "github": false, "gitlab": false} {
		if got := r.Configured(provider); got != want {
			t.Errorf("Configured(%s) = %v, want %v", provider, got, want)
		}
	}
}

// paramsOnlyProvider refuses HTTP basic auth with invalid_client and
// accepts the credentials only in the body, like some real servers do.
func paramsOnlyProvider(req request) reply {
	switch {
	case req.basic:
		return reply{status: 401, contentType: jsonCT, body: `{"error":"invalid_client"}`}
	case req.form.Get("client_secret") != clientSecret:
		return reply{status: 401, contentType: jsonCT, body: `{"error":"invalid_client"}`}
	default:
		return okJSON(`{"access_token":"at-NEW","expires_in":60}`)
	}
}

func TestAutoStyleProbe(t *testing.T) {
	t.Parallel()
	auto := func(base string) oauth.ProviderConfig {
		cfg := generic(base)
		cfg.TokenEndpointAuthMethod = oauth.AuthMethodAuto
		return cfg
	}

	t.Run("falls back to the body once and remembers", func(t *testing.T) {
		t.Parallel()
		srv, seen := fakeProvider(t, paramsOnlyProvider)
		r := newRefresher(t, srv, auto(srv.URL))
		for i, wantBasic := range [][]bool{{true, false}, {false}, {false}} {
			if _, err := r.Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh)); err != nil {
				t.Fatalf("refresh %d: %v", i, err)
			}
			var gotBasic []bool
			for _, req := range drain(seen) {
				gotBasic = append(gotBasic, req.basic)
			}
			if !slices.Equal(gotBasic, wantBasic) {
				t.Errorf("refresh %d: basic auth per request = %v, want %v", i, gotBasic, wantBasic)
			}
		}
	})

	// The refresh token is sent again only when the client was refused:
	// anything else may mean the provider has already used it.
	for _, rep := range []reply{
		{status: 400, contentType: jsonCT, body: `{"error":"invalid_grant"}`},
		{status: 500},
		{status: 403, contentType: jsonCT, body: `{"error":"unauthorized_client"}`},
	} {
		t.Run("no second request after HTTP "+http.StatusText(rep.status), func(t *testing.T) {
			t.Parallel()
			srv, seen := fakeProvider(t, always(rep))
			_, err := newRefresher(t, srv, auto(srv.URL)).Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			if err == nil {
				t.Fatal("Refresh succeeded")
			}
			if n := len(drain(seen)); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}

	t.Run("both styles refused: not remembered", func(t *testing.T) {
		t.Parallel()
		srv, seen := fakeProvider(t, always(reply{status: 401, contentType: jsonCT, body: `{"error":"invalid_client"}`}))
		r := newRefresher(t, srv, auto(srv.URL))
		for range 2 {
			_, err := r.Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			if !errors.Is(err, domain.ErrProviderRejected) {
				t.Fatalf("error = %v, want ErrProviderRejected", err)
			}
			if n := len(drain(seen)); n != 2 {
				t.Errorf("%d requests, want 2 (header, then body)", n)
			}
		}
	})

	t.Run("known kinds never probe", func(t *testing.T) {
		t.Parallel()
		srv, seen := fakeProvider(t, always(reply{status: 401, contentType: jsonCT, body: `{"error":"invalid_client"}`}))
		r := newRefresher(t, srv, oauth.ProviderConfig{Name: "gitlab", ClientID: "id", ClientSecret: domain.NewSecret(clientSecret), BaseURL: srv.URL})
		if _, err := r.Refresh(t.Context(), "gitlab", domain.NewSecret(oldRefresh)); !errors.Is(err, domain.ErrProviderRejected) {
			t.Fatalf("error = %v, want ErrProviderRejected", err)
		}
		if n := len(drain(seen)); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

// TestConcurrentRefresh exercises the shared state (the probe's memory and
// the HTTP clients) under the race detector.
func TestConcurrentRefresh(t *testing.T) {
	t.Parallel()
	srv, _ := fakeProvider(t, paramsOnlyProvider)
	cfg := generic(srv.URL)
	cfg.TokenEndpointAuthMethod = oauth.AuthMethodAuto
	r := newRefresher(t, srv, cfg)
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range 8 {
		wg.Go(func() {
			if _, err := r.Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh)); err != nil {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of 8 concurrent refreshes failed", n)
	}
}

// TestOutcomeUnknown: an answer that may come after the provider refreshed
// (a 5xx, a broken 2xx) leaves the outcome unknown
// (domain.ErrProviderOutcomeUnknown); one the provider gave itself without
// acting does not. (Transport failures: TestTransportFailures.)
func TestOutcomeUnknown(t *testing.T) {
	t.Parallel()
	answered := []struct {
		name    string
		reply   reply
		unknown bool
	}{
		{"502 from a gateway", reply{status: 502, contentType: "text/html", body: "<h1>Bad Gateway</h1>"}, true},
		{"503 with temporarily_unavailable", reply{status: 503, contentType: jsonCT, body: `{"error":"temporarily_unavailable"}`}, true},
		{"504 without body", reply{status: 504}, true},
		{"500 with server_error", reply{status: 500, contentType: jsonCT, body: `{"error":"server_error"}`}, true},
		{"200 without access_token", okJSON(`{"token_type":"bearer"}`), true},
		{"200 cut short", okJSON(`{"access_token":"at-NEW","refresh_token":"rt-`), true},
		{"429", reply{status: 429}, false},
		{"408", reply{status: 408}, false},
		{"400 temporarily_unavailable", reply{status: 400, contentType: jsonCT, body: `{"error":"temporarily_unavailable"}`}, false},
		{"400 invalid_grant", reply{status: 400, contentType: jsonCT, body: `{"error":"invalid_grant"}`}, false},
		{"500 invalid_grant", reply{status: 500, contentType: jsonCT, body: `{"error":"invalid_grant"}`}, false},
	}
	for _, tt := range answered {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeProvider(t, always(tt.reply))
			_, err := newRefresher(t, srv, generic(srv.URL)).Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, domain.ErrProviderOutcomeUnknown); got != tt.unknown {
				t.Errorf("error %q: outcome unknown = %v, want %v", err, got, tt.unknown)
			}
			if tt.unknown && !errors.Is(err, domain.ErrProviderUnavailable) {
				t.Errorf("error %q: want ErrProviderUnavailable too", err)
			}
			assertNoSecrets(t, err.Error())
		})
	}
}

// TestRevokesPreviousAccessToken: each kind's documented default, and the
// setting overriding it.
func TestRevokesPreviousAccessToken(t *testing.T) {
	t.Parallel()
	srv, _ := fakeProvider(t, always(okJSON(`{}`)))
	no, yes := false, true
	cfgs := []oauth.ProviderConfig{
		{Name: "github", ClientID: "c", ClientSecret: domain.NewSecret(clientSecret)},
		{Name: "gitlab", ClientID: "c"},
		{Name: "bitbucket", ClientID: "c", ClientSecret: domain.NewSecret(clientSecret)},
		{Name: "azure_devops", ClientID: "c", Tenant: "contoso.onmicrosoft.com"},
		{Name: "keycloak", ClientID: "c", BaseURL: srv.URL, Realm: "r"},
		generic(srv.URL),
		{Name: "gitlab-self", Kind: oauth.KindGitLab, ClientID: "c", RevokesPreviousAccessToken: &no},
		{Name: "kc-revoking", Kind: oauth.KindKeycloak, ClientID: "c", BaseURL: srv.URL, Realm: "r", RevokesPreviousAccessToken: &yes},
		{Name: "stored", StoreOnly: true},
	}
	r := newRefresher(t, srv, cfgs...)
	for provider, want := range map[domain.Provider]bool{
		"github": true, "gitlab": true, "bitbucket": true, "azure_devops": false, "keycloak": false, "corp": true,
		"gitlab-self": false, "kc-revoking": true, "stored": false, "unknown": false,
	} {
		if got := r.RevokesPreviousAccessToken(provider); got != want {
			t.Errorf("RevokesPreviousAccessToken(%s) = %v, want %v", provider, got, want)
		}
	}
}
