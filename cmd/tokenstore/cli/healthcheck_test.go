package cli_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/tests/testdb"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

// readyServer answers GET /readyz with the status it holds and counts the
// requests for any other path.
type readyServer struct {
	status atomic.Int32
	stray  atomic.Int32
}

func (s *readyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/readyz" {
		s.stray.Add(1)
		http.NotFound(w, r)
		return
	}
	w.WriteHeader(int(s.status.Load()))
	_, _ = w.Write([]byte("{\"status\":\"not ready: database\"}\n\x00"))
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// healthcheck finds the server from http.addr (every interface is asked on
// loopback), exits 0 only on 200 from /readyz, and says what it got.
func TestHealthcheckPlainHTTP(t *testing.T) {
	t.Parallel()
	h := &readyServer{}
	h.status.Store(http.StatusOK)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	port := portOf(t, srv.Listener.Addr().String())

	for _, addr := range []string{srv.Listener.Addr().String(), "0.0.0.0:" + port, ":" + port} {
		out, _, err := run(t, map[string]string{"TOKENSTORE_HTTP_ADDR": addr}, "healthcheck")
		if err != nil || !strings.Contains(out, "http://127.0.0.1:"+port+"/readyz answered 200") {
			t.Errorf("http.addr %s: err %v, out %q", addr, err, out)
		}
	}
	if h.stray.Load() != 0 {
		t.Errorf("%d requests for another path than /readyz", h.stray.Load())
	}

	h.status.Store(http.StatusServiceUnavailable)
	_, _, err := run(t, map[string]string{"TOKENSTORE_HTTP_ADDR": srv.Listener.Addr().String()}, "healthcheck")
	wantErr(t, err, "answered 503", `not ready: database"}`)
	if err != nil && strings.ContainsRune(err.Error(), 0) {
		t.Errorf("the error carries a control character: %q", err)
	}

	// --url replaces the address; a redirect is not followed (it is no 200).
	h.status.Store(http.StatusOK)
	out, _, err := run(t, nil, "healthcheck", "--url", srv.URL+"/readyz")
	if err != nil || !strings.Contains(out, "answered 200") {
		t.Errorf("--url: %v %q", err, out)
	}
	_, _, err = run(t, nil, "healthcheck", "--url", srv.URL+"/healthz")
	wantErr(t, err, "answered 404")

	srv.Close()
	_, _, err = run(t, map[string]string{"TOKENSTORE_HTTP_ADDR": srv.Listener.Addr().String()}, "healthcheck", "--timeout", "2s")
	wantErr(t, err, "healthcheck: http://"+srv.Listener.Addr().String()+"/readyz", "refused")
}

func TestHealthcheckRefusesWhatItCannotAsk(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want []string
	}{
		{map[string]string{"TOKENSTORE_HTTP_ADDR": "127.0.0.1:0"}, nil, []string{"TOKENSTORE_HTTP_ADDR (http.addr)", "give --url"}},
		{nil, []string{"--url", "127.0.0.1:8080/readyz"}, []string{"--url", "not an http:// or https:// URL"}},
		{nil, []string{"--url", "ftp://127.0.0.1/readyz"}, []string{"not an http:// or https:// URL"}},
		{nil, []string{"--timeout", "0s"}, []string{"--timeout must be positive"}},
		{nil, []string{"extra"}, []string{`unexpected "extra"`}},
		{nil, []string{"--ca-file", "/nonexistent/ca.pem"}, []string{"--ca-file", "/nonexistent/ca.pem"}},
	} {
		_, _, err := run(t, tt.env, append([]string{"healthcheck"}, tt.args...)...)
		wantErr(t, err, tt.want...)
	}
}

// With TLS settings the check speaks https and trusts exactly the
// certificate the server is configured with, or the CA of --ca-file.
func TestHealthcheckTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	served := ca.Server(t)
	srv := httptest.NewUnstartedServer(okReady())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{served.TLS(t)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	dir := t.TempDir()
	files := served.Write(t, dir, "server")
	env := map[string]string{"TOKENSTORE_HTTP_ADDR": "0.0.0.0:" + portOf(t, addr),
		"TOKENSTORE_HTTP_TLS_CERT_FILE": files.Cert, "TOKENSTORE_HTTP_TLS_KEY_FILE": files.Key}

	out, _, err := run(t, env, "healthcheck")
	if err != nil || !strings.Contains(out, "https://127.0.0.1:"+portOf(t, addr)+"/readyz answered 200") {
		t.Errorf("pinned certificate: %v %q", err, out)
	}

	// The configured file holds another certificate (same CA): refused.
	other := ca.Server(t).Write(t, t.TempDir(), "other")
	_, _, err = run(t, map[string]string{"TOKENSTORE_HTTP_ADDR": addr, "TOKENSTORE_HTTP_TLS_CERT_FILE": other.Cert, "TOKENSTORE_HTTP_TLS_KEY_FILE": other.Key}, "healthcheck")
	wantErr(t, err, "not the one in TOKENSTORE_HTTP_TLS_CERT_FILE (http.tls_cert_file)", "--ca-file")

	// --ca-file: verified as any client does, host name included.
	caFile := writeFile(t, "ca.pem", string(ca.PEM), 0o644)
	if _, _, err := run(t, nil, "healthcheck", "--ca-file", caFile, "--url", "https://"+addr+"/readyz"); err != nil {
		t.Errorf("--ca-file: %v", err)
	}
	strangerFile := writeFile(t, "stranger.pem", string(testpki.NewCA(t, "stranger").PEM), 0o644)
	_, _, err = run(t, nil, "healthcheck", "--ca-file", strangerFile, "--url", "https://"+addr+"/readyz")
	wantErr(t, err, "certificate signed by unknown authority")
	// Without TLS settings or --ca-file: the system's roots, which do not
	// know the test CA.
	_, _, err = run(t, nil, "healthcheck", "--url", "https://"+addr+"/readyz")
	wantErr(t, err, "certificate")
}

func okReady() *readyServer {
	h := &readyServer{}
	h.status.Store(http.StatusOK)
	return h
}

// Against a real `serve` with TLS on a real database, the healthcheck run
// with the same settings passes while it serves and fails once it stopped.
func TestHealthcheckAgainstServe(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	files := ca.Server(t).Write(t, t.TempDir(), "server")
	callers, _ := callersJSON(t, "svc")
	env := map[string]string{
		"TOKENSTORE_DATABASE_URL":       testdb.NewDSN(t),
		"TOKENSTORE_KEYS":               fernetKey(t),
		"TOKENSTORE_CALLERS":            callers,
		"TOKENSTORE_HTTP_ADDR":          "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"TOKENSTORE_HTTP_TLS_CERT_FILE": files.Cert,
		"TOKENSTORE_HTTP_TLS_KEY_FILE":  files.Key,
	}
	r := start(t, []string{"serve"}, envOf(env))
	eventually(t, 60*time.Second, "serve to listen", func() bool {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("serve returned: %v\n%s", err, r.stderr.String())
		default:
		}
		return listeningAddr(t, r.stderr.String()) != ""
	})
	if out, _, err := run(t, env, "healthcheck"); err != nil || !strings.Contains(out, "https://"+env["TOKENSTORE_HTTP_ADDR"]+"/readyz answered 200") {
		t.Errorf("healthcheck of a serving instance: %v %q", err, out)
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, env, "healthcheck")
	wantErr(t, err, "https://"+env["TOKENSTORE_HTTP_ADDR"]+"/readyz")
}

// freePort is a loopback TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
