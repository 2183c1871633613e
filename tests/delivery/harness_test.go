// Package delivery_test checks the delivery of outbox events end to end
// (issue 13): complete tokenstore instances (servicetest: the fx graph of
// `tokenstore serve`) on a real PostgreSQL, webhook receivers and OAuth
// providers started by each test on loopback, and the pull feed. It shows
// that nothing is lost while a receiver is down, that each event is
// delivered once by a cluster whose instances live and again with the same
// webhook-id when one dies mid-send, that signatures verify with Svix's
// verifier, that each user's provider events arrive in commit order, that
// the feed survives a restart, and that deleted tokens are revoked at the
// provider (RFC 7009 and GitHub's grant deletion) through provider outages.
//
// Every test has its own database. Nothing here asserts on elapsed time:
// waits are polls with generous deadlines, and a phase that must have
// happened (a receiver answering 503, a refused connection) is waited for,
// not slept for.
package delivery_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/webhook"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Delivery settings of every instance: quick polls and short leases, so a
// lapsed lease or a retry happens within a test's patience.
const (
	poll       = 50 * time.Millisecond
	leaseSlack = time.Second
	retryFirst = 100 * time.Millisecond
)

// revocationSchedule retries a failed revocation quickly.
var revocationSchedule = domain.RetrySchedule{First: 100 * time.Millisecond, Cap: time.Second, MaxAge: time.Minute}

// within is the deadline of every wait: far above what any step takes.
const within = 45 * time.Second

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// secrets are every secret a test hands to tokenstore or to its fakes:
// tokens, signing secrets, client secrets. No instance may log any of them
// (servicetest checks when the test ends, in every encoding).
type secrets struct {
	mu   sync.Mutex
	list []string
}

func (s *secrets) add(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, v...)
}

func (s *secrets) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.list...)
}

// suite is one test's fixtures: its secrets and an HTTP client for the
// API (its own transport: closing a test server closes the idle
// connections of http.DefaultTransport, which the instances' webhook
// sender uses).
type suite struct {
	t       *testing.T
	secrets *secrets
	client  *http.Client
}

func newSuite(t *testing.T) *suite {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &suite{t: t, secrets: &secrets{}, client: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// setup shapes a cluster.
type setup struct {
	instances int
	dsn       string       // "": a fresh database
	keys      []fernet.Key // nil: a fresh key
	endpoints []webhook.Endpoint
	providers []oauth.ProviderConfig
}

// cluster is instances on one database, seen the way the tests use them.
type cluster struct {
	s    *suite
	run  *servicetest.Cluster
	cred string // the bearer credential of the caller with every permission
}

// start starts the instances o describes, with the delivery settings above.
func (s *suite) start(o setup) *cluster {
	s.t.Helper()
	run := servicetest.Start(s.t, servicetest.Options{
		Instances: o.instances,
		DSN:       o.dsn,
		Keys:      o.keys,
		Secrets:   s.secrets.all,
		Configure: func(cfg *cli.Config) {
			cfg.Webhooks = o.endpoints
			cfg.Delivery = app.DeliveryConfig{Poll: poll, LeaseSlack: leaseSlack, RevocationTimeout: 5 * time.Second,
				RevocationSchedule: revocationSchedule}
			if o.providers != nil {
				cfg.OAuth = oauth.Config{Providers: o.providers}
			}
		},
	})
	return &cluster{s: s, run: run, cred: run.Credentials[servicetest.CallerAll]}
}

// eventKinds are the kinds an endpoint may ask for; allKinds all but
// tokens.refreshed (written only with events.refreshed).
func eventKinds() []string {
	var out []string
	for _, k := range domain.EventKinds() {
		out = append(out, string(k))
	}
	return out
}

func allKinds() []string {
	var out []string
	for _, k := range eventKinds() {
		if k != string(domain.EventTokensRefreshed) {
			out = append(out, k)
		}
	}
	return out
}

// newSigningSecret returns a fresh Standard Webhooks secret, whsec_ and
// the base64 of 32 random bytes, registered as a secret.
func (s *suite) newSigningSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	b64 := base64.StdEncoding.EncodeToString(key)
	s.secrets.add(webhook.SecretPrefix+b64, b64)
	return webhook.SecretPrefix + b64
}

// endpoint builds the webhook endpoint name posting kinds to url, signed
// with each of signing (a secret file written 0600, as the setting
// requires), retried quickly, each delivery bounded by timeout.
func (s *suite) endpoint(name, url string, kinds []string, timeout time.Duration, signing ...string) webhook.Endpoint {
	s.t.Helper()
	path := filepath.Join(s.t.TempDir(), name+".secret")
	if err := os.WriteFile(path, []byte(strings.Join(signing, "\n")+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	eps, err := webhook.NewEndpoints([]webhook.EndpointSettings{{
		Name: name, URL: url, Events: kinds, SecretFile: path, Timeout: timeout.String(),
	}}, "webhooks", eventKinds())
	if err != nil {
		s.t.Fatal(err)
	}
	eps[0].RetryFirst = retryFirst
	return eps[0]
}

// ---- the API ---------------------------------------------------------------

// do sends one request to instance i and returns the status and body.
func (c *cluster) do(i int, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.run.Instances[i].URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.cred)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// must sends one request to instance i and fails t unless it is answered
// want.
func (c *cluster) must(t *testing.T, i int, method, path string, body any, want int) []byte {
	t.Helper()
	status, raw, err := c.do(i, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if status != want {
		t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, status, want, raw)
	}
	return raw
}

func tokensPath(user, provider string) string {
	return "/v1/users/" + url.PathEscape(user) + "/providers/" + url.PathEscape(provider) + "/tokens"
}

// tokenPair is what a PUT stored.
type tokenPair struct{ access, refresh string }

// putTokens stores fresh tokens for user and provider through instance i
// (the refresh token omitted when noRefresh), and registers them as secrets.
func (c *cluster) putTokens(t *testing.T, i int, user, provider string, noRefresh bool) tokenPair {
	t.Helper()
	p := tokenPair{access: "at-" + provider + "-" + randHex(12)}
	body := map[string]any{"access_token": p.access, "expires_in": 3600}
	if !noRefresh {
		p.refresh = "rt-" + provider + "-" + randHex(12)
		body["refresh_token"] = p.refresh
	}
	c.s.secrets.add(p.access)
	if p.refresh != "" {
		c.s.secrets.add(p.refresh)
	}
	c.must(t, i, http.MethodPut, tokensPath(user, provider), body, http.StatusOK)
	return p
}

// putTokensE is putTokens without a *testing.T (for goroutines).
func (c *cluster) putTokensE(i int, user, provider string) error {
	p := tokenPair{access: "at-" + provider + "-" + randHex(12), refresh: "rt-" + provider + "-" + randHex(12)}
	c.s.secrets.add(p.access, p.refresh)
	status, raw, err := c.do(i, http.MethodPut, tokensPath(user, provider),
		map[string]any{"access_token": p.access, "refresh_token": p.refresh, "expires_in": 3600})
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("PUT %s/%s: HTTP %d: %s", user, provider, status, raw)
	}
	return err
}

func (c *cluster) deleteTokens(t *testing.T, i int, user, provider string) {
	t.Helper()
	c.must(t, i, http.MethodDelete, tokensPath(user, provider), nil, http.StatusNoContent)
}

func (c *cluster) putOffline(t *testing.T, i int, user string) {
	t.Helper()
	tok := "offline-" + randHex(12)
	c.s.secrets.add(tok)
	c.must(t, i, http.MethodPut, "/v1/users/"+url.PathEscape(user)+"/offline-token",
		map[string]any{"offline_token": tok}, http.StatusOK)
}

// ---- the pull feed ---------------------------------------------------------

// feedEvent is one event of GET /v1/events (and a webhook's data).
type feedEvent struct {
	Cursor     string  `json:"cursor"`
	Kind       string  `json:"kind"`
	User       string  `json:"user"`
	Provider   *string `json:"provider"`
	Reason     *string `json:"reason"`
	OccurredAt string  `json:"occurred_at"`
}

func (e feedEvent) provider() string {
	if e.Provider == nil {
		return ""
	}
	return *e.Provider
}

func (e feedEvent) reason() string {
	if e.Reason == nil {
		return ""
	}
	return *e.Reason
}

// webhookID is the webhook-id of the event at cursor: "ev_" and the
// event's id (domain.Event.WebhookID).
func webhookID(t *testing.T, cursor string) string {
	t.Helper()
	c, err := domain.ParseEventCursor(cursor)
	if err != nil {
		t.Fatalf("feed cursor %q: %v", cursor, err)
	}
	return domain.Event{Cursor: c}.WebhookID()
}

type feedPage struct {
	Events []feedEvent `json:"events"`
	Next   string      `json:"next"`
}

// feedPage reads one page of the feed from instance i after the cursor
// after ("" the start).
func (c *cluster) feedPage(t *testing.T, i int, after string, limit int) feedPage {
	t.Helper()
	q := url.Values{"limit": {fmt.Sprint(limit)}}
	if after != "" {
		q.Set("after", after)
	}
	var page feedPage
	if err := json.Unmarshal(c.must(t, i, http.MethodGet, "/v1/events?"+q.Encode(), nil, http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	return page
}

// feedUntil pages through the feed of instance i from after, limit events
// a page, until it holds at least n events and a page comes back empty
// (a write still in flight elsewhere holds the feed back a moment); it
// returns the events and the last next cursor.
func (c *cluster) feedUntil(t *testing.T, i int, after string, n, limit int) ([]feedEvent, string) {
	t.Helper()
	var out []feedEvent
	deadline := time.Now().Add(within)
	for {
		page := c.feedPage(t, i, after, limit)
		out = append(out, page.Events...)
		if page.Next != "" {
			after = page.Next
		}
		if len(page.Events) > 0 {
			continue
		}
		if len(out) >= n {
			return out, after
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed holds %d events after %s, want at least %d", len(out), within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// feedAll is every event of the feed now, from the start.
func (c *cluster) feedAll(t *testing.T) []feedEvent {
	t.Helper()
	out, _ := c.feedUntil(t, 0, "", 0, 500)
	return out
}

// ---- the database ------------------------------------------------------------

// count runs a count query on the cluster's database.
func (c *cluster) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := c.run.DB.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// waitRegistered waits until an instance has registered the endpoint name:
// an endpoint receives the events written after that (it starts at the
// feed's end), so tests write theirs after.
func (c *cluster) waitRegistered(t *testing.T, name string) {
	t.Helper()
	eventually(t, "endpoint "+name+" registered", func() (bool, string) {
		return c.count(t, `SELECT count(*) FROM event_targets WHERE name = $1`, name) == 1, "not registered"
	})
}

// ---- waiting -----------------------------------------------------------------

// eventually polls cond every 20ms until it holds, failing t with cond's
// last state after the deadline.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s; last state: %s", what, within, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- servers on loopback -------------------------------------------------------

// server is an HTTP server on a loopback port of its own, which can go
// down (its listener closed: connections are refused) and come back on the
// same address. Unlike httptest.Server, closing it leaves
// http.DefaultTransport alone.
type server struct {
	t       *testing.T
	addr    string
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
}

func serve(t *testing.T, h http.Handler) *server {
	t.Helper()
	s := &server{t: t, addr: "127.0.0.1:0", handler: h}
	s.up()
	t.Cleanup(s.down)
	return s
}

// URL is http://127.0.0.1:port.
func (s *server) URL() string { return "http://" + s.addr }

// up listens (again) on the server's address.
func (s *server) up() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var ln net.Listener
	var err error
	// The port was ours a moment ago; another process taking it in between
	// is unlikely but possible: retry for a while.
	for range 100 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen on %s again: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Errorf("serve %s: %v", s.addr, err)
		}
	}()
}

// down closes the listener and every connection: connections are refused
// until up.
func (s *server) down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// checkNoSecretIn fails t if text holds a secret of the suite.
func (s *suite) checkNoSecretIn(t *testing.T, what, text string) {
	t.Helper()
	if secret, enc := testlog.FindSecret(text, s.secrets.all()...); secret != "" {
		t.Errorf("%s holds a secret (a %d-byte one, %s)", what, len(secret), enc)
	}
}
