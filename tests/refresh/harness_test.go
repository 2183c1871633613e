// Package refresh_test runs several complete tokenstore instances (each the
// fx graph of `tokenstore serve`, with its own pool) against one shared
// PostgreSQL database and a strict, rotating fake OAuth provider, and checks
// the refresh protocol end to end: exactly one provider call however many
// callers and instances ask at once, no refresh token ever presented twice,
// bounded waits, and the stored failure states.
//
// Every test has its own database and its own fake provider. Nothing here
// asserts on elapsed time: waits are polls with generous deadlines.
package refresh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

func TestMain(m *testing.M) { testdb.MainWith(m, testdb.Options{AfterRun: printReport}) }

// provider is the provider name the fake serves in most tests.
const provider = "gitlab"

// options tune a cluster. Zero fields take the defaults in newCluster.
type options struct {
	instances int
	maxConns  int32         // per instance; 0: servicetest's default (8)
	margin    time.Duration // refresh margin; 0: the service default (15m)
	// providerMargins override margin per provider.
	providerMargins map[domain.Provider]time.Duration
	refresh         app.RefreshConfig // zero fields: see newCluster
	worker          app.WorkerConfig  // zero: disabled
	// providerTimeout bounds one provider call (0: 2s).
	providerTimeout time.Duration
	// keepsAccess: the fake leaves the previous access token valid on
	// refresh (Keycloak, Entra ID) and the provider entry says so
	// (revokes_previous_access_token: false), so the worker's lookahead
	// applies. By default the fake revokes it, as GitLab and Hydra do.
	keepsAccess bool
	// clockAhead sets each instance's clock this far ahead of the system's
	// (negative: behind), which the database keeps: a skewed clock.
	clockAhead time.Duration
	// kind, name and authStyle of the fake's provider entry (oauth2, gitlab, auto).
	kind      oauth.Kind
	name      domain.Provider
	authStyle oauth.AuthMethod
	// dsn is the instances' database ("": a fresh migrated one), and
	// configure changes each instance's configuration last (a pooler's
	// URL and query mode).
	dsn       string
	configure func(*cli.Config)
}

// cluster is N instances on one database, one fake provider, one key.
type cluster struct {
	run       *servicetest.Cluster
	t         *testing.T
	fake      *fakeProvider
	db        *pgxpool.Pool // raw access, outside every instance
	keyring   *fernet.Keyring
	cred      string // bearer credential of the caller with every permission
	client    *http.Client
	instances []*instance
	provider  domain.Provider
	scenario  scenario // what the report counts
}

// instance is one running tokenstore, seen the way the tests use it.
type instance struct {
	c      *cluster
	name   string
	base   string
	svc    *app.TokenService
	worker *app.RefreshWorker
	pool   *pgxpool.Pool
	logs   *testlog.Buffer
	run    *servicetest.Instance
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newCluster starts o.instances instances and stops them when t ends; then
// it checks that no instance logged any token material: a token the fake
// issued, a token a test stored, the client secret or the caller credential.
func newCluster(t *testing.T, o options) *cluster {
	t.Helper()
	if o.instances == 0 {
		o.instances = 1
	}
	if o.refresh.Lease == 0 {
		o.refresh.Lease = 5 * time.Second
	}
	if o.refresh.WaitTimeout == 0 {
		o.refresh.WaitTimeout = 5 * time.Second
	}
	if o.refresh.PollInterval == 0 {
		o.refresh.PollInterval = 20 * time.Millisecond
	}
	if o.refresh.RetryAfter == 0 {
		o.refresh.RetryAfter = time.Minute // a back-off outlasts the test unless chosen
	}
	if o.providerTimeout == 0 {
		o.providerTimeout = 2 * time.Second
	}
	if o.kind == "" {
		o.kind = oauth.KindOAuth2
	}
	if o.name == "" {
		o.name = provider
	}

	c := &cluster{t: t, fake: newFakeProvider(t), provider: o.name}
	c.client = &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 200},
	}
	t.Cleanup(c.client.CloseIdleConnections)

	pc := oauth.ProviderConfig{
		Name: o.name, Kind: o.kind,
		ClientID: c.fake.clientID, ClientSecret: domain.NewSecret(c.fake.clientSecret),
		TokenURL: c.fake.TokenURL(), TokenEndpointAuthMethod: o.authStyle, Timeout: o.providerTimeout,
	}
	if o.keepsAccess {
		revokes := false
		pc.RevokesPreviousAccessToken = &revokes
		c.fake.SetDefaults(func(b *behavior) { b.keepsAccess = true })
	}
	// Registered before the instances start, so it runs after they stopped.
	t.Cleanup(func() { c.checkEncodedLogs(t, false) })
	c.run = servicetest.Start(t, servicetest.Options{
		Instances: o.instances,
		DSN:       o.dsn,
		Secrets:   c.fake.Secrets,
		Configure: func(cfg *cli.Config) {
			if o.maxConns > 0 {
				cfg.Database.MaxConns = o.maxConns
			}
			cfg.OAuth = oauth.Config{Providers: []oauth.ProviderConfig{pc}}
			cfg.App = app.Config{RefreshMargin: o.margin, ProviderMargins: o.providerMargins, Refresh: o.refresh}
			if o.clockAhead != 0 {
				cfg.App.Now = func() time.Time { return time.Now().Add(o.clockAhead) }
			}
			cfg.Worker = o.worker
			if o.configure != nil {
				o.configure(cfg)
			}
		},
	})
	c.db, c.keyring, c.cred = c.run.DB, c.run.Keyring, c.run.Credentials[servicetest.CallerAll]
	t.Cleanup(func() { c.reportScenario(t) })
	for _, in := range c.run.Instances {
		c.instances = append(c.instances, &instance{c: c, name: in.Name, base: in.URL,
			svc: in.Service, worker: in.Worker, pool: in.Pool, logs: in.Logs, run: in})
	}
	return c
}

// stop stops the instance; stopping again returns nil.
func (in *instance) stop() error { return in.run.Stop(context.Background()) }

// checkLogs fails the test if any instance logged token material, in any
// encoding (testlog.Encodings) for what the fake provider issued and its
// client secret.
func (c *cluster) checkLogs() {
	c.run.CheckLogs(c.t)
	c.checkEncodedLogs(c.t, true)
}

// checkEncodedLogs fails t if any instance logged a secret of the fake
// provider (a token it issued, its client secret, the Basic credential made
// of it) in any encoding. Unless all, only the lines that can carry provider
// words are searched (warnings, errors, lines with an err attribute): every
// test's cleanup runs this, and request lines are many.
func (c *cluster) checkEncodedLogs(t *testing.T, all bool) {
	t.Helper()
	if c.run == nil {
		return
	}
	secrets := append(c.fake.Secrets(), testlog.BasicCredential(c.fake.clientID, c.fake.clientSecret))
	for _, in := range c.run.Instances {
		logs := in.Logs.String()
		if !all {
			var keep []string
			for line := range strings.SplitSeq(logs, "\n") {
				if strings.Contains(line, "err") || strings.Contains(line, "WARN") || strings.Contains(line, "ERROR") {
					keep = append(keep, line)
				}
			}
			logs = strings.Join(keep, "\n")
		}
		if secret, enc := testlog.FindSecret(logs, secrets...); secret != "" {
			t.Errorf("%s logged secret %q encoded as %q", in.Name, secret, enc)
		}
	}
}

// noteSecret adds token material to the log check.
func (c *cluster) noteSecret(s ...string) { c.run.AddSecrets(s...) }

// ---- HTTP ----------------------------------------------------------------

// result is a finished HTTP exchange with the interesting parts decoded.
type result struct {
	status     int
	header     http.Header
	body       []byte
	token      string // access_token of a 200 token answer
	expiresAt  string
	code       string // problem code of an error answer
	retryAfter string
}

func (r result) String() string {
	if r.status == http.StatusOK {
		return fmt.Sprintf("200 token %s", r.token)
	}
	return fmt.Sprintf("%d %s (Retry-After %q): %s", r.status, r.code, r.retryAfter, bytes.TrimSpace(r.body))
}

func (c *cluster) do(method, url string, body any) (result, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return result{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cred)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	asked := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	r := result{status: resp.StatusCode, header: resp.Header, body: raw, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode == http.StatusOK && method == http.MethodGet {
		var tok struct {
			AccessToken string  `json:"access_token"`
			ExpiresAt   *string `json:"access_token_expires_at"`
		}
		_ = json.Unmarshal(raw, &tok)
		r.token = tok.AccessToken
		if tok.ExpiresAt != nil {
			r.expiresAt = *tok.ExpiresAt
		}
		if r.token != "" {
			h := handout{token: r.token, at: asked, never: tok.ExpiresAt == nil, instance: req.URL.Host}
			if !h.never {
				h.expiry, _ = time.Parse(time.RFC3339Nano, r.expiresAt)
			}
			c.scenario.handedOut(h)
		}
	} else {
		var p httpapi.Problem
		_ = json.Unmarshal(raw, &p)
		r.code = p.Code
	}
	return r, nil
}

func tokensPath(user string, prov domain.Provider) string {
	return "/v1/users/" + url.PathEscape(user) + "/providers/" + string(prov) + "/tokens"
}

// getE asks in for user's access token over HTTP, without a *testing.T (for
// goroutines).
func (in *instance) getE(user string) (result, error) {
	return in.c.do(http.MethodGet, in.base+tokensPath(user, in.c.provider), nil)
}

func (in *instance) get(t *testing.T, user string) result {
	t.Helper()
	r, err := in.getE(user)
	if err != nil {
		t.Fatalf("%s GET %s: %v", in.name, user, err)
	}
	return r
}

// apiGet asks in's TokenService directly (the Go API).
func (in *instance) apiGet(user string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	asked := time.Now()
	tok, err := in.svc.GetAccessToken(ctx, domain.UserID(user), in.c.provider)
	if err != nil {
		return "", err
	}
	h := handout{token: tok.Token.Reveal(), at: asked, instance: in.name}
	h.expiry, _ = tok.Expiry.Time()
	h.never = tok.Expiry.IsNever()
	in.c.scenario.handedOut(h)
	return tok.Token.Reveal(), nil
}

// put stores tokens through instance 0 and fails t unless it answers 200.
func (c *cluster) put(t *testing.T, user string, body map[string]any) {
	t.Helper()
	c.putAs(t, c.provider, user, body)
}

// putAs stores tokens for another provider name.
func (c *cluster) putAs(t *testing.T, prov domain.Provider, user string, body map[string]any) {
	t.Helper()
	for _, k := range []string{"access_token", "refresh_token"} {
		if s, ok := body[k].(string); ok {
			c.noteSecret(s)
		}
	}
	r, err := c.do(http.MethodPut, c.instances[0].base+tokensPath(user, prov), body)
	if err != nil {
		t.Fatalf("PUT %s: %v", user, err)
	}
	if r.status != http.StatusOK {
		t.Fatalf("PUT %s: %s", user, r)
	}
}

// putGrant stores a fake grant's initial tokens with the access token
// expiring in expiresIn seconds (0: already expired, sent as an expiry time
// of now: the API refuses expires_in 0).
func (c *cluster) putGrant(t *testing.T, user string, g grantTokens, expiresIn int64) {
	t.Helper()
	body := map[string]any{"access_token": g.access, "refresh_token": g.refresh, "expires_in": expiresIn}
	if expiresIn <= 0 {
		delete(body, "expires_in")
		body["access_token_expires_at"] = expiredAt
	}
	c.put(t, user, body)
}

// expiredAt is an access_token_expires_at (or refresh_token_expires_at)
// already past.
const expiredAt = "2001-01-01T00:00:00Z"

// providerStatus is one entry of GET /v1/users/{user}/providers.
type providerStatus struct {
	Provider              string  `json:"provider"`
	State                 string  `json:"state"`
	AccessTokenExpiresAt  *string `json:"access_token_expires_at"`
	RefreshTokenExpiresAt *string `json:"refresh_token_expires_at"`
	HasRefreshToken       bool    `json:"has_refresh_token"`
	RefreshError          *string `json:"refresh_error"`
	AmbiguousRetries      int     `json:"ambiguous_retries"`
}

func (s providerStatus) refreshError() string {
	if s.RefreshError == nil {
		return ""
	}
	return *s.RefreshError
}

// status lists user's providers on in and returns the cluster's provider.
func (in *instance) status(t *testing.T, user string) providerStatus {
	t.Helper()
	r, err := in.c.do(http.MethodGet, in.base+"/v1/users/"+url.PathEscape(user)+"/providers", nil)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("%s list providers of %s: %v %s", in.name, user, err, r)
	}
	var list struct {
		Providers []providerStatus `json:"providers"`
	}
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Providers {
		if p.Provider == string(in.c.provider) {
			return p
		}
	}
	t.Fatalf("%s: %s has no %s tokens: %s", in.name, user, in.c.provider, r.body)
	return providerStatus{}
}

// ---- database --------------------------------------------------------------

// row is a stored auth_tokens row with its tokens decrypted.
type row struct {
	access, refresh string
	accessExpiry    *time.Time
	refreshExpiry   *time.Time
	leaseOwner      string
	reauth          bool
	refreshError    string
	nextRefresh     *time.Time
	version         int64
}

// row reads user's row straight from the database (no instance involved).
func (c *cluster) row(t testing.TB, user string) row {
	t.Helper()
	r, err := c.rowE(user)
	if err != nil {
		t.Fatalf("read row of %s: %v", user, err)
	}
	return r
}

func (c *cluster) rowE(user string) (row, error) {
	var (
		r              row
		keyID          string
		access, refTok []byte
		owner, rerr    *string
	)
	err := c.db.QueryRow(context.Background(), `
		SELECT key_id, access_token, refresh_token, access_token_expires_at, refresh_token_expires_at,
		       refresh_lease_owner, reauth_required, refresh_error, next_refresh_at, version
		FROM auth_tokens WHERE user_id = $1 AND provider = $2`, user, string(c.provider)).
		Scan(&keyID, &access, &refTok, &r.accessExpiry, &r.refreshExpiry, &owner, &r.reauth, &rerr, &r.nextRefresh, &r.version)
	if err != nil {
		return row{}, err
	}
	open := func(place app.Place, b []byte) (string, error) {
		if b == nil {
			return "", nil
		}
		s, err := app.Unseal(c.keyring, place, domain.Ciphertext{KeyID: domain.KeyID(keyID), Data: b})
		return s.Reveal(), err
	}
	u := domain.UserID(user)
	if r.access, err = open(app.AccessTokenPlace(u, c.provider), access); err != nil {
		return row{}, err
	}
	if r.refresh, err = open(app.RefreshTokenPlace(u, c.provider), refTok); err != nil {
		return row{}, err
	}
	if owner != nil {
		r.leaseOwner = *owner
	}
	if rerr != nil {
		r.refreshError = *rerr
	}
	return r, nil
}

// exec runs SQL on the shared database.
func (c *cluster) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	c.scenario.rewrote()
	if _, err := c.db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// expireNow makes user's access token expire now, leaving everything else.
func (c *cluster) expireNow(t testing.TB, user string) {
	t.Helper()
	c.exec(t, `UPDATE auth_tokens SET access_token_expires_at = now() WHERE user_id = $1 AND provider = $2`,
		user, string(c.provider))
}

// expireIn makes user's access token expire in d (inside the margin, not
// expired), its lifetime unknown (as in a row stored before tokenstore
// recorded when tokens were obtained), so the configured margin applies
// uncapped.
func (c *cluster) expireIn(t testing.TB, user string, d time.Duration) {
	t.Helper()
	c.exec(t, `UPDATE auth_tokens SET access_token_expires_at = clock_timestamp() + make_interval(secs => $3),
		access_token_obtained_at = NULL
		WHERE user_id = $1 AND provider = $2`, user, string(c.provider), d.Seconds())
}

// ---- assertions ----------------------------------------------------------

// eventually polls cond every 20ms until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s; last state: %s", what, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantStatus(t *testing.T, what string, r result, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.code != code) {
		t.Fatalf("%s: got %s, want %d %s", what, r, status, code)
	}
}

func wantToken(t *testing.T, what string, r result, token string) {
	t.Helper()
	if r.status != http.StatusOK || r.token != token {
		t.Fatalf("%s: got %s, want 200 with token %s", what, r, token)
	}
}

// lease is a RefreshConfig with the given lease and wait timeout (other
// fields: newCluster's defaults).
func lease(l, wait time.Duration) app.RefreshConfig {
	return app.RefreshConfig{Lease: l, WaitTimeout: wait}
}
