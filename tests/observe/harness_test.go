// Package observe_test checks what an operator sees of a running
// tokenstore: the Prometheus metrics scraped from its metrics listener after
// a scripted workload against a real PostgreSQL and a fake provider, pprof
// only when enabled, and one OpenTelemetry trace from an HTTP request
// through the use case and its SQL to the provider call, with no secret
// and no user id anywhere in either.
package observe_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// provider is the name the fake provider is configured under.
const provider = "corp-idp"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fakeProvider is a token endpoint: a refresh token starting with
// "revoked-" is answered invalid_grant, any other with fresh tokens.
type fakeProvider struct {
	srv          *httptest.Server
	clientSecret string

	mu     sync.Mutex
	issued []string
	calls  int
}

func newFakeProvider(t *testing.T) *fakeProvider {
	t.Helper()
	f := &fakeProvider{clientSecret: "client-secret-" + randHex(12)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls++
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.PostForm.Get("refresh_token"), "revoked-") {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		access, refresh := "issued-access-"+randHex(16), "issued-refresh-"+randHex(16)
		f.issued = append(f.issued, access, refresh)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": access, "refresh_token": refresh, "expires_in": 3600, "token_type": "Bearer"})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// secrets are what the fake issued and its client secret.
func (f *fakeProvider) secrets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{f.clientSecret}, f.issued...)
}

// env is one instance with the fake provider configured for refresh.
type env struct {
	t       *testing.T
	cluster *servicetest.Cluster
	inst    *servicetest.Instance
	fake    *fakeProvider
	client  *http.Client
	// sent holds every token the test stored: no log, metric or span may
	// hold one. users holds the user ids, which logs may name but metrics
	// and spans may not.
	sent, users []string
}

// start runs one instance; configure adjusts its configuration further.
// The worker is off, so the backlog stays what the test made.
func start(t *testing.T, o servicetest.Options, configure func(*cli.Config)) *env {
	t.Helper()
	e := &env{t: t, fake: newFakeProvider(t)}
	o.Secrets = func() []string { return append(e.fake.secrets(), e.sent...) }
	o.Configure = func(cfg *cli.Config) {
		cfg.OAuth = oauth.Config{Providers: []oauth.ProviderConfig{{
			Name: provider, Kind: oauth.KindOAuth2, ClientID: "tokenstore", ClientSecret: domain.NewSecret(e.fake.clientSecret),
			TokenURL: e.fake.srv.URL + "/token", TokenEndpointAuthMethod: oauth.AuthMethodClientSecretPost, Timeout: 5 * time.Second,
		}}}
		cfg.App.Refresh.Instance = "inst0"
		cfg.Worker.Enabled = false
		if configure != nil {
			configure(cfg)
		}
	}
	e.cluster = servicetest.Start(t, o)
	e.inst = e.cluster.Instances[0]
	e.client = e.cluster.Client(t)
	return e
}

// user is a fresh user id, remembered as a string no metric or span may
// hold.
func (e *env) user(name string) string {
	u := name + "-" + randHex(6)
	e.users = append(e.users, u)
	return u
}

// do sends a request as the caller with every permission and returns the
// status and body.
func (e *env) do(method, path string, body any, header ...string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.inst.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.cluster.Credentials[servicetest.CallerAll])
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// putTokens stores tokens for user whose access token expires in 60 s
// with refresh token refresh, and makes them due for refresh at once: as
// obtained a day ago, their lifetime does not cap the 15-minute margin
// (domain.EffectiveMargin).
func (e *env) putTokens(user, refresh string) {
	e.t.Helper()
	access := "stored-access-" + randHex(12)
	e.sent = append(e.sent, access, refresh)
	if status, body := e.do("PUT", "/v1/users/"+user+"/providers/"+provider+"/tokens",
		map[string]any{"access_token": access, "refresh_token": refresh, "expires_in": 60}); status != 200 {
		e.t.Fatalf("PUT tokens of %s: %d %s", user, status, body)
	}
	if _, err := e.cluster.DB.Exec(e.t.Context(), `UPDATE auth_tokens SET access_token_obtained_at = now() - interval '1 day'
		WHERE user_id = $1`, user); err != nil {
		e.t.Fatal(err)
	}
}

// get fetches url from the metrics listener.
func (e *env) get(url string) (int, string) {
	e.t.Helper()
	resp, err := e.client.Get(url)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// forbidden is every string no metric or span may hold, in any encoding:
// the tokens stored and issued, the client secret, the caller credential,
// the key, and the user ids.
func (e *env) forbidden() []string {
	out := append(e.fake.secrets(), e.sent...)
	out = append(out, e.users...)
	return append(out, e.cluster.Credentials[servicetest.CallerAll], e.cluster.Keys[0].Encode())
}
