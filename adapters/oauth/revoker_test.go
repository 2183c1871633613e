package oauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// Tokens the revocation tests hand to Revoke; no error may hold them.
const (
	revRefresh = "rt-REVOKE-5e6f7a8b9c"
	revAccess  = "at-REVOKE-0d1e2f3a4b"
)

// rfc7009Server is a fake authorization server whose revocation endpoint
// follows RFC 7009 strictly: a POST of a form with token and an optional
// token_type_hint (refresh_token or access_token), the client authenticated
// one way only (RFC 6749 §2.3.1), 200 for a revoked or unknown token; a
// revoked refresh token takes its grant's access token with it (§2.1).
type rfc7009Server struct {
	*httptest.Server
	clientID, secret string
	// accept is the client authentication it accepts ("" accepts both).
	accept oauth.AuthMethod

	mu   sync.Mutex
	seen []request
	// live holds the tokens that still work: refresh token → its access token.
	live map[string]string
	// fail answers the next requests with these replies first.
	fail []reply
	// noAccessTokens answers unsupported_token_type for access tokens (RFC
	// 7009 §2: a server MAY not revoke them); noHints does for any hint.
	noAccessTokens, noHints bool
}

func newRFC7009Server(t *testing.T, path string) *rfc7009Server {
	t.Helper()
	s := &rfc7009Server{clientID: "corp client", secret: clientSecret, live: map[string]string{revRefresh: revAccess}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := record(r)
		rep := s.answer(path, req)
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", jsonCT)
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func oauthError(status int, code string) reply {
	return reply{status: status, body: fmt.Sprintf(`{"error":%q}`, code)}
}

func (s *rfc7009Server) answer(path string, req request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, req)
	if len(s.fail) > 0 {
		rep := s.fail[0]
		s.fail = s.fail[1:]
		return rep
	}
	if req.method != http.MethodPost || req.path != path || req.contentType != formCT {
		return oauthError(400, "invalid_request")
	}
	for name := range req.form {
		if !slices.Contains([]string{"token", "token_type_hint", "client_id", "client_secret"}, name) {
			return oauthError(400, "invalid_request")
		}
		if len(req.form[name]) != 1 {
			return oauthError(400, "invalid_request")
		}
	}
	inBody := req.form.Has("client_secret")
	switch {
	case req.basic && inBody, req.basic && s.accept == oauth.AuthMethodClientSecretPost,
		inBody && s.accept == oauth.AuthMethodClientSecretBasic:
		return oauthError(401, "invalid_client")
	case req.basic && (req.user != s.clientID || req.pass != s.secret),
		!req.basic && (req.form.Get("client_id") != s.clientID || req.form.Get("client_secret") != s.secret):
		return oauthError(401, "invalid_client")
	}
	token, hint := req.form.Get("token"), req.form.Get("token_type_hint")
	switch {
	case token == "":
		return oauthError(400, "invalid_request")
	case hint != "" && (s.noHints || hint != "refresh_token" && hint != "access_token"):
		return oauthError(400, "unsupported_token_type")
	}
	if access, ok := s.live[token]; ok { // a refresh token: the grant goes
		delete(s.live, token)
		delete(s.live, access)
		return reply{status: 200}
	}
	if s.noAccessTokens && strings.HasPrefix(token, "at-") { // it knows its access tokens, live or not
		return oauthError(400, "unsupported_token_type")
	}
	for rt, at := range s.live {
		if at == token {
			s.live[rt] = ""
		}
	}
	return reply{status: 200} // RFC 7009 §2.2: an invalid token is no error
}

// requests returns what the server saw.
func (s *rfc7009Server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// alive reports whether token still works.
func (s *rfc7009Server) alive(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for rt, at := range s.live {
		if token == rt || token != "" && token == at {
			return true
		}
	}
	return false
}

func (s *rfc7009Server) failNext(replies ...reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, replies...)
}

func bothTokens() ports.RevocationRequest {
	return ports.RevocationRequest{RefreshToken: domain.NewSecret(revRefresh), AccessToken: domain.NewSecret(revAccess)}
}

// revocationSecrets are every secret a revocation test puts in flight.
var revocationSecrets = []string{revRefresh, revAccess, clientSecret, testlog.BasicCredential("corp client", clientSecret)}

// assertSafeError fails when err's text holds a secret in any encoding.
func assertSafeError(t *testing.T, err error, more ...string) {
	t.Helper()
	if err == nil {
		return
	}
	if secret, e := testlog.FindSecret(err.Error(), append(slices.Clone(revocationSecrets), more...)...); secret != "" {
		t.Errorf("error %q holds secret %q encoded as %q", err, secret, e)
	}
}

func newRevoker(t *testing.T, srv *httptest.Server, cfgs ...oauth.ProviderConfig) *oauth.Revoker {
	t.Helper()
	v, err := oauth.NewRevoker(cfgs, oauth.WithHTTPClient(srv.Client()), oauth.WithClock(func() time.Time { return t0 }))
	if err != nil {
		t.Fatalf("NewRevoker: %v", err)
	}
	return v
}

// revocable is an oauth2 provider revoking at base+"/revoke".
func revocable(base string, method oauth.AuthMethod) oauth.ProviderConfig {
	return oauth.ProviderConfig{
		Name: "corp", Kind: oauth.KindOAuth2, ClientID: "corp client", ClientSecret: domain.NewSecret(clientSecret),
		TokenURL: base + "/token", TokenEndpointAuthMethod: method,
		RevokeOnDelete: true, RevocationURL: base + "/revoke",
	}
}

// TestRevokeRFC7009 revokes at each RFC 7009 kind's endpoint, derived as
// documented, with the configured client authentication: the refresh token
// first with its hint, then the access token, and both are dead afterwards.
func TestRevokeRFC7009(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		path   string
		accept oauth.AuthMethod
		cfg    func(base string) oauth.ProviderConfig
		basic  bool
	}{
		{"oauth2 basic", "/revoke", oauth.AuthMethodClientSecretBasic,
			func(base string) oauth.ProviderConfig { return revocable(base, oauth.AuthMethodClientSecretBasic) }, true},
		{"oauth2 post", "/revoke", oauth.AuthMethodClientSecretPost,
			func(base string) oauth.ProviderConfig { return revocable(base, oauth.AuthMethodClientSecretPost) }, false},
		{"oauth2 auto probes to post", "/revoke", oauth.AuthMethodClientSecretPost,
			func(base string) oauth.ProviderConfig { return revocable(base, oauth.AuthMethodAuto) }, false},
		{"gitlab", "/oauth/revoke", "", func(base string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "gitlab", ClientID: "corp client", ClientSecret: domain.NewSecret(clientSecret),
				BaseURL: base, RevokeOnDelete: true}
		}, false},
		{"keycloak", "/realms/my%20realm/protocol/openid-connect/revoke", "", func(base string) oauth.ProviderConfig {
			return oauth.ProviderConfig{Name: "keycloak", ClientID: "corp client", ClientSecret: domain.NewSecret(clientSecret),
				BaseURL: base + "/", Realm: "my realm", RevokeOnDelete: true, TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRFC7009Server(t, tt.path)
			srv.accept = tt.accept
			cfg := tt.cfg(srv.URL)
			v := newRevoker(t, srv.Server, cfg)
			if !v.RevokesOnDelete(cfg.Name) {
				t.Fatalf("RevokesOnDelete(%s) = false", cfg.Name)
			}
			for round := range 2 { // the second round: the probe's finding is kept; the tokens are already dead
				if err := v.Revoke(context.Background(), cfg.Name, bothTokens()); err != nil {
					t.Fatalf("round %d: Revoke: %v", round, err)
				}
			}
			if srv.alive(revRefresh) || srv.alive(revAccess) {
				t.Errorf("tokens still alive after Revoke")
			}
			var accepted []request
			for _, r := range srv.requests() {
				if r.basic == tt.basic && (r.basic || r.form.Get("client_secret") == clientSecret) {
					accepted = append(accepted, r)
				}
			}
			if len(accepted) != 4 {
				t.Fatalf("accepted requests = %d, want 4 (2 per round): %+v", len(accepted), srv.requests())
			}
			if len(srv.requests()) > 5 {
				t.Errorf("requests = %d, want at most one probe more", len(srv.requests()))
			}
			for i, want := range []struct{ token, hint string }{{revRefresh, "refresh_token"}, {revAccess, "access_token"}} {
				if got := accepted[i].form; got.Get("token") != want.token || got.Get("token_type_hint") != want.hint {
					t.Errorf("request %d = token %q hint %q, want %q %q", i, got.Get("token"), got.Get("token_type_hint"), want.token, want.hint)
				}
			}
		})
	}
}

// TestRevokeClassifiesAnswers: each answer of a revocation endpoint is a
// success (revoked, already invalid) or an error of the documented kind,
// and no error holds a secret.
func TestRevokeClassifiesAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		replies []reply
		tokens  ports.RevocationRequest
		want    error // nil: success
		retryAt time.Time
		words   []string
	}{
		{"unknown token is revoked already", nil, ports.RevocationRequest{RefreshToken: domain.NewSecret("rt-never-issued-1234")}, nil, time.Time{}, nil},
		{"invalid_token is revoked already", []reply{oauthError(400, "invalid_token"), oauthError(400, "invalid_token")}, bothTokens(), nil, time.Time{}, nil},
		{"503 is transient", []reply{{status: 503}}, bothTokens(), domain.ErrProviderUnavailable, time.Time{}, []string{"corp: HTTP 503"}},
		{"503 with Retry-After says when", []reply{{status: 503, header: map[string]string{"Retry-After": "30"}}}, bothTokens(),
			domain.ErrProviderUnavailable, t0.Add(30 * time.Second), nil},
		{"429 with Retry-After seconds", []reply{{status: 429, header: map[string]string{"Retry-After": "120"}}}, bothTokens(),
			domain.ErrProviderUnavailable, t0.Add(2 * time.Minute), []string{"HTTP 429"}},
		{"429 with Retry-After date", []reply{{status: 429, header: map[string]string{"Retry-After": t0.Add(time.Hour).Format(http.TimeFormat)}}},
			bothTokens(), domain.ErrProviderUnavailable, t0.Add(time.Hour), nil},
		{"429 with a Retry-After of years is capped", []reply{{status: 429, header: map[string]string{"Retry-After": "99999999999"}}},
			bothTokens(), domain.ErrProviderUnavailable, t0.Add(24 * time.Hour), nil},
		{"temporarily_unavailable is transient", []reply{oauthError(400, "temporarily_unavailable")}, bothTokens(),
			domain.ErrProviderUnavailable, time.Time{}, []string{"temporarily_unavailable"}},
		{"invalid_client is permanent", []reply{oauthError(400, "invalid_client")}, bothTokens(),
			domain.ErrRevocationRejected, time.Time{}, []string{"HTTP 400", "error invalid_client"}},
		{"404 is permanent", []reply{{status: 404}}, bothTokens(), domain.ErrRevocationRejected, time.Time{}, []string{"HTTP 404"}},
		{"an access token refused after its refresh token failed", []reply{{status: 200}, oauthError(401, "unauthorized_client")},
			bothTokens(), domain.ErrRevocationRejected, time.Time{}, []string{"unauthorized_client"}},
		{"unsupported_token_type with and without the hint", []reply{oauthError(400, "unsupported_token_type"), oauthError(400, "unsupported_token_type")},
			bothTokens(), domain.ErrRevocationRejected, time.Time{}, []string{"unsupported_token_type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRFC7009Server(t, "/revoke")
			srv.failNext(tt.replies...)
			v := newRevoker(t, srv.Server, revocable(srv.URL, oauth.AuthMethodClientSecretBasic))
			err := v.Revoke(context.Background(), "corp", tt.tokens)
			assertSafeError(t, err)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Revoke = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Revoke = %v, want %v", err, tt.want)
			}
			for _, other := range []error{domain.ErrProviderUnavailable, domain.ErrRevocationRejected, domain.ErrRevocationNotSupported} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Revoke = %v: also %v", err, other)
				}
			}
			var ra *domain.RetryAtError
			if got := errors.As(err, &ra); got != !tt.retryAt.IsZero() || got && !ra.At.Equal(tt.retryAt) {
				t.Errorf("RetryAtError = %v (%v), want at %v", got, ra, tt.retryAt)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Revoke = %q, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestRevokeProviderFailingForAWhile: a provider down for three attempts,
// then back: each failed attempt is transient, and the retry after it
// revokes both tokens.
func TestRevokeProviderFailingForAWhile(t *testing.T) {
	t.Parallel()
	srv := newRFC7009Server(t, "/revoke")
	srv.failNext(reply{status: 502}, reply{status: 200}, reply{status: 503}, reply{status: 500})
	v := newRevoker(t, srv.Server, revocable(srv.URL, oauth.AuthMethodClientSecretBasic))
	attempts := 0
	for {
		attempts++
		err := v.Revoke(context.Background(), "corp", bothTokens())
		if err == nil {
			break
		}
		assertSafeError(t, err)
		if !errors.Is(err, domain.ErrProviderUnavailable) || attempts > 10 {
			t.Fatalf("attempt %d: Revoke = %v, want ErrProviderUnavailable until the provider is back", attempts, err)
		}
	}
	if attempts != 4 {
		t.Errorf("attempts = %d, want 4 (3 failed: 502; 200 then 503; 500)", attempts)
	}
	if srv.alive(revRefresh) || srv.alive(revAccess) {
		t.Error("tokens alive after the provider came back")
	}
}

// TestRevokeUnsupportedTokenType: a server that refuses token_type_hint
// values takes the token without the hint; one that does not revoke access
// tokens (RFC 7009 §2 allows it) is enough with the refresh token revoked,
// and says so when only an access token was given.
func TestRevokeUnsupportedTokenType(t *testing.T) {
	t.Parallel()
	t.Run("hint refused", func(t *testing.T) {
		t.Parallel()
		srv := newRFC7009Server(t, "/revoke")
		srv.noHints = true
		v := newRevoker(t, srv.Server, revocable(srv.URL, oauth.AuthMethodClientSecretBasic))
		if err := v.Revoke(context.Background(), "corp", bothTokens()); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		var hints []string
		for _, r := range srv.requests() {
			hints = append(hints, r.form.Get("token_type_hint"))
		}
		if want := []string{"refresh_token", "", "access_token", ""}; !slices.Equal(hints, want) {
			t.Errorf("hints sent = %q, want %q", hints, want)
		}
		if srv.alive(revRefresh) {
			t.Error("refresh token alive")
		}
	})
	t.Run("access tokens not revoked", func(t *testing.T) {
		t.Parallel()
		srv := newRFC7009Server(t, "/revoke")
		srv.noAccessTokens = true
		srv.live["rt-other-grant-777"] = "at-other-grant-777"
		v := newRevoker(t, srv.Server, revocable(srv.URL, oauth.AuthMethodClientSecretBasic))
		if err := v.Revoke(context.Background(), "corp", bothTokens()); err != nil {
			t.Fatalf("Revoke with the refresh token: %v", err)
		}
		err := v.Revoke(context.Background(), "corp", ports.RevocationRequest{AccessToken: domain.NewSecret("at-other-grant-777")})
		if !errors.Is(err, domain.ErrRevocationNotSupported) || !strings.Contains(err.Error(), "stays valid until it expires") {
			t.Errorf("Revoke of an access token alone = %v, want ErrRevocationNotSupported", err)
		}
		assertSafeError(t, err, "at-other-grant-777")
	})
}

// TestRevokeRefusesRedirects: a revocation endpoint that redirects is
// misconfigured; following it would post the tokens and the client secret
// to another server.
func TestRevokeRefusesRedirects(t *testing.T) {
	t.Parallel()
	elsewhere, seen := fakeProvider(t, always(reply{status: 200}))
	srv := newRFC7009Server(t, "/revoke")
	srv.failNext(reply{status: 307, header: map[string]string{"Location": elsewhere.URL + "/revoke"}})
	v := newRevoker(t, srv.Server, revocable(srv.URL, oauth.AuthMethodClientSecretBasic))
	err := v.Revoke(context.Background(), "corp", bothTokens())
	if !errors.Is(err, domain.ErrRevocationRejected) || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Errorf("Revoke = %v, want ErrRevocationRejected naming the redirect", err)
	}
	assertSafeError(t, err)
	if got := drain(seen); len(got) != 0 {
		t.Errorf("the redirect was followed: %d requests elsewhere", len(got))
	}
}

// TestRevokeTimeout: a provider that never answers fails the attempt as
// transient within the provider's timeout (the test does not measure it).
func TestRevokeTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	cfg := revocable(srv.URL, oauth.AuthMethodClientSecretBasic)
	cfg.Timeout = 100 * time.Millisecond
	v := newRevoker(t, srv, cfg)
	err := v.Revoke(context.Background(), "corp", bothTokens())
	if !errors.Is(err, domain.ErrProviderUnavailable) {
		t.Errorf("Revoke = %v, want ErrProviderUnavailable", err)
	}
	assertSafeError(t, err)
}

// TestRevokeEchoedSecretsAreScrubbed: a revocation endpoint that echoes
// the request (the form, the Authorization header) in its error answer
// never gets a secret into the error.
func TestRevokeEchoedSecretsAreScrubbed(t *testing.T) {
	t.Parallel()
	echoes := map[string]func(request) string{
		"the body":                 func(r request) string { return r.body },
		"the form as JSON":         func(r request) string { b, _ := json.Marshal(r.form); return string(b) },
		"the Authorization header": func(r request) string { return r.authorization + " " + r.pass },
	}
	for name, echo := range echoes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeProvider(t, func(r request) reply {
				b, _ := json.Marshal(map[string]string{"error": "invalid_request", "error_description": "got " + echo(r)})
				return reply{status: 400, contentType: jsonCT, body: string(b)}
			})
			cfg := revocable(srv.URL, oauth.AuthMethodClientSecretBasic)
			cfg.ClientID, cfg.ClientSecret = hardID, domain.NewSecret(hardSecret)
			v := newRevoker(t, srv, cfg)
			tokens := ports.RevocationRequest{RefreshToken: domain.NewSecret(hardRefresh), AccessToken: domain.NewSecret(revAccess)}
			err := v.Revoke(context.Background(), "corp", tokens)
			if !errors.Is(err, domain.ErrRevocationRejected) || !strings.Contains(err.Error(), "got") {
				t.Fatalf("Revoke = %v, want ErrRevocationRejected with the provider's words", err)
			}
			assertNoSecretEncoded(t, "error", err.Error(), hardRefresh, revAccess, hardSecret, testlog.BasicCredential(hardID, hardSecret))
		})
	}
}

// TestRevokeNotAvailable: kinds without a revocation API, providers
// without revoke_on_delete, unknown providers and empty requests.
func TestRevokeNotAvailable(t *testing.T) {
	t.Parallel()
	srv, seen := fakeProvider(t, always(reply{status: 200}))
	v := newRevoker(t, srv,
		oauth.ProviderConfig{Name: "bitbucket", ClientID: "id", ClientSecret: domain.NewSecret(clientSecret)},
		oauth.ProviderConfig{Name: "azure_devops", ClientID: "id", Tenant: "common"},
		generic(srv.URL),
		oauth.ProviderConfig{Name: "internal-ci", StoreOnly: true},
		func() oauth.ProviderConfig {
			c := revocable(srv.URL, oauth.AuthMethodClientSecretBasic)
			c.Name = "corp-revoking"
			return c
		}(),
	)
	v2 := newRevoker(t, srv, oauth.ProviderConfig{Name: "github", ClientID: "id", ClientSecret: domain.NewSecret(clientSecret),
		NeverExpires: true, RevokeOnDelete: true, APIURL: srv.URL})
	for _, p := range []domain.Provider{"bitbucket", "azure_devops", "corp", "internal-ci", "nobody"} {
		if v.RevokesOnDelete(p) {
			t.Errorf("RevokesOnDelete(%s) = true", p)
		}
		err := v.Revoke(context.Background(), p, bothTokens())
		if !errors.Is(err, domain.ErrRevocationNotSupported) {
			t.Errorf("Revoke(%s) = %v, want ErrRevocationNotSupported", p, err)
		}
	}
	if err := v.Revoke(context.Background(), "corp-revoking", ports.RevocationRequest{}); !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Revoke(nothing) = %v, want ErrInvalid", err)
	}
	// A GitHub OAuth App (never_expires) has no refresh token to get an access token with.
	err := v2.Revoke(context.Background(), "github", ports.RevocationRequest{RefreshToken: domain.NewSecret(revRefresh)})
	if !errors.Is(err, domain.ErrInvalid) {
		t.Errorf("Revoke(github, refresh token only, never_expires) = %v, want ErrInvalid", err)
	}
	if got := drain(seen); len(got) != 0 {
		t.Errorf("%d requests reached a provider", len(got))
	}
}

// githubServer is a fake GitHub: the REST API's "Delete an app
// authorization" (DELETE /api/v3/applications/{client_id}/grant, Basic auth
// with the client ID and secret as they are, JSON body {"access_token"}),
// answering 204 and deleting every token of the grant for a live access
// token, 404 for any other; and the token endpoint, refreshing a live
// refresh token with rotation (the old one dies) or answering
// bad_refresh_token with HTTP 200, as GitHub does.
type githubServer struct {
	*httptest.Server
	mu      sync.Mutex
	seen    []request
	access  map[string]bool // live access tokens
	refresh map[string]bool // live refresh tokens
	fail    []reply         // answered first, in order
	issued  int
}

const ghClientID = "Iv1.8a61f9b3a7aba766"

func newGitHubServer(t *testing.T) *githubServer {
	t.Helper()
	g := &githubServer{access: map[string]bool{revAccess: true}, refresh: map[string]bool{revRefresh: true}}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := g.answer(record(r))
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		if rep.body != "" {
			w.Header().Set("Content-Type", jsonCT)
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *githubServer) answer(req request) reply {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = append(g.seen, req)
	if len(g.fail) > 0 {
		rep := g.fail[0]
		g.fail = g.fail[1:]
		if rep.status != 0 { // a zero reply answers as GitHub would
			return rep
		}
	}
	switch req.path {
	case "/login/oauth/access_token":
		rt := req.form.Get("refresh_token")
		if req.form.Get("grant_type") != "refresh_token" || req.form.Get("client_secret") != clientSecret || !g.refresh[rt] {
			return okJSON(`{"error":"bad_refresh_token"}`)
		}
		delete(g.refresh, rt)
		g.issued++
		at, newRT := fmt.Sprintf("ghu_fresh%d-abcdef", g.issued), fmt.Sprintf("ghr_fresh%d-abcdef", g.issued)
		g.access[at], g.refresh[newRT] = true, true
		return okJSON(fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"expires_in":28800}`, at, newRT))
	case "/api/v3/applications/" + ghClientID + "/grant":
	default:
		return reply{status: 404, body: `{"message":"Not Found"}`}
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	dec := json.NewDecoder(strings.NewReader(req.body))
	dec.DisallowUnknownFields()
	switch {
	case req.method != http.MethodDelete, req.contentType != "application/json",
		req.accept != "application/vnd.github+json":
		return reply{status: 400, body: `{"message":"Bad request"}`}
	case !req.basic || req.user != ghClientID || req.pass != clientSecret:
		return reply{status: 404, body: `{"message":"Not Found"}`} // GitHub hides the app from a wrong secret
	case dec.Decode(&body) != nil || body.AccessToken == "":
		return reply{status: 422, body: `{"message":"Validation Failed"}`}
	case !g.access[body.AccessToken]:
		return reply{status: 404, body: `{"message":"Not Found"}`}
	}
	clear(g.access) // the grant and every token of it
	clear(g.refresh)
	return reply{status: 204}
}

func (g *githubServer) dead() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.access) == 0 && len(g.refresh) == 0
}

func (g *githubServer) paths() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, r := range g.seen {
		out = append(out, r.method+" "+r.path)
	}
	return out
}

const (
	ghDelete  = "DELETE /api/v3/applications/" + ghClientID + "/grant"
	ghRefresh = "POST /login/oauth/access_token"
)

func githubApp(base string, neverExpires bool) oauth.ProviderConfig {
	return oauth.ProviderConfig{Name: "github", ClientID: ghClientID, ClientSecret: domain.NewSecret(clientSecret),
		BaseURL: base, NeverExpires: neverExpires, RevokeOnDelete: true}
}

// TestRevokeGitHubGrant deletes the grant through GitHub's API shape, with
// a fresh access token when GitHub no longer knows the stored one and a
// refresh token can get one.
func TestRevokeGitHubGrant(t *testing.T) {
	t.Parallel()
	expired := ports.RevocationRequest{RefreshToken: domain.NewSecret(revRefresh), AccessToken: domain.NewSecret("ghu_expired-123456")}
	tests := []struct {
		name         string
		neverExpires bool
		tokens       ports.RevocationRequest
		deadRefresh  bool // the stored refresh token was already rotated away
		fail         []reply
		want         error
		paths        []string
		dead         bool
	}{
		{"live access token", false, bothTokens(), false, nil, nil, []string{ghDelete}, true},
		{"OAuth App, live token", true, ports.RevocationRequest{AccessToken: domain.NewSecret(revAccess)}, false, nil, nil, []string{ghDelete}, true},
		{"OAuth App, token already gone", true, ports.RevocationRequest{AccessToken: domain.NewSecret("gho_gone-123456")}, false, nil, nil, []string{ghDelete}, false},
		{"GitHub App, access token expired", false, expired, false, nil, nil, []string{ghDelete, ghRefresh, ghDelete}, true},
		{"GitHub App, refresh token only", false, ports.RevocationRequest{RefreshToken: domain.NewSecret(revRefresh)}, false, nil, nil,
			[]string{ghRefresh, ghDelete}, true},
		{"GitHub App, grant already gone", false, expired, true, nil, nil, []string{ghDelete, ghRefresh}, false},
		{"422 is already gone", true, bothTokens(), false, []reply{{status: 422}}, nil, []string{ghDelete}, false},
		{"401 is permanent", false, bothTokens(), false, []reply{{status: 401, body: `{"message":"Bad credentials"}`}},
			domain.ErrRevocationRejected, []string{ghDelete}, false},
		{"500 is transient", false, bothTokens(), false, []reply{{status: 500}}, domain.ErrProviderUnavailable, []string{ghDelete}, false},
		{"refresh failing is transient", false, expired, false, []reply{{status: 404}, {status: 502}},
			domain.ErrProviderUnavailable, []string{ghDelete, ghRefresh}, false},
		{"a fresh access token unknown: wrong grant URL", false, expired, false, []reply{{status: 404}, {}, {status: 404}},
			domain.ErrRevocationRejected, []string{ghDelete, ghRefresh, ghDelete}, false},
		{"refresh refusing the client is permanent", false, expired, false, []reply{{status: 404}, okJSON(`{"error":"incorrect_client_credentials"}`)},
			domain.ErrRevocationRejected, []string{ghDelete, ghRefresh}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGitHubServer(t)
			if tt.deadRefresh {
				clear(g.refresh)
			}
			g.fail = tt.fail
			v := newRevoker(t, g.Server, githubApp(g.URL, tt.neverExpires))
			err := v.Revoke(context.Background(), "github", tt.tokens)
			assertSafeError(t, err, "ghu_expired-123456", "ghu_fresh1-abcdef", "ghr_fresh1-abcdef")
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Revoke = %v, want %v", err, tt.want)
			}
			if got := g.paths(); !slices.Equal(got, tt.paths) {
				t.Errorf("requests = %q, want %q", got, tt.paths)
			}
			if tt.dead && !g.dead() {
				t.Error("the grant's tokens are still alive")
			}
		})
	}
}

// TestRevokeGitHubRateLimit: GitHub's rate limits (403 or 429 with
// X-Ratelimit-Remaining 0 or Retry-After) are transient, retried when
// GitHub says.
func TestRevokeGitHubRateLimit(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		reply reply
		at    time.Time
	}{
		"403 primary limit": {reply{status: 403, header: map[string]string{"X-Ratelimit-Remaining": "0",
			"X-Ratelimit-Reset": fmt.Sprint(t0.Add(10 * time.Minute).Unix())}}, t0.Add(10 * time.Minute)},
		"403 secondary limit": {reply{status: 403, header: map[string]string{"Retry-After": "60"}}, t0.Add(time.Minute)},
		"429":                 {reply{status: 429, header: map[string]string{"Retry-After": "5"}}, t0.Add(5 * time.Second)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newGitHubServer(t)
			g.fail = []reply{tt.reply}
			v := newRevoker(t, g.Server, githubApp(g.URL, false))
			err := v.Revoke(context.Background(), "github", bothTokens())
			var ra *domain.RetryAtError
			if !errors.Is(err, domain.ErrProviderUnavailable) || !errors.As(err, &ra) || !ra.At.Equal(tt.at) {
				t.Fatalf("Revoke = %v (%+v), want ErrProviderUnavailable retrying at %v", err, ra, tt.at)
			}
			if err := v.Revoke(context.Background(), "github", bothTokens()); err != nil || !g.dead() {
				t.Errorf("retry: Revoke = %v, dead = %v", err, g.dead())
			}
		})
	}
	// A 403 that is no rate limit is permanent.
	g := newGitHubServer(t)
	g.fail = []reply{{status: 403, body: `{"message":"Forbidden"}`}}
	v := newRevoker(t, g.Server, githubApp(g.URL, false))
	if err := v.Revoke(context.Background(), "github", bothTokens()); !errors.Is(err, domain.ErrRevocationRejected) {
		t.Errorf("Revoke after a plain 403 = %v, want ErrRevocationRejected", err)
	}
}

// TestRevocationEndpoints: each kind's default revocation endpoint, and
// the settings that move it.
func TestRevocationEndpoints(t *testing.T) {
	t.Parallel()
	secret := domain.NewSecret(clientSecret)
	tests := []struct {
		name string
		cfg  oauth.ProviderConfig
		want string
	}{
		{"github.com", oauth.ProviderConfig{Name: "github", ClientID: "Iv1.x", ClientSecret: secret, RevokeOnDelete: true},
			"https://api.github.com/applications/Iv1.x/grant"},
		{"github enterprise server", oauth.ProviderConfig{Name: "github", ClientID: "Iv1.x", ClientSecret: secret, RevokeOnDelete: true,
			BaseURL: "https://ghe.example.com/"}, "https://ghe.example.com/api/v3/applications/Iv1.x/grant"},
		{"github api_url", oauth.ProviderConfig{Name: "github", ClientID: "Iv1.x", ClientSecret: secret, RevokeOnDelete: true,
			BaseURL: "https://corp.ghe.com", APIURL: "https://api.corp.ghe.com/"}, "https://api.corp.ghe.com/applications/Iv1.x/grant"},
		{"gitlab.com", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", RevokeOnDelete: true}, "https://gitlab.com/oauth/revoke"},
		{"gitlab self-hosted", oauth.ProviderConfig{Name: "gitlab", ClientID: "id", RevokeOnDelete: true, BaseURL: "https://example.com/gitlab/"},
			"https://example.com/gitlab/oauth/revoke"},
		{"keycloak", oauth.ProviderConfig{Name: "keycloak", ClientID: "id", RevokeOnDelete: true, BaseURL: "https://kc.example.com/auth", Realm: "main"},
			"https://kc.example.com/auth/realms/main/protocol/openid-connect/revoke"},
		{"keycloak revocation_url", oauth.ProviderConfig{Name: "keycloak", ClientID: "id", RevokeOnDelete: true,
			TokenURL: "https://proxy.example.com/kc/token", RevocationURL: "https://proxy.example.com/kc/revoke"}, "https://proxy.example.com/kc/revoke"},
		{"oauth2", oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: "id", TokenURL: "https://idp.example.com/token",
			RevokeOnDelete: true, RevocationURL: "https://idp.example.com/revoke"}, "https://idp.example.com/revoke"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, seen := fakeProvider(t, always(reply{status: 200}))
			target, _ := url.Parse(srv.URL)
			client := &http.Client{Transport: rewriteTransport{target: target, base: srv.Client().Transport}}
			v, err := oauth.NewRevoker([]oauth.ProviderConfig{tt.cfg}, oauth.WithHTTPClient(client))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Revoke(t.Context(), tt.cfg.Name, ports.RevocationRequest{AccessToken: domain.NewSecret(revAccess)}); err != nil {
				t.Fatal(err)
			}
			reqs := drain(seen)
			if len(reqs) != 1 || reqs[0].origURL != tt.want {
				t.Fatalf("requests = %+v, want one to %s", reqs, tt.want)
			}
		})
	}
}
