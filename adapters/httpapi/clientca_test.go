package httpapi_test

// Reloading http.client_ca_file: a CA rotation under load, session
// resumption after a CA is taken out, and files that must not load.

import (
	"crypto/tls"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/tests/testlog"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

const workerIdentity = "spiffe://example.org/ns/jobs/sa/worker"

// caServer starts a server whose client CA file (returned) holds first,
// checked every poll, with one caller that must present workerIdentity;
// it returns the caller's credential too.
func caServer(t *testing.T, first []byte, poll time.Duration) (s *tlsServer, serverCA *testpki.CA, caFile, cred string) {
	t.Helper()
	serverCA = testpki.NewCA(t, "server CA")
	dir := t.TempDir()
	cfg := tlsCfg(serverCA.Server(t).Write(t, dir, "server"))
	cfg.CertPollInterval = poll
	cfg.ClientCAFile = filepath.Join(dir, "clients.pem")
	testpki.WriteFile(t, cfg.ClientCAFile, first, 0o644)
	cred, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	callers, err := httpapi.NewCallers([]httpapi.CallerConfig{{Name: "worker", CredentialHash: hash, Permissions: []string{"tokens:read"}, ClientCertIdentity: workerIdentity}}, "callers")
	if err != nil {
		t.Fatal(err)
	}
	return startTLS(t, cfg, callers), serverCA, cfg.ClientCAFile, cred
}

// workerCert is a client certificate for workerIdentity issued by ca.
func workerCert(t *testing.T, ca *testpki.CA) tls.Certificate {
	t.Helper()
	return ca.Issue(t, testpki.Spec{Client: true, URIs: []string{workerIdentity}}).TLS(t)
}

// clientConfig trusts serverCA and presents cert whatever CAs the server
// names.
func clientConfig(serverCA *testpki.CA, cert tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: serverCA.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}
}

const workerPath = "/v1/users/alice/providers"

// Rotating the client CA the way an operator does (old, then old and new,
// then new) under a load of requests with client certificates fails no
// request of a client whose CA stays trusted; after each reload new
// handshakes use the new CAs: the new CA's clients are accepted once it
// is added, the old CA's refused once it is removed, a resumed session of
// the old CA's included. An open connection is not dropped.
func TestClientCARotationUnderLoad(t *testing.T) {
	t.Parallel()
	oldCA, newCA := testpki.NewCA(t, "old client CA"), testpki.NewCA(t, "new client CA")
	s, serverCA, caFile, cred := caServer(t, oldCA.PEM, 20*time.Millisecond)
	oldCert, newCert := workerCert(t, oldCA), workerCert(t, newCA)
	accepted := func(cert tls.Certificate) bool {
		resp, _, err := get(client(t, serverCA, cert), s.srv.URL(), workerPath, cred)
		return err == nil && resp.StatusCode == http.StatusOK
	}
	if !accepted(oldCert) || accepted(newCert) {
		t.Fatal("before the rotation: want the old CA's client accepted and the new CA's refused")
	}

	// A client of the old CA that resumes sessions, and one that keeps its
	// connection open.
	resumeCfg := clientConfig(serverCA, oldCert)
	resumeCfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	resumer := &http.Client{Transport: &http.Transport{TLSClientConfig: resumeCfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for i := range 2 {
		resp, _, err := get(resumer, s.srv.URL(), workerPath, cred)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("resuming client, request %d: %v", i, err)
		}
		if i == 1 && !resp.TLS.DidResume {
			t.Fatal("the second connection did not resume its session: the check after the rotation would prove nothing")
		}
	}
	kept := client(t, serverCA, oldCert)
	if resp, _, err := get(kept, s.srv.URL(), workerPath, cred); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("kept-alive client: %v", err)
	}

	stopOld := load(t, s.srv.URL(), workerPath, cred, clientConfig(serverCA, oldCert))
	testpki.WriteFile(t, caFile, append(append([]byte{}, oldCA.PEM...), newCA.PEM...), 0o644)
	waitFor(t, "the new CA's client to be accepted", func() bool { return accepted(newCert) })
	stopNew := load(t, s.srv.URL(), workerPath, cred, clientConfig(serverCA, newCert))
	n, errs := stopOld()
	if len(errs) > 0 || n == 0 {
		t.Errorf("old CA's clients: %d requests, %d failed while the new CA was added: %v", n, len(errs), errs[:min(len(errs), 3)])
	}

	testpki.WriteFile(t, caFile, newCA.PEM, 0o644)
	waitFor(t, "the old CA's client to be refused", func() bool { return !accepted(oldCert) })
	n, errs = stopNew()
	if len(errs) > 0 || n == 0 {
		t.Errorf("new CA's clients: %d requests, %d failed across the rotation: %v", n, len(errs), errs[:min(len(errs), 3)])
	}
	if resp, _, err := get(resumer, s.srv.URL(), workerPath, cred); err == nil {
		t.Errorf("a resumed session of the removed CA: status %d, want a failed handshake", resp.StatusCode)
	}
	// The connection opened before the rotation stays open and served.
	var reused bool
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL()+workerPath, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
	req.Header.Set("Authorization", "Bearer "+cred)
	if resp, err := kept.Do(req); err != nil || resp.StatusCode != http.StatusOK || !reused {
		t.Errorf("the open connection after the rotation: %v, reused %v; want it kept and served", err, reused)
	} else {
		resp.Body.Close()
	}
	if c := strings.Count(s.logs.String(), "TLS client CA reloaded"); c < 2 || !strings.Contains(s.logs.String(), `"client_ca_file":"`+caFile+`"`) {
		t.Errorf("%d reloads logged, want 2, each naming the file:\n%s", c, s.logs)
	}
}

// A client CA file that cannot be loaded (half written, a key instead of
// certificates, no certificate) keeps the current CAs, and each failed
// reload logs one ERROR naming the setting and the file, never the
// file's content; start-up refuses the same files. A good file then loads.
func TestClientCAFailedReloadKeepsPool(t *testing.T) {
	t.Parallel()
	first, second := testpki.NewCA(t, "first client CA"), testpki.NewCA(t, "second client CA")
	s, serverCA, caFile, cred := caServer(t, first.PEM, time.Hour) // reloaded only when asked
	firstCert, secondCert := workerCert(t, first), workerCert(t, second)
	accepted := func(cert tls.Certificate) bool {
		resp, _, err := get(client(t, serverCA, cert), s.srv.URL(), workerPath, cred)
		return err == nil && resp.StatusCode == http.StatusOK
	}
	key := serverCA.Server(t).KeyPEM
	for _, tc := range []struct {
		name    string
		content []byte
		reason  string
	}{
		{"half written", append(append([]byte{}, first.PEM...), second.PEM[:len(second.PEM)/2]...), "does not decode (truncated?) after 1 certificate(s)"},
		{"a key", append(append([]byte{}, first.PEM...), key...), "block 2 of " + caFile + " is a"},
		{"no certificate", []byte("nothing here\n"), "holds no PEM certificate"},
		{"a broken certificate", []byte("-----BEGIN CERTIFICATE-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END CERTIFICATE-----\n"), "certificate 1 of " + caFile},
		{"missing", nil, "no such file"},
	} {
		if tc.content == nil {
			if err := os.Remove(caFile); err != nil {
				t.Fatal(err)
			}
		} else {
			testpki.WriteFile(t, caFile, tc.content, 0o644)
		}
		before := s.logs.String()
		s.srv.Reload("SIGHUP")
		logs := strings.TrimPrefix(s.logs.String(), before)
		var errorsLogged []string
		for line := range strings.Lines(logs) {
			if strings.Contains(line, `"level":"ERROR"`) {
				errorsLogged = append(errorsLogged, line)
			}
		}
		if len(errorsLogged) != 1 || !strings.Contains(errorsLogged[0], "TLS client CA not reloaded") ||
			!strings.Contains(errorsLogged[0], "TOKENSTORE_HTTP_CLIENT_CA_FILE (http.client_ca_file)") || !strings.Contains(errorsLogged[0], caFile) ||
			!strings.Contains(errorsLogged[0], tc.reason) {
			t.Errorf("%s: want one ERROR naming the setting, the file and %q; logged:\n%s", tc.name, tc.reason, logs)
		}
		if found, _ := testlog.FindSecret(s.logs.String(), strings.TrimSpace(string(key)), "c2VjcmV0LWtleS1tYXRlcmlhbA==", "secret-key-material"); found != "" {
			t.Errorf("%s: the log quotes the file", tc.name)
		}
		if !accepted(firstCert) || accepted(secondCert) {
			t.Errorf("%s: the previous CAs are not the ones in use", tc.name)
		}
		// Start-up refuses the same file.
		cfg := tlsCfg(serverCA.Server(t).Write(t, t.TempDir(), "server"))
		cfg.ClientCAFile = caFile
		if _, err := tryStartTLS(t, cfg, nil); err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: start-up: %v, want a refusal saying %q", tc.name, err, tc.reason)
		}
	}
	// A bundle with text between the certificates (as CA bundles have)
	// loads.
	testpki.WriteFile(t, caFile, append(append([]byte("# second client CA\n"), second.PEM...), "\n# end\n"...), 0o644)
	s.srv.Reload("SIGHUP")
	if accepted(firstCert) || !accepted(secondCert) {
		t.Error("the good file was not loaded")
	}
}
