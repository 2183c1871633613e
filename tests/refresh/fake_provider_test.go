package refresh_test

// A strict OAuth 2.0 token endpoint that rotates refresh tokens the way the
// strictest providers do: every refresh token works once; presenting one
// that was already used is treated as theft and revokes the whole grant
// (RFC 9700 §4.14.2, "refresh token reuse detection"); and, like GitLab
// (Doorkeeper) and Ory Hydra, every refresh revokes the previous access
// token. The fake remembers when it revoked each access token, so the tests
// can count the tokens tokenstore handed out that the provider had revoked,
// or revoked before the expiry tokenstore reported with them (report.go's
// scenario report).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mode is what the fake does with a refresh request for a grant.
type mode int

const (
	// modeOK validates and rotates.
	modeOK mode = iota
	// modeHang blocks before looking at the refresh token (nothing is
	// rotated) until the request's context ends or the release channel closes.
	modeHang
	// modeRotateThenHang rotates the refresh token, then blocks: the provider
	// processed the refresh but its answer never reaches the client.
	modeRotateThenHang
	// mode5xx answers 503 with an HTML body, as a failing proxy would.
	mode5xx
	// modeInvalidGrant answers 400 invalid_grant (the grant is revoked).
	modeInvalidGrant
	// modeInvalidClient answers 401 invalid_client before it looks at the token.
	modeInvalidClient
	// modeBadRefreshToken200 answers like GitHub does for a dead refresh
	// token: HTTP 200, form-encoded, error=bad_refresh_token.
	modeBadRefreshToken200
	// mode429 answers 429 slow_down: the provider refused to act on the
	// request for now (a transient failure of known outcome: nothing rotated).
	mode429
	// modeRotateThen502 rotates (and revokes the previous access token),
	// then answers 502 as a gateway that lost the provider's answer would.
	modeRotateThen502
)

// behavior is how the fake answers one grant.
type behavior struct {
	mode mode
	// noRotation: a refresh issues a new access token only; the refresh token
	// stays valid (and current).
	noRotation bool
	// keepsAccess: a refresh leaves the previous access token valid until it
	// expires (Keycloak, Entra ID). By default the fake revokes it.
	keepsAccess bool
	// formEncoded answers application/x-www-form-urlencoded, like GitHub.
	formEncoded bool
	// expiresIn is the new access token's lifetime in seconds (0: 3600).
	expiresIn int64
	// refreshExpiresIn, when > 0, is sent as refresh_token_expires_in.
	refreshExpiresIn int64
	// echoSecrets puts the presented refresh token and client secret into
	// error_description, as careless providers do (the service must scrub them).
	echoSecrets bool
	// echo, when set, is what error_description says instead: the request
	// as the provider received it, in some encoding (see the echo* funcs).
	echo func(req echoed) string
	// label is the Content-Type of every answer instead of the right one;
	// labelNone sends none. Real providers and proxies mislabel JSON.
	label string
	// echoed is echo's text for this request (set by serveHTTP).
	echoed string
}

// labelNone is behavior.label for an answer without a Content-Type.
const labelNone = "none"

// echoed is the request as the fake received it, for behavior.echo.
type echoed struct {
	body          string // form-encoded, as sent
	authorization string // the Authorization header, if any
	refreshToken  string
	clientSecret  string // as the fake knows it
}

// hardPart is in every token the fake issues and in its client secret:
// each character an encoding changes (form, JSON, base64 alignment), so the
// log checks prove that no encoding of a secret is logged, not just the
// plain one.
const hardPart = `/+=%"é\ 𝄞'-`

// hookCall describes a request the hook sees.
type hookCall struct {
	grant        string // "" for an unknown refresh token
	refreshToken string
}

type grant struct {
	id        string
	behavior  behavior
	current   string   // the one refresh token that works
	access    string   // the last access token issued (or the initial one)
	presented []string // every refresh token presented, in order
	revoked   bool
	refreshes int // successful refreshes (rotations or not)
	calls     atomic.Int64
}

type fakeProvider struct {
	t            testing.TB
	srv          *httptest.Server
	clientID     string
	clientSecret string
	release      chan struct{}
	releaseOnce  sync.Once

	mu       sync.Mutex
	defaults behavior
	grants   map[string]*grant
	tokens   map[string]*grant // every refresh token ever issued -> its grant
	secrets  []string          // every token issued, for log checks
	hook     func(hookCall)
	serial   int

	// revokedAt is when each revoked access token was revoked.
	revokedAt map[string]time.Time

	requests atomic.Int64 // every request, known grant or not
	unknown  atomic.Int64 // requests with a refresh token never issued
	reuses   atomic.Int64 // reuse violations (an already used refresh token presented)
	hanging  atomic.Int64 // requests blocked in a hang mode right now
}

func newFakeProvider(t testing.TB) *fakeProvider {
	t.Helper()
	p := &fakeProvider{
		t:            t,
		clientID:     "tokenstore-client-" + randHex(4),
		clientSecret: "client-secret" + hardPart + randHex(12),
		release:      make(chan struct{}),
		grants:       map[string]*grant{},
		tokens:       map[string]*grant{},
		revokedAt:    map[string]time.Time{},
	}
	p.secrets = append(p.secrets, p.clientSecret)
	p.srv = httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	t.Cleanup(func() {
		p.Release()
		p.srv.Close()
	})
	return p
}

// TokenURL is the endpoint to configure.
func (p *fakeProvider) TokenURL() string { return p.srv.URL + "/token" }

// Release unblocks every hanging request (and every later one).
func (p *fakeProvider) Release() {
	p.releaseOnce.Do(func() { close(p.release) })
}

// grantTokens is a fresh grant's initial tokens, for a PUT.
type grantTokens struct {
	id      string
	access  string
	refresh string
}

// NewGrant creates a grant with the current default behavior.
func (p *fakeProvider) NewGrant() grantTokens {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serial++
	g := &grant{id: fmt.Sprintf("g%d", p.serial), behavior: p.defaults}
	g.access = p.issueLocked("at", g)
	g.current = p.issueLocked("rt", g)
	p.grants[g.id] = g
	return grantTokens{id: g.id, access: g.access, refresh: g.current}
}

// issueLocked makes a unique token; refresh tokens are registered to g.
func (p *fakeProvider) issueLocked(kind string, g *grant) string {
	p.serial++
	tok := fmt.Sprintf("%s-%s-%d%s%s", kind, g.id, p.serial, hardPart, randHex(8))
	if kind == "rt" {
		p.tokens[tok] = g
	}
	p.secrets = append(p.secrets, tok)
	return tok
}

// SetDefaults changes the behavior of grants created from now on and of
// every existing grant.
func (p *fakeProvider) SetDefaults(f func(*behavior)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.defaults)
	for _, g := range p.grants {
		f(&g.behavior)
	}
}

// Set changes one grant's behavior.
func (p *fakeProvider) Set(id string, f func(*behavior)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.grant(id).behavior)
}

// SetHook installs f, called for every request before it is answered (and
// before any hang), outside the fake's lock. nil removes it.
func (p *fakeProvider) SetHook(f func(hookCall)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = f
}

func (p *fakeProvider) grant(id string) *grant {
	g, ok := p.grants[id]
	if !ok {
		p.t.Fatalf("fake provider: no grant %q", id)
	}
	return g
}

// Calls counts the refresh requests that presented one of the grant's
// refresh tokens, whatever the outcome.
func (p *fakeProvider) Calls(id string) int64 {
	p.mu.Lock()
	g := p.grant(id)
	p.mu.Unlock()
	return g.calls.Load()
}

// Refreshes counts the grant's successful refreshes.
func (p *fakeProvider) Refreshes(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grant(id).refreshes
}

// Current is the grant's valid refresh token.
func (p *fakeProvider) Current(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grant(id).current
}

// Access is the last access token the grant issued.
func (p *fakeProvider) Access(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grant(id).access
}

// Revoked reports whether the grant was revoked by reuse detection.
func (p *fakeProvider) Revoked(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grant(id).revoked
}

// Presented is every refresh token presented for the grant, in order.
func (p *fakeProvider) Presented(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.grant(id).presented...)
}

// RevokedAt reports when the fake revoked access token tok, if it did.
func (p *fakeProvider) RevokedAt(tok string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.revokedAt[tok]
	return at, ok
}

// SentTwice counts refresh-token presentations beyond the first of each
// token, across all grants.
func (p *fakeProvider) SentTwice() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, g := range p.grants {
		seen := map[string]bool{}
		for _, rt := range g.presented {
			if seen[rt] {
				n++
			}
			seen[rt] = true
		}
	}
	return n
}

// Requests counts every request the fake received.
func (p *fakeProvider) Requests() int64 { return p.requests.Load() }

// Reuses counts reuse violations across all grants.
func (p *fakeProvider) Reuses() int64 { return p.reuses.Load() }

// Hanging is how many requests are blocked in a hang mode right now.
func (p *fakeProvider) Hanging() int64 { return p.hanging.Load() }

// Secrets is every token the fake issued plus its client secret.
func (p *fakeProvider) Secrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.secrets...)
}

func (p *fakeProvider) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		oauthError(w, behavior{}, http.StatusBadRequest, "invalid_request", "the body must be form-encoded, got "+ct)
		return
	}
	rawBody, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(rawBody))
	if err := r.ParseForm(); err != nil {
		oauthError(w, behavior{}, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	form := r.PostForm
	rt := form.Get("refresh_token")

	p.mu.Lock()
	g := p.tokens[rt]
	var beh behavior
	if g != nil {
		g.calls.Add(1)
		g.presented = append(g.presented, rt)
		beh = g.behavior
	} else {
		p.unknown.Add(1)
		beh = p.defaults
	}
	hook := p.hook
	p.mu.Unlock()
	if beh.echo != nil {
		beh.echoed = beh.echo(echoed{body: string(rawBody), authorization: r.Header.Get("Authorization"),
			refreshToken: rt, clientSecret: p.clientSecret})
	}

	if hook != nil {
		call := hookCall{refreshToken: rt}
		if g != nil {
			call.grant = g.id
		}
		hook(call)
	}

	// Client authentication comes first (RFC 6749 §5.2 invalid_client): a
	// refused client's refresh token is not looked at, so not consumed.
	if beh.mode == modeInvalidClient || !p.clientOK(r, form) {
		desc := "client authentication failed"
		if beh.echoSecrets {
			desc += " for secret " + p.clientSecret + " and token " + rt
		}
		if beh.echo != nil {
			desc += ": " + beh.echoed
		}
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="fake"`)
		}
		oauthError(w, beh, http.StatusUnauthorized, "invalid_client", desc)
		return
	}
	if form.Get("grant_type") != "refresh_token" {
		oauthError(w, beh, http.StatusBadRequest, "unsupported_grant_type", "only refresh_token")
		return
	}

	switch beh.mode {
	case modeHang:
		p.hang(r)
		return
	case mode429:
		oauthError(w, beh, http.StatusTooManyRequests, "slow_down", "rate limited")
		return
	case mode5xx:
		setLabel(w, beh, "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html><body>502 upstream unavailable</body></html>"))
		return
	case modeInvalidGrant:
		desc := "the refresh token is invalid"
		if beh.echoSecrets {
			desc = "refresh token " + rt + " was revoked"
		}
		if beh.echo != nil {
			desc = "the grant was revoked: " + beh.echoed
		}
		oauthError(w, beh, http.StatusBadRequest, "invalid_grant", desc)
		return
	case modeBadRefreshToken200:
		setLabel(w, beh, "application/x-www-form-urlencoded; charset=utf-8")
		_, _ = w.Write([]byte(url.Values{
			"error":             {"bad_refresh_token"},
			"error_description": {"The refresh token passed is incorrect or expired."},
			"error_uri":         {"https://docs.github.com/apps/troubleshooting"},
		}.Encode()))
		return
	}

	p.mu.Lock()
	switch {
	case g == nil:
		p.mu.Unlock()
		oauthError(w, beh, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		return
	case g.revoked:
		p.mu.Unlock()
		oauthError(w, beh, http.StatusBadRequest, "invalid_grant", "the grant was revoked")
		return
	case rt != g.current:
		// An old refresh token: someone holds a copy. Revoke everything.
		g.revoked = true
		p.reuses.Add(1)
		p.mu.Unlock()
		p.t.Logf("fake provider: REUSE of an old refresh token of grant %s; grant revoked", g.id)
		oauthError(w, beh, http.StatusBadRequest, "invalid_grant", "refresh token reuse detected; grant revoked")
		return
	}
	if !beh.keepsAccess {
		p.revokedAt[g.access] = time.Now()
	}
	g.access = p.issueLocked("at", g)
	access, refresh := g.access, ""
	if !beh.noRotation {
		g.current = p.issueLocked("rt", g)
		refresh = g.current
	}
	g.refreshes++
	p.mu.Unlock()

	switch beh.mode {
	case modeRotateThenHang:
		p.hang(r)
		return
	case modeRotateThen502:
		setLabel(w, beh, "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
		return
	}
	expiresIn := beh.expiresIn
	if expiresIn == 0 {
		expiresIn = 3600
	}
	if beh.formEncoded {
		v := url.Values{
			"access_token": {access},
			"token_type":   {"bearer"},
			"expires_in":   {strconv.FormatInt(expiresIn, 10)},
			"scope":        {""},
		}
		if refresh != "" {
			v.Set("refresh_token", refresh)
			if beh.refreshExpiresIn > 0 {
				v.Set("refresh_token_expires_in", strconv.FormatInt(beh.refreshExpiresIn, 10))
			}
		}
		setLabel(w, beh, "application/x-www-form-urlencoded; charset=utf-8")
		_, _ = w.Write([]byte(v.Encode()))
		return
	}
	body := map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": expiresIn}
	if refresh != "" {
		body["refresh_token"] = refresh
		if beh.refreshExpiresIn > 0 {
			body["refresh_token_expires_in"] = beh.refreshExpiresIn
		}
	}
	setLabel(w, beh, "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

// clientOK checks the client credentials, from HTTP basic auth (RFC 6749
// §2.3.1: each part form-encoded) or from the body, not both.
func (p *fakeProvider) clientOK(r *http.Request, form url.Values) bool {
	user, pass, basic := r.BasicAuth()
	if basic {
		if form.Has("client_secret") {
			return false
		}
		id, err1 := url.QueryUnescape(user)
		secret, err2 := url.QueryUnescape(pass)
		return err1 == nil && err2 == nil && id == p.clientID && secret == p.clientSecret
	}
	return form.Get("client_id") == p.clientID && form.Get("client_secret") == p.clientSecret
}

func (p *fakeProvider) hang(r *http.Request) {
	p.hanging.Add(1)
	defer p.hanging.Add(-1)
	select {
	case <-r.Context().Done():
	case <-p.release:
	}
	// Whatever happens, no answer: the connection is dropped.
	panic(http.ErrAbortHandler)
}

func oauthError(w http.ResponseWriter, beh behavior, status int, code, desc string) {
	setLabel(w, beh, "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// setLabel sets the answer's Content-Type: right unless beh says otherwise.
func setLabel(w http.ResponseWriter, beh behavior, right string) {
	switch beh.label {
	case "":
		w.Header().Set("Content-Type", right)
	case labelNone:
		w.Header()["Content-Type"] = nil // and no sniffing
	default:
		w.Header().Set("Content-Type", beh.label)
	}
}
