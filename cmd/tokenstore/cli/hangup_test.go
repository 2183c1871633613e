package cli_test

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

// TestServeSurvivesSIGHUP runs the real binary and sends it SIGHUP: it
// keeps serving, with or without TLS. Without TLS it reloads only the
// keyring and logs at INFO that it is unchanged; with TLS it also reloads
// the certificate pair and
// the client CA file: new connections get the new certificate, and
// clients of the new CA are accepted, the old CA's refused.
func TestServeSurvivesSIGHUP(t *testing.T) {
	t.Parallel()
	bin := tokenstoreBinary(t)
	for _, withTLS := range []bool{false, true} {
		name := map[bool]string{false: "plain HTTP", true: "TLS"}[withTLS]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const identity = "spiffe://example.org/ns/jobs/sa/worker"
			cred, hash, err := httpapi.NewCredential()
			if err != nil {
				t.Fatal(err)
			}
			callers, err := json.Marshal([]map[string]any{{"name": "worker", "credential_hash": hash, "permissions": []string{"tokens:read"}}})
			if err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			env := serveEnv(t, addr)
			base, client := "http://"+addr, http.DefaultClient
			dir := t.TempDir()
			serverCA, oldCA, newCA := testpki.NewCA(t, "server CA"), testpki.NewCA(t, "old client CA"), testpki.NewCA(t, "new client CA")
			caFile := filepath.Join(dir, "clients.pem")
			if withTLS {
				files := serverCA.Issue(t, testpki.Spec{CommonName: "first", IPs: serverIPs}).Write(t, dir, "server")
				testpki.WriteFile(t, caFile, oldCA.PEM, 0o644)
				if callers, err = json.Marshal([]map[string]any{{"name": "worker", "credential_hash": hash, "permissions": []string{"tokens:read"}, "client_cert_identity": identity}}); err != nil {
					t.Fatal(err)
				}
				env = append(env, "TOKENSTORE_HTTP_TLS_CERT_FILE="+files.Cert, "TOKENSTORE_HTTP_TLS_KEY_FILE="+files.Key, "TOKENSTORE_HTTP_CLIENT_CA_FILE="+caFile)
				base = "https://" + addr
				client = tlsClient(t, serverCA, nil)
			}
			env = append(env, "TOKENSTORE_CALLERS="+string(callers))

			logs := captured(t)
			cmd, exited := startServe(t, bin, env, logs, logs)
			waitServing(t, client, base, exited)
			logged := func() string {
				b, _ := os.ReadFile(logs.Name())
				return string(b)
			}

			oldCert := oldCA.Issue(t, testpki.Spec{Client: true, URIs: []string{identity}}).TLS(t)
			newCert := newCA.Issue(t, testpki.Spec{Client: true, URIs: []string{identity}}).TLS(t)
			read := func(cert *tls.Certificate) int { // 0: the handshake failed
				req, _ := http.NewRequest(http.MethodGet, base+"/v1/users/alice/providers", nil)
				req.Header.Set("Authorization", "Bearer "+cred)
				c := client
				if cert != nil {
					c = tlsClient(t, serverCA, cert)
				}
				resp, err := c.Do(req)
				if err != nil {
					return 0
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if withTLS {
				if got := read(&oldCert); got != http.StatusOK {
					t.Fatalf("old CA's client before the reload: %d", got)
				}
				serverCA.Issue(t, testpki.Spec{CommonName: "second", IPs: serverIPs}).Write(t, dir, "server")
				testpki.WriteFile(t, caFile, newCA.PEM, 0o644)
			}

			for i := range 2 { // a second SIGHUP is handled like the first
				if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				want := `"msg":"keyring reloaded: unchanged","trigger":"SIGHUP"`
				if withTLS {
					want = `"msg":"TLS client CA reloaded","trigger":"SIGHUP"`
				}
				eventually(t, 30*time.Second, "the SIGHUP to be logged", func() bool {
					select {
					case err := <-exited:
						t.Fatalf("the server exited after SIGHUP: %v\n%s", err, logged())
					default:
					}
					return strings.Count(logged(), want) > i
				})
			}
			if code := read(nil); code != http.StatusOK && code != http.StatusUnauthorized {
				t.Errorf("after SIGHUP: %d, want an answer", code)
			}
			out := logged()
			if !withTLS {
				if code := read(nil); code != http.StatusOK {
					t.Errorf("after SIGHUP: %d, want 200", code)
				}
				for _, m := range logLines(t, out) {
					if msg, _ := m["msg"].(string); strings.Contains(msg, "keyring reloaded") && m["level"] != "INFO" {
						t.Errorf("logged at %v, want INFO: %v", m["level"], m)
					}
				}
			} else {
				if !strings.Contains(out, `"msg":"TLS certificate reloaded","trigger":"SIGHUP"`) || !strings.Contains(out, `"subject":"CN=second"`) {
					t.Errorf("no certificate reload on SIGHUP logged:\n%s", out)
				}
				if got := read(&newCert); got != http.StatusOK {
					t.Errorf("new CA's client after the reload: %d, want 200", got)
				}
				if got := read(&oldCert); got != 0 {
					t.Errorf("old CA's client after the reload: %d, want a failed handshake", got)
				}
				conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: serverCA.Pool()})
				if err != nil {
					t.Fatal(err)
				}
				if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "second" {
					t.Errorf("a new connection gets %q, want second", cn)
				}
				conn.Close()
			}

			stopServe(t, cmd, exited)
		})
	}
}

// serverIPs are the addresses the test server's certificate names.
var serverIPs = []net.IP{net.IPv4(127, 0, 0, 1)}

// tlsClient trusts ca and presents cert, if not nil, whatever CAs the
// server names; each client opens its own connections.
func tlsClient(t *testing.T, ca *testpki.CA, cert *tls.Certificate) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool()}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
