package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

// The TLS settings load from the environment and the file; a file setting
// that names no file, or a key file others may read, is refused at load
// naming the setting.
func TestTLSSettings(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test CA")
	files := ca.Server(t).Write(t, t.TempDir(), "server")
	caFile := writeFile(t, "ca.pem", string(ca.PEM), 0o644)
	cfg, err := cli.Load("", false, envOf(map[string]string{
		"TOKENSTORE_HTTP_TLS_CERT_FILE": files.Cert, "TOKENSTORE_HTTP_TLS_KEY_FILE": files.Key,
		"TOKENSTORE_HTTP_CLIENT_CA_FILE": caFile, "TOKENSTORE_HTTP_ADDR": "0.0.0.0:8443",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.TLSCertFile != files.Cert || cfg.HTTP.TLSKeyFile != files.Key || cfg.HTTP.ClientCAFile != caFile || cfg.HTTP.Plaintext {
		t.Errorf("HTTP config %+v", cfg.HTTP)
	}
	path := writeFile(t, "plain.yaml", "http:\n  addr: 0.0.0.0:8080\n  plaintext: true\n", 0o600)
	if cfg, err = cli.Load(path, false, envOf(nil)); err != nil || !cfg.HTTP.Plaintext {
		t.Errorf("plaintext from the file: %v, %+v", err, cfg.HTTP)
	}

	if err := os.Chmod(files.Key, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = cli.Load("", false, envOf(map[string]string{"TOKENSTORE_HTTP_TLS_CERT_FILE": files.Cert, "TOKENSTORE_HTTP_TLS_KEY_FILE": files.Key}))
	wantErr(t, err, "TOKENSTORE_HTTP_TLS_KEY_FILE (http.tls_key_file)", "chmod 600")
	_, err = cli.Load("", false, envOf(map[string]string{"TOKENSTORE_HTTP_TLS_CERT_FILE": filepath.Join(t.TempDir(), "absent.crt")}))
	wantErr(t, err, "TOKENSTORE_HTTP_TLS_CERT_FILE (http.tls_cert_file)", "absent.crt")
	_, err = cli.Load("", false, envOf(map[string]string{"TOKENSTORE_HTTP_CLIENT_CA_FILE": t.TempDir()}))
	wantErr(t, err, "TOKENSTORE_HTTP_CLIENT_CA_FILE (http.client_ca_file)", "is not a file")
}

// serve, with and without --dev, refuses plain HTTP beyond loopback with
// one error naming the settings to use, before anything starts; --dev
// listens on loopback unless http.addr says otherwise.
func TestServeRefusesPlainHTTPBeyondLoopback(t *testing.T) {
	t.Parallel()
	cfg, err := cli.Load("", true, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:8080" {
		t.Errorf("--dev listens on %s, want 127.0.0.1:8080", cfg.HTTP.Addr)
	}
	callers, _ := callersJSON(t, "svc")
	for _, args := range [][]string{{"serve"}, {"serve", "--dev"}} {
		for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
			t.Run(strings.Join(args, " ")+" "+addr, func(t *testing.T) {
				t.Parallel()
				env := map[string]string{
					"TOKENSTORE_DATABASE_URL": "postgres://u@127.0.0.1:1/tokens?sslmode=disable",
					"TOKENSTORE_KEYS":         fernetKey(t),
					"TOKENSTORE_CALLERS":      callers,
					"TOKENSTORE_HTTP_ADDR":    addr,
					"TOKENSTORE_DEV_DIR":      filepath.Join(t.TempDir(), "dev"),
				}
				_, errOut, err := run(t, env, args...)
				wantErr(t, err, addr, "not a loopback address", "TOKENSTORE_HTTP_TLS_CERT_FILE (http.tls_cert_file)",
					"TOKENSTORE_HTTP_TLS_KEY_FILE (http.tls_key_file)", "TOKENSTORE_HTTP_PLAINTEXT (http.plaintext)")
				if strings.Contains(errOut, "listening") {
					t.Errorf("listened:\n%s", errOut)
				}
			})
		}
	}
}

// A caller entry's client_cert_identity loads from the callers setting; it
// needs http.client_ca_file, or no certificate could ever be verified.
func TestCallerClientCertIdentity(t *testing.T) {
	t.Parallel()
	_, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	entry := func(identity string) string {
		b, err := json.Marshal([]map[string]any{{"name": "worker", "credential_hash": hash, "permissions": []string{"tokens:read"}, "client_cert_identity": identity}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ca := testpki.NewCA(t, "test CA")
	files := ca.Server(t).Write(t, t.TempDir(), "server")
	caFile := writeFile(t, "ca.pem", string(ca.PEM), 0o644)
	base := func(callers string, withCA bool) map[string]string {
		env := map[string]string{
			"TOKENSTORE_DATABASE_URL": "postgres://u@127.0.0.1:1/tokens?sslmode=disable", "TOKENSTORE_KEYS": fernetKey(t),
			"TOKENSTORE_CALLERS": callers, "TOKENSTORE_HTTP_TLS_CERT_FILE": files.Cert, "TOKENSTORE_HTTP_TLS_KEY_FILE": files.Key,
		}
		if withCA {
			env["TOKENSTORE_HTTP_CLIENT_CA_FILE"] = caFile
		}
		return env
	}

	cfg, err := cli.Load("", false, envOf(base(entry("spiffe://example.org/worker"), true)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if got := cfg.Callers[0].ClientCertIdentity.String(); got != "spiffe://example.org/worker" {
		t.Errorf("identity %q", got)
	}

	cfg, err = cli.Load("", false, envOf(base(entry("worker.internal.example.org"), false)))
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, cfg.Validate(), `callers[0].client_cert_identity (caller "worker")`, "TOKENSTORE_HTTP_CLIENT_CA_FILE (http.client_ca_file)")

	_, err = cli.Load("", false, envOf(base(entry("*.example.org"), true)))
	wantErr(t, err, `TOKENSTORE_CALLERS[0].client_cert_identity (caller "worker")`, "DNS name")

	path := writeFile(t, "callers.yaml", fmt.Sprintf("callers:\n  - name: worker\n    credential_hash: %s\n    permissions: [tokens:read]\n    client_cert_identity: spiffe://example.org/worker\n", hash), 0o600)
	env := base("", true)
	delete(env, "TOKENSTORE_CALLERS")
	if cfg, err = cli.Load(path, false, envOf(env)); err != nil || cfg.Callers[0].ClientCertIdentity.String() != "spiffe://example.org/worker" {
		t.Errorf("from the file: %v", err)
	}
}
