package httpapi_test

// TLS and mutual TLS on a real listener: certificates are made in the test
// (tests/testpki), the service is a stub, and nothing needs a database.

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testlog"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

// listOnly answers ListProviders with nothing; it holds no state, so
// concurrent requests share it safely.
type listOnly struct{ httpapi.TokenService }

func (listOnly) ListProviders(context.Context, domain.UserID) ([]app.ProviderStatus, error) {
	return []app.ProviderStatus{}, nil
}

// tlsServer is a started server and what a test needs around it.
type tlsServer struct {
	srv  *httpapi.Server
	logs *testlog.Buffer
}

// startTLS starts a server with cfg (its Addr a free loopback port) and
// callers, stopped when t ends.
func startTLS(t *testing.T, cfg httpapi.Config, callers []httpapi.Caller) *tlsServer {
	t.Helper()
	s, err := tryStartTLS(t, cfg, callers)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

func tryStartTLS(t *testing.T, cfg httpapi.Config, callers []httpapi.Caller) (*tlsServer, error) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	auth, err := httpapi.NewAuthenticator(callers)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httpapi.NewServer(cfg, log, listOnly{}, auth, &checker{})
	if err := srv.Start(context.Background()); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &tlsServer{srv: srv, logs: logs}, nil
}

// tlsCfg is DefaultConfig serving files.
func tlsCfg(files testpki.Files) httpapi.Config {
	cfg := httpapi.DefaultConfig()
	cfg.TLSCertFile, cfg.TLSKeyFile = files.Cert, files.Key
	return cfg
}

// client trusts ca and presents certs[0], if given, whatever CAs the
// server asks for (crypto/tls would otherwise send nothing rather than a
// certificate from another CA); each call makes a new transport, so its
// first request opens a new connection.
func client(t *testing.T, ca *testpki.CA, certs ...tls.Certificate) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool()}
	if len(certs) > 0 {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get sends GET path with credential (none if empty) and returns the
// response with its body read.
func get(c *http.Client, base, path, credential string) (*http.Response, string, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return nil, "", err
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// A valid chain serves HTTPS, at TLS 1.2 or newer, and the URL says https.
func TestTLSServesValidChain(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	s := startTLS(t, tlsCfg(ca.Server(t).Write(t, t.TempDir(), "server")), nil)
	if !strings.HasPrefix(s.srv.URL(), "https://") {
		t.Errorf("URL = %s, want https://", s.srv.URL())
	}
	resp, _, err := get(client(t, ca), s.srv.URL(), "/healthz", "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("status %d, TLS %+v", resp.StatusCode, resp.TLS)
	}
	// HTTP/2 is offered, as net/http offers it over TLS.
	conn, err := tls.Dial("tcp", s.srv.Addr(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("ALPN negotiated %q, want h2", p)
	}
	conn.Close()
	// Plain HTTP on the TLS port is not served.
	if resp, _, err := get(http.DefaultClient, "http://"+s.srv.Addr(), "/healthz", ""); err == nil && resp.StatusCode == http.StatusOK {
		t.Error("plain HTTP answered 200 on the TLS port")
	}
}

// TLS 1.0 and 1.1 are refused in the handshake.
func TestTLSRefusesOldVersions(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	s := startTLS(t, tlsCfg(ca.Server(t).Write(t, t.TempDir(), "server")), nil)
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", s.srv.Addr(), &tls.Config{RootCAs: ca.Pool(), MinVersion: v, MaxVersion: v})
		if err == nil {
			conn.Close()
			t.Errorf("%s: handshake succeeded", tls.VersionName(v))
		}
	}
	conn, err := tls.Dial("tcp", s.srv.Addr(), &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	conn.Close()
}

// A pair that cannot serve fails start-up with the setting and the file
// named, never the key's content.
func TestTLSStartRefusesBadPair(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	other := testpki.NewCA(t, "other CA")
	good := ca.Server(t)
	cases := []struct {
		name  string
		write func(dir string) testpki.Files
		want  []string
	}{
		{"expired certificate", func(dir string) testpki.Files {
			return ca.Issue(t, testpki.Spec{DNS: []string{"localhost"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).Write(t, dir, "s")
		}, []string{"TOKENSTORE_HTTP_TLS_CERT_FILE", "s.crt", "expired"}},
		{"not yet valid", func(dir string) testpki.Files {
			return ca.Issue(t, testpki.Spec{DNS: []string{"localhost"}, NotBefore: time.Now().Add(time.Hour)}).Write(t, dir, "s")
		}, []string{"TOKENSTORE_HTTP_TLS_CERT_FILE", "s.crt", "not valid before"}},
		{"key readable by others", func(dir string) testpki.Files {
			f := good.Write(t, dir, "s")
			if err := os.Chmod(f.Key, 0o644); err != nil {
				t.Fatal(err)
			}
			return f
		}, []string{"TOKENSTORE_HTTP_TLS_KEY_FILE", "s.key", "chmod 600"}},
		{"key of another certificate", func(dir string) testpki.Files {
			f := good.Write(t, dir, "s")
			testpki.WriteFile(t, f.Key, other.Server(t).KeyPEM, 0o600)
			return f
		}, []string{"TOKENSTORE_HTTP_TLS_CERT_FILE", "TOKENSTORE_HTTP_TLS_KEY_FILE", "s.key", "does not match"}},
		{"key not PEM", func(dir string) testpki.Files {
			f := good.Write(t, dir, "s")
			testpki.WriteFile(t, f.Key, []byte("not-a-key-secret-material"), 0o600)
			return f
		}, []string{"TOKENSTORE_HTTP_TLS_KEY_FILE", "s.key"}},
		{"missing certificate", func(dir string) testpki.Files {
			f := good.Write(t, dir, "s")
			return testpki.Files{Cert: filepath.Join(dir, "absent.crt"), Key: f.Key}
		}, []string{"TOKENSTORE_HTTP_TLS_CERT_FILE", "absent.crt"}},
		{"client CA without certificates", func(dir string) testpki.Files {
			return good.Write(t, dir, "s")
		}, []string{"TOKENSTORE_HTTP_CLIENT_CA_FILE", "no PEM certificate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := tlsCfg(tc.write(dir))
			if tc.name == "client CA without certificates" {
				cfg.ClientCAFile = filepath.Join(dir, "ca.pem")
				testpki.WriteFile(t, cfg.ClientCAFile, []byte("nothing here\n"), 0o644)
			}
			_, err := tryStartTLS(t, cfg, nil)
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to name %q", err, w)
				}
			}
			if key, _ := os.ReadFile(cfg.TLSKeyFile); len(key) > 0 && strings.Contains(err.Error(), strings.TrimSpace(string(key))) {
				t.Error("the error quotes the key file")
			}
		})
	}
}

// A caller with client_cert_identity must present a certificate that
// chains to http.client_ca_file and carries that identity, with its
// credential; other callers need no certificate. A refusal never names
// the expected identity.
func TestClientCertificates(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "server CA")
	clients := testpki.NewCA(t, "client CA")
	stranger := testpki.NewCA(t, "another CA")
	dir := t.TempDir()
	cfg := tlsCfg(ca.Server(t).Write(t, dir, "server"))
	cfg.ClientCAFile = filepath.Join(dir, "clients.pem")
	testpki.WriteFile(t, cfg.ClientCAFile, clients.PEM, 0o644)

	creds := map[string]string{}
	var callers []httpapi.Caller
	for _, c := range []struct{ name, identity string }{
		{"spiffe", "spiffe://example.org/billing"}, {"dns", "billing.internal.example.org"}, {"plain", ""},
	} {
		cred, hash, err := httpapi.NewCredential()
		if err != nil {
			t.Fatal(err)
		}
		list, err := httpapi.NewCallers([]httpapi.CallerConfig{{Name: c.name, CredentialHash: hash, Permissions: []string{"tokens:read"}, ClientCertIdentity: c.identity}}, "callers")
		if err != nil {
			t.Fatal(err)
		}
		callers, creds[c.name] = append(callers, list...), cred
	}
	s := startTLS(t, cfg, callers)

	billing := clients.Issue(t, testpki.Spec{Client: true, URIs: []string{"spiffe://example.org/billing"}}).TLS(t)
	billingDNS := clients.Issue(t, testpki.Spec{Client: true, DNS: []string{"Billing.Internal.Example.org"}}).TLS(t)
	wrongSAN := clients.Issue(t, testpki.Spec{Client: true, URIs: []string{"spiffe://example.org/reports"}, DNS: []string{"reports.internal.example.org"}}).TLS(t)
	foreign := stranger.Issue(t, testpki.Spec{Client: true, URIs: []string{"spiffe://example.org/billing"}}).TLS(t)
	expired := clients.Issue(t, testpki.Spec{Client: true, URIs: []string{"spiffe://example.org/billing"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).TLS(t)

	const path = "/v1/users/alice/providers"
	cases := []struct {
		name, caller string
		cert         *tls.Certificate
		status       int    // 0: the handshake fails
		detail       string // part of the problem's detail
	}{
		{"URI SAN and credential", "spiffe", &billing, http.StatusOK, ""},
		{"DNS SAN, another case", "dns", &billingDNS, http.StatusOK, ""},
		{"credential without certificate", "spiffe", nil, http.StatusUnauthorized, "none was presented"},
		{"certificate with a wrong SAN", "spiffe", &wrongSAN, http.StatusUnauthorized, "does not carry the identity"},
		{"DNS caller, URI certificate", "dns", &billing, http.StatusUnauthorized, "does not carry the identity"},
		{"certificate from another CA", "spiffe", &foreign, 0, ""},
		{"expired client certificate", "spiffe", &expired, 0, ""},
		{"caller without identity, no certificate", "plain", nil, http.StatusOK, ""},
		{"caller without identity, a certificate", "plain", &wrongSAN, http.StatusOK, ""},
		{"certificate without credential", "", &billing, http.StatusUnauthorized, "send Authorization"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var certs []tls.Certificate
			if tc.cert != nil {
				certs = append(certs, *tc.cert)
			}
			resp, body, err := get(client(t, ca, certs...), s.srv.URL(), path, creds[tc.caller])
			if tc.status == 0 {
				if err == nil {
					t.Fatalf("handshake succeeded: status %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.detail) {
				t.Errorf("status %d, body %s; want %d with %q", resp.StatusCode, body, tc.status, tc.detail)
			}
			if tc.status == http.StatusUnauthorized && (resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(body, `"code":"unauthenticated"`)) {
				t.Errorf("401 without its challenge or code: %v %s", resp.Header, body)
			}
			for _, identity := range []string{"example.org/billing", "billing.internal"} {
				if strings.Contains(strings.ToLower(body), identity) {
					t.Errorf("the answer reveals the expected identity: %s", body)
				}
			}
		})
	}
}

// named is a server certificate for loopback with common name cn.
func named(cn string) testpki.Spec {
	return testpki.Spec{CommonName: cn, DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
}

// subject is the common name of the certificate a new connection sees.
func subject(t *testing.T, ca *testpki.CA, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// waitFor polls cond until it holds, failing t after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// load runs requests for path as credential (none if empty) without pause,
// on kept-alive connections and on new ones, each client configured by a
// clone of cfg, until stop is called; stop returns how many ran and every
// failure.
func load(t *testing.T, url, path, credential string, cfg *tls.Config) (stop func() (int64, []error)) {
	var (
		wg   sync.WaitGroup
		done atomic.Bool
		n    atomic.Int64
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for i := range 4 {
		wg.Go(func() {
			// Half the workers open a new connection (a full handshake: no
			// session cache) for each request.
			tr := &http.Transport{TLSClientConfig: cfg.Clone(), DisableKeepAlives: i%2 == 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for !done.Load() {
				resp, _, err := get(c, url, path, credential)
				switch {
				case err != nil:
					fail(err)
				case resp.StatusCode != http.StatusOK:
					fail(errors.New(resp.Status))
				}
				n.Add(1)
			}
		})
	}
	return func() (int64, []error) {
		done.Store(true)
		wg.Wait()
		return n.Load(), errs
	}
}

// startReloading starts a server on a certificate named "first" that
// checks its files every poll.
func startReloading(t *testing.T, poll time.Duration) (*tlsServer, *testpki.CA, testpki.Files) {
	t.Helper()
	ca := testpki.NewCA(t, "test CA")
	files := ca.Issue(t, named("first")).Write(t, t.TempDir(), "server")
	cfg := tlsCfg(files)
	cfg.CertPollInterval = poll
	return startTLS(t, cfg, nil), ca, files
}

// Replacing the files mid-run reloads the pair: requests keep succeeding
// across the swap, on open connections and new ones, and new connections
// see the new certificate.
func TestTLSReloadOnFileChange(t *testing.T) {
	t.Parallel()
	s, ca, files := startReloading(t, 20*time.Millisecond)
	dir := filepath.Dir(files.Cert)
	if got := subject(t, ca, s.srv.Addr()); got != "first" {
		t.Fatalf("subject %q, want first", got)
	}
	stop := load(t, s.srv.URL(), "/healthz", "", &tls.Config{RootCAs: ca.Pool()})
	time.Sleep(100 * time.Millisecond)
	ca.Issue(t, named("second")).Write(t, dir, "server")
	waitFor(t, "the new certificate", func() bool { return subject(t, ca, s.srv.Addr()) == "second" })
	time.Sleep(100 * time.Millisecond)
	n, errs := stop()
	if len(errs) > 0 || n == 0 {
		t.Errorf("%d requests, %d failed across the reload: %v", n, len(errs), errs[:min(len(errs), 3)])
	}
	if !strings.Contains(s.logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", s.logs)
	}
}

// Reload (serve's SIGHUP) reloads the pair at once, whatever the poll
// interval, and logs its trigger.
func TestTLSReloadNow(t *testing.T) {
	t.Parallel()
	s, ca, files := startReloading(t, time.Hour)
	dir := filepath.Dir(files.Cert)
	waitFor(t, "the server to listen", func() bool { return subject(t, ca, s.srv.Addr()) == "first" })
	ca.Issue(t, named("second")).Write(t, dir, "server")
	s.srv.Reload("SIGHUP")
	if got := subject(t, ca, s.srv.Addr()); got != "second" {
		t.Errorf("after Reload: subject %q, want second", got)
	}
	if !strings.Contains(s.logs.String(), `"trigger":"SIGHUP"`) {
		t.Errorf("no SIGHUP reload logged:\n%s", s.logs)
	}
}

// A reload that fails (a broken key, an expired certificate) keeps the
// current pair, logs an error naming the file and never its content, and
// a later good pair is picked up.
func TestTLSFailedReloadKeepsPair(t *testing.T) {
	t.Parallel()
	s, ca, files := startReloading(t, 20*time.Millisecond)
	dir := filepath.Dir(files.Cert)

	const garbage = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
	testpki.WriteFile(t, files.Key, []byte(garbage), 0o600)
	waitFor(t, "the failed reload", func() bool { return strings.Contains(s.logs.String(), "TLS certificate not reloaded") })
	if got := subject(t, ca, s.srv.Addr()); got != "first" {
		t.Errorf("after a failed reload: subject %q, want first", got)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "server.key") || !strings.Contains(logs, "TOKENSTORE_HTTP_TLS_KEY_FILE") {
		t.Errorf("the failure is not an error naming the key file:\n%s", logs)
	}
	if s, _ := testlog.FindSecret(logs, "c2VjcmV0LWtleS1tYXRlcmlhbA==", "secret-key-material"); s != "" {
		t.Errorf("the log quotes the key file")
	}

	before := strings.Count(s.logs.String(), "TLS certificate not reloaded")
	expired := named("expired")
	expired.NotBefore, expired.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	ca.Issue(t, expired).Write(t, dir, "server")
	waitFor(t, "the refused expired pair", func() bool { return strings.Count(s.logs.String(), "TLS certificate not reloaded") > before })
	if got := subject(t, ca, s.srv.Addr()); got != "first" {
		t.Errorf("after an expired pair: subject %q, want first", got)
	}

	ca.Issue(t, named("second")).Write(t, dir, "server")
	waitFor(t, "the good pair", func() bool { return subject(t, ca, s.srv.Addr()) == "second" })
}

// Plain HTTP is served only on loopback, unless http.plaintext says the
// transport is protected elsewhere; TLS settings that need each other are
// refused alone. Each refusal names the settings to use.
func TestValidateTransport(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		set  func(*httpapi.Config)
		want []string // nil: valid
	}{
		{"loopback IPv4, plain", func(c *httpapi.Config) { c.Addr = "127.0.0.1:8080" }, nil},
		{"loopback IPv6, plain", func(c *httpapi.Config) { c.Addr = "[::1]:8080" }, nil},
		{"localhost, plain", func(c *httpapi.Config) { c.Addr = "localhost:8080" }, nil},
		{"every interface, plain", func(c *httpapi.Config) { c.Addr = "0.0.0.0:8080" },
			[]string{"0.0.0.0:8080", "TOKENSTORE_HTTP_TLS_CERT_FILE", "TOKENSTORE_HTTP_TLS_KEY_FILE", "TOKENSTORE_HTTP_PLAINTEXT"}},
		{"empty host, plain", func(c *httpapi.Config) { c.Addr = ":8080" }, []string{"TOKENSTORE_HTTP_PLAINTEXT"}},
		{"IPv6 any, plain", func(c *httpapi.Config) { c.Addr = "[::]:8080" }, []string{"TOKENSTORE_HTTP_PLAINTEXT"}},
		{"host name, plain", func(c *httpapi.Config) { c.Addr = "tokenstore.internal:8080" }, []string{"TOKENSTORE_HTTP_PLAINTEXT"}},
		{"routable IP, plain", func(c *httpapi.Config) { c.Addr = "10.0.0.5:8080" }, []string{"TOKENSTORE_HTTP_PLAINTEXT"}},
		{"every interface, plaintext", func(c *httpapi.Config) { c.Addr, c.Plaintext = "0.0.0.0:8080", true }, nil},
		{"every interface, TLS", func(c *httpapi.Config) { c.Addr, c.TLSCertFile, c.TLSKeyFile = "0.0.0.0:8080", "c", "k" }, nil},
		{"TLS and client CA", func(c *httpapi.Config) { c.TLSCertFile, c.TLSKeyFile, c.ClientCAFile = "c", "k", "ca" }, nil},
		{"certificate without key", func(c *httpapi.Config) { c.TLSCertFile = "c" }, []string{"TOKENSTORE_HTTP_TLS_KEY_FILE", "both"}},
		{"key without certificate", func(c *httpapi.Config) { c.TLSKeyFile = "k" }, []string{"TOKENSTORE_HTTP_TLS_CERT_FILE", "both"}},
		{"client CA without TLS", func(c *httpapi.Config) { c.ClientCAFile = "ca" }, []string{"TOKENSTORE_HTTP_CLIENT_CA_FILE", "TOKENSTORE_HTTP_TLS_CERT_FILE"}},
		{"plaintext and TLS", func(c *httpapi.Config) { c.Plaintext, c.TLSCertFile, c.TLSKeyFile = true, "c", "k" }, []string{"TOKENSTORE_HTTP_PLAINTEXT", "keep one"}},
	}
	for _, tc := range cases {
		cfg := httpapi.DefaultConfig()
		tc.set(&cfg)
		err := cfg.Validate(0)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v, want it to name %s", tc.name, err, w)
			}
		}
	}
}

// client_cert_identity is a URI SAN with a scheme and host, or a DNS name;
// anything else, a wildcard included, is refused naming the field.
func TestCertIdentity(t *testing.T) {
	t.Parallel()
	_, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in, want string // want "": refused
	}{
		{"spiffe://example.org/billing", "spiffe://example.org/billing"},
		{"https://billing.example.org/svc", "https://billing.example.org/svc"},
		{"billing.internal.example.org", "billing.internal.example.org"},
		{"Billing.Example.ORG", "billing.example.org"},
		{"billing", "billing"},
		{"*.example.org", ""},
		{"spiffe:///billing", ""},
		{"spiffe://example.org/billing#x", ""},
		{"spiffe://example.org/billing?x=1", ""},
		{"spiffe://user@example.org/billing", ""},
		{"billing..example.org", ""},
		{"-billing.example.org", ""},
		{"billing example", ""},
	}
	for _, tc := range cases {
		callers, err := httpapi.NewCallers([]httpapi.CallerConfig{{Name: "svc", CredentialHash: hash, Permissions: []string{"tokens:read"}, ClientCertIdentity: tc.in}}, "callers")
		switch {
		case tc.want == "" && (err == nil || !strings.HasPrefix(err.Error(), `callers[0].client_cert_identity (caller "svc"): `)):
			t.Errorf("%q: err = %v, want a refusal naming the field", tc.in, err)
		case tc.want != "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && callers[0].ClientCertIdentity.String() != tc.want:
			t.Errorf("%q: identity %q, want %q", tc.in, callers[0].ClientCertIdentity, tc.want)
		}
	}
}
