package delivery_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// How a fake provider answers.
type answerMode int

const (
	answerOK answerMode = iota
	// answerUnavailable: 503 with an HTML page, as a failing proxy would.
	answerUnavailable
	// answerInvalidClient: 401 invalid_client, a permanent refusal.
	answerInvalidClient
)

// revocation is one request a fake provider got.
type revocation struct {
	token  string // the token the request revokes
	hint   string // token_type_hint (RFC 7009)
	authOK bool   // the client authenticated as configured
	status int    // what the fake answered
}

// rfc7009Provider is a fake authorization server's RFC 7009 revocation
// endpoint: POST /revoke, a form with token and token_type_hint (nothing
// else), the client authenticated with HTTP Basic (client_secret_basic:
// RFC 6749 §2.3.1, the id and secret form-encoded first); 200 for a token
// revoked or unknown (RFC 7009 §2.2), 400 invalid_request for a malformed
// request. Its mode makes it fail instead.
type rfc7009Provider struct {
	*server
	clientID, secret string

	mu   sync.Mutex
	mode answerMode
	seen []revocation
}

func (s *suite) newRFC7009Provider(name string) *rfc7009Provider {
	s.t.Helper()
	p := &rfc7009Provider{clientID: name + " client", secret: "cs/" + name + "+" + randHex(12) + "=%"}
	s.secrets.add(p.secret, testlog.BasicCredential(p.clientID, p.secret))
	p.server = serve(s.t, http.HandlerFunc(p.serveHTTP))
	return p
}

// config is the provider entry tokenstore gets: kind oauth2,
// revoke_on_delete with the fake's revocation_url.
func (p *rfc7009Provider) config(name string) oauth.ProviderConfig {
	return oauth.ProviderConfig{
		Name: domain.Provider(name), Kind: oauth.KindOAuth2, ClientID: p.clientID, ClientSecret: domain.NewSecret(p.secret),
		TokenURL: p.URL() + "/token", TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic,
		RevokeOnDelete: true, RevocationURL: p.URL() + "/revoke",
	}
}

func (p *rfc7009Provider) setMode(m answerMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

func (p *rfc7009Provider) requests() []revocation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

func (p *rfc7009Provider) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rev := revocation{}
	user, pass, basic := r.BasicAuth()
	user, errU := url.QueryUnescape(user)
	pass, errP := url.QueryUnescape(pass)
	rev.authOK = basic && errU == nil && errP == nil && user == p.clientID && pass == p.secret
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	wellFormed := r.Method == http.MethodPost && r.URL.Path == "/revoke" && ct == "application/x-www-form-urlencoded" &&
		r.ParseForm() == nil && len(r.URL.RawQuery) == 0
	if wellFormed {
		for name, values := range r.PostForm {
			if name != "token" && name != "token_type_hint" || len(values) != 1 {
				wellFormed = false
			}
		}
		rev.token, rev.hint = r.PostForm.Get("token"), r.PostForm.Get("token_type_hint")
		wellFormed = wellFormed && rev.token != ""
	}

	p.mu.Lock()
	mode := p.mode
	switch {
	case mode == answerUnavailable:
		rev.status = http.StatusServiceUnavailable
	case mode == answerInvalidClient || !rev.authOK:
		rev.status = http.StatusUnauthorized
	case !wellFormed:
		rev.status = http.StatusBadRequest
	default:
		rev.status = http.StatusOK
	}
	p.seen = append(p.seen, rev)
	p.mu.Unlock()

	switch rev.status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(rev.status)
		_, _ = io.WriteString(w, "<html><body>503 Service Unavailable</body></html>")
	case http.StatusUnauthorized:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
		w.WriteHeader(rev.status)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
	case http.StatusBadRequest:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rev.status)
		_, _ = io.WriteString(w, `{"error":"invalid_request"}`)
	default:
		w.WriteHeader(rev.status)
	}
}

// githubAPI is a fake GitHub REST API's "Delete an app authorization":
// DELETE /applications/{client_id}/grant with HTTP Basic of the client id
// and secret as they are, Accept application/vnd.github+json and the JSON
// body {"access_token": ...}; 204 and the grant deleted for a live access
// token, 404 for any other (and for a wrong client), 422 for a bad body.
// Access tokens in failFor are answered 503.
type githubAPI struct {
	*server
	clientID, secret string

	mu      sync.Mutex
	live    map[string]bool // access tokens of live grants
	failFor map[string]bool
	seen    []revocation
}

func (s *suite) newGitHubAPI() *githubAPI {
	s.t.Helper()
	g := &githubAPI{clientID: "Iv1." + randHex(8), secret: randHex(20), live: map[string]bool{}, failFor: map[string]bool{}}
	s.secrets.add(g.secret, testlog.BasicCredential(g.clientID, g.secret),
		base64.StdEncoding.EncodeToString([]byte(g.clientID+":"+g.secret)))
	g.server = serve(s.t, http.HandlerFunc(g.serveHTTP))
	return g
}

// config is the provider entry: a GitHub OAuth App (tokens never expire)
// revoking through the fake's api_url.
func (g *githubAPI) config() oauth.ProviderConfig {
	return oauth.ProviderConfig{Name: domain.ProviderGitHub, Kind: oauth.KindGitHub, ClientID: g.clientID,
		ClientSecret: domain.NewSecret(g.secret), NeverExpires: true, RevokeOnDelete: true, APIURL: g.URL()}
}

// grant makes access a live grant's token; failing makes the fake answer
// 503 to its deletion.
func (g *githubAPI) grant(access string, failing bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live[access] = true
	g.failFor[access] = failing
}

func (g *githubAPI) alive(access string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live[access]
}

func (g *githubAPI) requests() []revocation {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.seen)
}

func (g *githubAPI) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rev := revocation{}
	user, pass, basic := r.BasicAuth()
	rev.authOK = basic && user == g.clientID && pass == g.secret
	var body struct {
		AccessToken string `json:"access_token"`
	}
	raw, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	bodyOK := dec.Decode(&body) == nil && body.AccessToken != ""
	rev.token = body.AccessToken

	g.mu.Lock()
	switch {
	case r.Method != http.MethodDelete || r.URL.Path != "/applications/"+g.clientID+"/grant" || !rev.authOK:
		rev.status = http.StatusNotFound
	case r.Header.Get("Accept") != "application/vnd.github+json" || r.Header.Get("Content-Type") != "application/json" || !bodyOK:
		rev.status = http.StatusUnprocessableEntity
	case g.failFor[rev.token]:
		rev.status = http.StatusServiceUnavailable
	case g.live[rev.token]:
		delete(g.live, rev.token)
		rev.status = http.StatusNoContent
	default:
		rev.status = http.StatusNotFound
	}
	g.seen = append(g.seen, rev)
	g.mu.Unlock()
	if rev.status != http.StatusNoContent {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rev.status)
		_, _ = fmt.Fprintf(w, `{"message":%q}`, http.StatusText(rev.status))
		return
	}
	w.WriteHeader(rev.status)
}

// userEvents are the feed's events of user and provider, in order.
func (c *cluster) userEvents(t *testing.T, user, provider string) []feedEvent {
	t.Helper()
	var out []feedEvent
	for _, e := range c.feedAll(t) {
		if e.User == user && e.provider() == provider {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for the feed to hold an event of kind for user and
// provider, and returns the user's events then.
func (c *cluster) waitEvent(t *testing.T, user, provider string, kind domain.EventKind) []feedEvent {
	t.Helper()
	var events []feedEvent
	eventually(t, fmt.Sprintf("a %s event for %s/%s", kind, user, provider), func() (bool, string) {
		events = c.userEvents(t, user, provider)
		return slices.ContainsFunc(events, func(e feedEvent) bool { return e.Kind == string(kind) }), fmt.Sprint(kindsOf(events))
	})
	return events
}

func kindsOf(events []feedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Kind
		if e.reason() != "" {
			out[i] += " " + e.reason()
		}
	}
	return out
}

// kept reports whether the tokens.deleted event of user and provider
// still holds the deleted tokens (sealed), and fails t if only some of
// them are left.
func (c *cluster) kept(t *testing.T, user, provider string) bool {
	t.Helper()
	var key, access, refresh bool
	if err := c.run.DB.QueryRow(context.Background(), `
		SELECT key_id IS NOT NULL, access_token IS NOT NULL, refresh_token IS NOT NULL FROM events
		WHERE kind = 'tokens.deleted' AND user_id = $1 AND provider = $2`, user, provider).Scan(&key, &access, &refresh); err != nil {
		t.Fatal(err)
	}
	if key != access {
		t.Errorf("the tokens.deleted event of %s/%s: key id kept %v, access token kept %v", user, provider, key, access)
	}
	return access
}

// revocationDelivery is the state and attempts of the revocation of
// user's provider tokens.
func (c *cluster) revocationDelivery(t *testing.T, user, provider string) (state string, attempts int) {
	t.Helper()
	if err := c.run.DB.QueryRow(context.Background(), `
		SELECT state, attempts FROM deliveries WHERE target = $1 AND user_id = $2 AND provider = $3`,
		domain.RevocationTarget, user, provider).Scan(&state, &attempts); err != nil {
		t.Fatal(err)
	}
	return state, attempts
}

// TestRevocation: with revoke_on_delete, DELETE .../tokens answers 204 at
// once whatever the provider does, and the deleted tokens are then revoked
// from the outbox: through an RFC 7009 endpoint failing for a while (the
// refresh token first, then the access token), refused for good by a
// provider that does not accept the client, and through GitHub's grant
// deletion, which is skipped when the user stored tokens again meanwhile.
// Each outcome is an event; revoked tokens leave the event row.
func TestRevocation(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	flaky, refusing, github := s.newRFC7009Provider("corp"), s.newRFC7009Provider("strict"), s.newGitHubAPI()
	refusing.setMode(answerInvalidClient)
	c := s.start(setup{instances: 2, providers: []oauth.ProviderConfig{flaky.config("corp"), refusing.config("strict"), github.config()}})

	t.Run("RFC 7009 provider failing for a while", func(t *testing.T) {
		t.Parallel()
		flaky.setMode(answerUnavailable)
		p := c.putTokens(t, 0, "leaver", "corp", false)
		c.deleteTokens(t, 1, "leaver", "corp") // answered while the provider fails
		eventually(t, "three failed revocation attempts", func() (bool, string) {
			n := len(flaky.requests())
			return n >= 3, fmt.Sprintf("%d requests", n)
		})
		for _, r := range flaky.requests() {
			if r.token != p.refresh || r.hint != "refresh_token" {
				t.Errorf("a failed attempt sent token_type_hint %q and not the refresh token first", r.hint)
			}
		}
		if events := c.userEvents(t, "leaver", "corp"); len(events) != 2 {
			t.Errorf("while the provider fails the feed holds %q, want tokens.stored and tokens.deleted only", kindsOf(events))
		}
		if !c.kept(t, "leaver", "corp") {
			t.Error("the tokens were dropped before they were revoked")
		}

		flaky.setMode(answerOK)
		events := c.waitEvent(t, "leaver", "corp", domain.EventRevocationSucceeded)
		if got, want := kindsOf(events), []string{"tokens.stored", "tokens.deleted", "revocation.succeeded"}; !slices.Equal(got, want) {
			t.Errorf("events of leaver/corp: %q, want %q", got, want)
		}
		all := flaky.requests()
		var ok []revocation
		for _, r := range all {
			if r.status == http.StatusOK {
				ok = append(ok, r)
			}
		}
		want := []revocation{{token: p.refresh, hint: "refresh_token", authOK: true, status: 200}, {token: p.access, hint: "access_token", authOK: true, status: 200}}
		if !slices.Equal(ok, want) || all[len(all)-1] != want[1] {
			t.Errorf("the provider revoked %d tokens (%v), want the refresh token, then the access token, each with its hint and the client's credentials",
				len(ok), describe(ok, p))
		}
		if c.kept(t, "leaver", "corp") {
			t.Error("the revoked tokens are still kept in the tokens.deleted event")
		}
		if state, attempts := c.revocationDelivery(t, "leaver", "corp"); state != "delivered" || attempts < 4 {
			t.Errorf("the revocation is %s after %d attempts, want delivered after at least 4", state, attempts)
		}
	})

	t.Run("RFC 7009 provider refusing the client", func(t *testing.T) {
		t.Parallel()
		p := c.putTokens(t, 1, "refused", "strict", false)
		c.deleteTokens(t, 0, "refused", "strict")
		events := c.waitEvent(t, "refused", "strict", domain.EventRevocationFailed)
		if got, want := kindsOf(events), []string{"tokens.stored", "tokens.deleted", "revocation.failed " + domain.CodeRevocationRejected}; !slices.Equal(got, want) {
			t.Errorf("events of refused/strict: %q, want %q", got, want)
		}
		if state, attempts := c.revocationDelivery(t, "refused", "strict"); state != "failed" || attempts != 1 {
			t.Errorf("the revocation is %s after %d attempts, want failed after 1 (a refusal is not retried)", state, attempts)
		}
		if got := refusing.requests(); len(got) != 1 || got[0].token != p.refresh || got[0].status != http.StatusUnauthorized {
			t.Errorf("the provider got %v, want one request for the refresh token", describe(got, p))
		}
		// Kept sealed for an operator's redelivery once the settings are
		// fixed; events.retention removes them.
		if !c.kept(t, "refused", "strict") {
			t.Error("the tokens whose revocation was refused are no longer kept")
		}
	})

	t.Run("GitHub grant deleted", func(t *testing.T) {
		t.Parallel()
		p := c.putTokens(t, 0, "gh-leaver", "github", true)
		github.grant(p.access, false)
		c.deleteTokens(t, 1, "gh-leaver", "github")
		events := c.waitEvent(t, "gh-leaver", "github", domain.EventRevocationSucceeded)
		if got, want := kindsOf(events), []string{"tokens.stored", "tokens.deleted", "revocation.succeeded"}; !slices.Equal(got, want) {
			t.Errorf("events of gh-leaver/github: %q, want %q", got, want)
		}
		if github.alive(p.access) {
			t.Error("the grant is still alive")
		}
		var mine []revocation
		for _, r := range github.requests() {
			if r.token == p.access {
				mine = append(mine, r)
			}
		}
		if want := []revocation{{token: p.access, authOK: true, status: http.StatusNoContent}}; !slices.Equal(mine, want) {
			t.Errorf("GitHub got %v, want one grant deletion with the access token and the client's credentials", describe(mine, p))
		}
		if c.kept(t, "gh-leaver", "github") {
			t.Error("the revoked token is still kept in the tokens.deleted event")
		}
	})

	t.Run("GitHub user stored tokens again before the revocation", func(t *testing.T) {
		t.Parallel()
		old := c.putTokens(t, 1, "gh-returner", "github", true)
		github.grant(old.access, true) // GitHub fails, so the revocation is retried
		c.deleteTokens(t, 0, "gh-returner", "github")
		eventually(t, "a failed grant deletion", func() (bool, string) {
			n := 0
			for _, r := range github.requests() {
				if r.token == old.access && r.status == http.StatusServiceUnavailable {
					n++
				}
			}
			return n >= 1, fmt.Sprintf("%d failed deletions", n)
		})
		fresh := c.putTokens(t, 1, "gh-returner", "github", true)
		events := c.waitEvent(t, "gh-returner", "github", domain.EventRevocationFailed)
		if got, want := kindsOf(events), []string{"tokens.stored", "tokens.deleted", "tokens.stored", "revocation.failed " + domain.CodeRevocationSuperseded}; !slices.Equal(got, want) {
			t.Errorf("events of gh-returner/github: %q, want %q", got, want)
		}
		if !github.alive(old.access) {
			t.Error("the grant was deleted, which would end the tokens the user stored since")
		}
		for _, r := range github.requests() {
			if r.token == fresh.access || r.status == http.StatusNoContent && r.token == old.access {
				t.Errorf("GitHub got a grant deletion that succeeded or named the new token: %v", describe([]revocation{r}, old))
			}
		}
		if state, _ := c.revocationDelivery(t, "gh-returner", "github"); state != "failed" {
			t.Errorf("the revocation is %s, want failed", state)
		}
		if c.kept(t, "gh-returner", "github") {
			t.Error("the superseded revocation's tokens are still kept")
		}
		var got struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(c.must(t, 0, http.MethodGet, tokensPath("gh-returner", "github"), nil, http.StatusOK), &got); err != nil {
			t.Fatal(err)
		}
		if got.AccessToken != fresh.access {
			t.Error("GET does not answer the tokens stored after the delete")
		}
	})
}

// describe names the requests' tokens by role, never by value (t.Errorf
// output is no log of tokenstore's, but secrets stay out of it too).
func describe(rs []revocation, p tokenPair) string {
	var out []string
	for _, r := range rs {
		role := "an unknown token"
		switch r.token {
		case p.refresh:
			role = "the refresh token"
		case p.access:
			role = "the access token"
		}
		out = append(out, fmt.Sprintf("{%s hint %q auth ok %v: %d}", role, r.hint, r.authOK, r.status))
	}
	return "[" + strings.Join(out, " ") + "]"
}
