package api_test

// TLS and mutual TLS end to end: the composition root's graph over the real
// PostgreSQL, serving HTTPS with certificates made in the test.

import (
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

const (
	mtlsCaller   = "mtls-worker"
	mtlsIdentity = "spiffe://example.org/ns/jobs/sa/worker"
)

// setupTLS starts an instance serving HTTPS, with client certificates
// verified against clients, and a caller (mtlsCaller, tokens:read) that must
// present mtlsIdentity. The instance's client trusts the server's CA and
// presents no certificate; withCert gives one that does.
func setupTLS(t *testing.T, clients *testpki.CA, configure func(*cli.Config)) (*instance, *testpki.CA) {
	t.Helper()
	cred, caller := servicetest.NewCaller(t, mtlsCaller, httpapi.PermTokensRead)
	var err error
	if caller.ClientCertIdentity, err = httpapi.ParseCertIdentity(mtlsIdentity); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	testpki.WriteFile(t, caFile, clients.PEM, 0o644)
	c := servicetest.Start(t, servicetest.Options{TLS: true, Configure: func(cfg *cli.Config) {
		cfg.HTTP.ClientCAFile = caFile
		cfg.Callers = append(cfg.Callers, caller)
		if configure != nil {
			configure(cfg)
		}
	}})
	c.AddSecrets(cred)
	c.Credentials[mtlsCaller] = cred
	in := c.Instances[0]
	return &instance{
		t: t, base: in.URL, creds: c.Credentials, pool: c.DB, logs: in.Logs, app: in,
		keyring: c.Keyring, client: c.Client(t), cluster: c,
	}, c.CA
}

// withCert is inst with a client presenting cert.
func (inst *instance) withCert(cert tls.Certificate) *instance {
	other := *inst
	other.client = inst.cluster.Client(inst.t, cert)
	return &other
}

// Over HTTPS a token is stored and read back; the caller bound to a client
// certificate reads only with that certificate and its credential, and a
// refusal hands out no token and names no identity.
func TestTLSEndToEnd(t *testing.T) {
	t.Parallel()
	clients := testpki.NewCA(t, "client CA")
	inst, _ := setupTLS(t, clients, nil)
	if !strings.HasPrefix(inst.base, "https://") {
		t.Fatalf("base %s, want https", inst.base)
	}
	const path = "/v1/users/alice/providers/gitlab/tokens"
	if r := inst.do("PUT", path, callerAll, map[string]any{"access_token": "glpat-tls-e2e", "refresh_token": "glrt-tls-e2e", "expires_in": 7200}); r.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.StatusCode, r.body)
	}
	if r := inst.do("GET", path, callerAll, nil); r.StatusCode != http.StatusOK || r.TLS == nil || r.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("GET over TLS: %d %s", r.StatusCode, r.body)
	}

	good := clients.Issue(t, testpki.Spec{Client: true, URIs: []string{mtlsIdentity}}).TLS(t)
	wrong := clients.Issue(t, testpki.Spec{Client: true, URIs: []string{"spiffe://example.org/ns/jobs/sa/other"}}).TLS(t)
	r := inst.withCert(good).do("GET", path, mtlsCaller, nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "glpat-tls-e2e") {
		t.Errorf("certificate and credential: %d %s", r.StatusCode, r.body)
	}
	for name, c := range map[string]*instance{"no certificate": inst, "wrong SAN": inst.withCert(wrong)} {
		r := c.do("GET", path, mtlsCaller, nil)
		if r.StatusCode != http.StatusUnauthorized || r.problem(t).Code != httpapi.CodeUnauthenticated {
			t.Errorf("%s: %d %s, want 401 unauthenticated", name, r.StatusCode, r.body)
		}
		if strings.Contains(string(r.body), "glpat") || strings.Contains(string(r.body), "example.org") {
			t.Errorf("%s: the refusal carries a token or the identity: %s", name, r.body)
		}
	}
	// The certificate without the credential is not enough either.
	if r := inst.withCert(good).do("GET", path, "", nil); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("certificate alone: %d %s", r.StatusCode, r.body)
	}
	// A certificate from another CA fails the handshake.
	stranger := testpki.NewCA(t, "another CA").Issue(t, testpki.Spec{Client: true, URIs: []string{mtlsIdentity}}).TLS(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: inst.cluster.CA.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil }}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", inst.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+inst.creds[mtlsCaller])
	if resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("a certificate from another CA: status %d, want a failed handshake", resp.StatusCode)
	}
	// Plain HTTP on the TLS port answers nothing useful.
	if resp, err := http.Get("http://" + strings.TrimPrefix(inst.base, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
}

// Rotating the certificate files under a load of reads (on kept-alive and
// new connections) fails no request, and new connections get the new
// certificate.
func TestTLSReloadUnderLoad(t *testing.T) {
	t.Parallel()
	inst, ca := setupTLS(t, testpki.NewCA(t, "client CA"), func(cfg *cli.Config) { cfg.HTTP.CertPollInterval = 50 * time.Millisecond })
	const path = "/v1/users/bob/providers/gitlab/tokens"
	if r := inst.do("PUT", path, callerAll, map[string]any{"access_token": "glpat-reload", "expires_in": 7200}); r.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.StatusCode, r.body)
	}
	subject := func() string {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(inst.base, "https://"), &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	before := subject()

	var (
		wg          sync.WaitGroup
		done        atomic.Bool
		n, failures atomic.Int64
		firstErr    atomic.Value
	)
	for i := range 4 {
		wg.Go(func() {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: i%2 == 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for !done.Load() {
				req, _ := http.NewRequest("GET", inst.base+path, nil)
				req.Header.Set("Authorization", "Bearer "+inst.creds[callerAll])
				resp, err := c.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = &statusError{resp.StatusCode}
					}
				}
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				n.Add(1)
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	ca.Issue(t, testpki.Spec{CommonName: "rotated", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}).Write(t, filepath.Dir(inst.cluster.CertFiles.Cert), "server")
	deadline := time.Now().Add(30 * time.Second)
	for subject() != "rotated" {
		if time.Now().After(deadline) {
			t.Fatal("new connections never saw the rotated certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	done.Store(true)
	wg.Wait()
	if failures.Load() > 0 || n.Load() == 0 {
		t.Errorf("%d reads, %d failed across the rotation (first: %v)", n.Load(), failures.Load(), firstErr.Load())
	}
	if before == "rotated" {
		t.Errorf("subject before the rotation %q", before)
	}
}

type statusError struct{ status int }

func (e *statusError) Error() string { return http.StatusText(e.status) }
