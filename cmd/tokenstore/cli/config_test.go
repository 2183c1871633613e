package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := cli.Load("", false, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, cli.Defaults()) {
		t.Errorf("Load with nothing set = %+v, want Defaults() %+v", cfg, cli.Defaults())
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Dev", cfg.Dev, false},
		{"Migrate", cfg.Migrate, false},
		{"DevDir", cfg.DevDir, ".dev"},
		{"Database.URL", cfg.Database.URL, ""},
		{"Database.MaxConns", cfg.Database.MaxConns, int32(0)},
		{"Database.LockTimeout", cfg.Database.LockTimeout, postgres.DefaultLockTimeout},
		{"HTTP", cfg.HTTP, httpapi.DefaultConfig()},
		{"HTTP.Addr", cfg.HTTP.Addr, "127.0.0.1:8080"},
		{"keys", len(cfg.Keys.Keys), 0},
		{"KeyFile", cfg.KeyFile, ""},
		{"callers", len(cfg.Callers), 0},
		{"App.RefreshMargin", cfg.App.RefreshMargin, time.Duration(0)},
		{"Worker.Enabled", cfg.Worker.Enabled, true},
		{"Log.Format", cfg.Log.Format, "auto"},
		{"Log.Level", cfg.Log.Level, "info"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadDevDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := cli.Load("", true, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := cli.DevDatabaseURL(cli.DefaultDevDatabasePort); !cfg.Dev || !cfg.Migrate || cfg.Database.URL != want {
		t.Errorf("dev defaults: Dev=%v Migrate=%v URL=%q, want true, true, %q",
			cfg.Dev, cfg.Migrate, cfg.Database.URL, want)
	}
	// dev.database_port moves --dev's database, from the environment or the file.
	cfg, err = cli.Load("", true, envOf(map[string]string{"TOKENSTORE_DEV_DATABASE_PORT": "55999"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.Database.URL, "@127.0.0.1:55999/") {
		t.Errorf("TOKENSTORE_DEV_DATABASE_PORT=55999: --dev URL %q", cfg.Database.URL)
	}
	cfg, err = cli.Load(writeFile(t, "dev.yaml", "dev:\n  database_port: 55998\n", 0o600), true, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.Database.URL, "@127.0.0.1:55998/") {
		t.Errorf("dev.database_port: 55998: --dev URL %q", cfg.Database.URL)
	}
	_, err = cli.Load("", true, envOf(map[string]string{"TOKENSTORE_DEV_DATABASE_PORT": "70000"}))
	wantErr(t, err, "TOKENSTORE_DEV_DATABASE_PORT", "1 to 65535")
	// Outside --dev the port names no database.
	if cfg, err = cli.Load("", false, envOf(map[string]string{"TOKENSTORE_DEV_DATABASE_PORT": "55999"})); err != nil || cfg.Database.URL != "" {
		t.Errorf("without --dev: URL %q, err %v; want none", cfg.Database.URL, err)
	}
	// The environment still wins in dev mode.
	cfg, err = cli.Load("", true, envOf(map[string]string{
		"TOKENSTORE_DATABASE_URL":     "postgres://other/db",
		"TOKENSTORE_DATABASE_MIGRATE": "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Migrate || cfg.Database.URL != "postgres://other/db" {
		t.Errorf("dev with env: Migrate=%v URL=%q, want false and the env URL", cfg.Migrate, cfg.Database.URL)
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	t.Parallel()
	k1, enc1 := newKey(t)
	k2, enc2 := newKey(t)
	keyIDs := func(c cli.Config) any {
		var ids []string
		for _, k := range c.Keys.Keys {
			ids = append(ids, string(k.ID()))
		}
		return ids
	}
	tests := []struct {
		env   string
		value string
		got   func(cli.Config) any
		want  any
	}{
		{"TOKENSTORE_DATABASE_URL", "postgres://u@h:5433/db", func(c cli.Config) any { return c.Database.URL }, "postgres://u@h:5433/db"},
		{"TOKENSTORE_DATABASE_MAX_CONNS", "7", func(c cli.Config) any { return c.Database.MaxConns }, int32(7)},
		{"TOKENSTORE_DATABASE_MAX_CONNS", "1000", func(c cli.Config) any { return c.Database.MaxConns }, int32(1000)},
		{"TOKENSTORE_DATABASE_LOCK_TIMEOUT", "250ms", func(c cli.Config) any { return c.Database.LockTimeout }, 250 * time.Millisecond},
		{"TOKENSTORE_DATABASE_MIGRATE", "true", func(c cli.Config) any { return c.Migrate }, true},
		{"TOKENSTORE_DATABASE_MIGRATE", "1", func(c cli.Config) any { return c.Migrate }, true},
		{"TOKENSTORE_HTTP_ADDR", "0.0.0.0:9000", func(c cli.Config) any { return c.HTTP.Addr }, "0.0.0.0:9000"},
		{"TOKENSTORE_HTTP_READ_HEADER_TIMEOUT", "1s", func(c cli.Config) any { return c.HTTP.ReadHeaderTimeout }, time.Second},
		{"TOKENSTORE_HTTP_READ_TIMEOUT", "2s", func(c cli.Config) any { return c.HTTP.ReadTimeout }, 2 * time.Second},
		{"TOKENSTORE_HTTP_WRITE_TIMEOUT", "3s", func(c cli.Config) any { return c.HTTP.WriteTimeout }, 3 * time.Second},
		{"TOKENSTORE_HTTP_IDLE_TIMEOUT", "4m", func(c cli.Config) any { return c.HTTP.IdleTimeout }, 4 * time.Minute},
		{"TOKENSTORE_HTTP_SHUTDOWN_TIMEOUT", "0s", func(c cli.Config) any { return c.HTTP.ShutdownTimeout }, time.Duration(0)},
		{"TOKENSTORE_REFRESH_MARGIN", "90s", func(c cli.Config) any { return c.App.RefreshMargin }, 90 * time.Second},
		{"TOKENSTORE_REFRESH_WAIT_TIMEOUT", "5s", func(c cli.Config) any { return c.App.Refresh.WaitTimeout }, 5 * time.Second},
		{"TOKENSTORE_REFRESH_LEASE", "1m", func(c cli.Config) any { return c.App.Refresh.Lease }, time.Minute},
		{"TOKENSTORE_REFRESH_RETRY_AFTER", "3s", func(c cli.Config) any { return c.App.Refresh.RetryAfter }, 3 * time.Second},
		{"TOKENSTORE_REFRESH_WORKER", "false", func(c cli.Config) any { return c.Worker.Enabled }, false},
		{"TOKENSTORE_REFRESH_WORKER_INTERVAL", "30s", func(c cli.Config) any { return c.Worker.Interval }, 30 * time.Second},
		{"TOKENSTORE_REFRESH_WORKER_BATCH", "10", func(c cli.Config) any { return c.Worker.Batch }, 10},
		{"TOKENSTORE_AUDIT_MODE", "best_effort", func(c cli.Config) any { return c.Audit.Mode }, "best_effort"},
		{"TOKENSTORE_AUDIT_MODE", "off", func(c cli.Config) any { return c.Audit.Mode }, "off"},
		{"TOKENSTORE_ENVELOPE", "json", func(c cli.Config) any { return c.App.Envelope }, app.EnvelopeJSON},
		{"TOKENSTORE_ENVELOPE", "binary", func(c cli.Config) any { return c.App.Envelope }, app.EnvelopeBinary},
		{"TOKENSTORE_AUDIT_RETENTION", "720h", func(c cli.Config) any { return c.Audit.Retention }, 720 * time.Hour},
		{"TOKENSTORE_AUDIT_RETENTION", "0", func(c cli.Config) any { return c.Audit.Retention }, time.Duration(0)},
		{"TOKENSTORE_EVENTS_ENABLED", "false", func(c cli.Config) any { return c.Events.Policy() }, domain.EventPolicy{Off: true}},
		{"TOKENSTORE_EVENTS_RETENTION", "720h", func(c cli.Config) any { return c.Events.Retention }, 720 * time.Hour},
		{"TOKENSTORE_EVENTS_RETENTION", "0", func(c cli.Config) any { return c.Events.Retention }, time.Duration(0)},
		{"TOKENSTORE_EVENTS_REFRESHED", "true", func(c cli.Config) any { return c.Events.Policy() }, domain.EventPolicy{Refreshed: true}},
		{"TOKENSTORE_LOG_FORMAT", "text", func(c cli.Config) any { return c.Log.Format }, "text"},
		{"TOKENSTORE_LOG_FORMAT", "json", func(c cli.Config) any { return c.Log.Format }, "json"},
		{"TOKENSTORE_LOG_LEVEL", "debug", func(c cli.Config) any { return c.Log.Level }, "debug"},
		{"TOKENSTORE_LOG_LEVEL", "error", func(c cli.Config) any { return c.Log.Level }, "error"},
		{"TOKENSTORE_DEV_DIR", "/tmp/elsewhere", func(c cli.Config) any { return c.DevDir }, "/tmp/elsewhere"},
		{"TOKENSTORE_KEYS", enc1, keyIDs, []string{string(k1.ID())}},
		{"TOKENSTORE_KEYS", enc2 + "," + enc1, keyIDs, []string{string(k2.ID()), string(k1.ID())}},
		{"TOKENSTORE_KEYS", " " + enc1 + " , " + enc2 + "\n", keyIDs, []string{string(k1.ID()), string(k2.ID())}},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+strings.TrimSpace(tt.value), func(t *testing.T) {
			t.Parallel()
			cfg, err := cli.Load("", false, envOf(map[string]string{tt.env: tt.value}))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tt.got(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s=%q: got %v, want %v", tt.env, tt.value, got, tt.want)
			}
		})
	}
}

func TestLoadEnvCallers(t *testing.T) {
	t.Parallel()
	value, cred := callersJSON(t, "svc")
	cfg, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_CALLERS": value}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Callers) != 1 || cfg.Callers[0].Name != "svc" ||
		!reflect.DeepEqual(cfg.Callers[0].Permissions, httpapi.AllPermissions) {
		t.Fatalf("callers = %+v, want one caller svc with every permission", cfg.Callers)
	}
	auth, err := httpapi.NewAuthenticator(cfg.Callers)
	if err != nil {
		t.Fatal(err)
	}
	if c := auth.Authenticate(cred); c == nil || c.Name != "svc" {
		t.Errorf("the credential does not authenticate as svc: %v", c)
	}
}

func TestLoadEnvInvalid(t *testing.T) {
	t.Parallel()
	_, goodHash, _ := httpapi.NewCredential()
	// badKey is key-shaped text that is not a key; it must never be echoed.
	const badKey = "NotAKeyButSecretLooking$$$Material0123456789"
	tests := []struct {
		name  string
		env   map[string]string
		want  []string // substrings of the error
		never []string // must not be in the error
	}{
		{"duration", map[string]string{"TOKENSTORE_HTTP_READ_TIMEOUT": "abc"}, []string{"TOKENSTORE_HTTP_READ_TIMEOUT", `"abc"`}, nil},
		{"negative duration", map[string]string{"TOKENSTORE_HTTP_WRITE_TIMEOUT": "-1s"}, []string{"TOKENSTORE_HTTP_WRITE_TIMEOUT"}, nil},
		{"duration without unit", map[string]string{"TOKENSTORE_DATABASE_LOCK_TIMEOUT": "5"}, []string{"TOKENSTORE_DATABASE_LOCK_TIMEOUT"}, nil},
		{"refresh margin", map[string]string{"TOKENSTORE_REFRESH_MARGIN": "soon"}, []string{"TOKENSTORE_REFRESH_MARGIN"}, nil},
		{"int zero", map[string]string{"TOKENSTORE_DATABASE_MAX_CONNS": "0"}, []string{"TOKENSTORE_DATABASE_MAX_CONNS", "1 to 1000"}, nil},
		{"int too big", map[string]string{"TOKENSTORE_DATABASE_MAX_CONNS": "1001"}, []string{"TOKENSTORE_DATABASE_MAX_CONNS"}, nil},
		{"int not a number", map[string]string{"TOKENSTORE_DATABASE_MAX_CONNS": "ten"}, []string{"TOKENSTORE_DATABASE_MAX_CONNS"}, nil},
		{"worker batch zero", map[string]string{"TOKENSTORE_REFRESH_WORKER_BATCH": "0"}, []string{"TOKENSTORE_REFRESH_WORKER_BATCH"}, nil},
		{"worker bool", map[string]string{"TOKENSTORE_REFRESH_WORKER": "on"}, []string{"TOKENSTORE_REFRESH_WORKER"}, nil},
		{"bool", map[string]string{"TOKENSTORE_DATABASE_MIGRATE": "maybe"}, []string{"TOKENSTORE_DATABASE_MIGRATE", "true or false"}, nil},
		{"enum format", map[string]string{"TOKENSTORE_LOG_FORMAT": "xml"}, []string{"TOKENSTORE_LOG_FORMAT", `"xml"`, "json", "text", "auto"}, nil},
		{"enum level", map[string]string{"TOKENSTORE_LOG_LEVEL": "verbose"}, []string{"TOKENSTORE_LOG_LEVEL", "debug"}, nil},
		{"enum audit mode", map[string]string{"TOKENSTORE_AUDIT_MODE": "fail-closed"}, []string{"TOKENSTORE_AUDIT_MODE", `"fail-closed"`, "fail_closed", "best_effort", "off"}, nil},
		{"enum envelope", map[string]string{"TOKENSTORE_ENVELOPE": "JSON"}, []string{"TOKENSTORE_ENVELOPE", `"JSON"`, "binary, json"}, nil},
		{"audit retention in days", map[string]string{"TOKENSTORE_AUDIT_RETENTION": "400d"}, []string{"TOKENSTORE_AUDIT_RETENTION", `"400d"`}, nil},
		{"bad key", map[string]string{"TOKENSTORE_KEYS": badKey}, []string{"TOKENSTORE_KEYS", "key #1"}, []string{badKey, "SecretLooking"}},
		{"short key", map[string]string{"TOKENSTORE_KEYS": "c2hvcnRTZWNyZXRLZXlCeXRlcw=="}, []string{"TOKENSTORE_KEYS", "bytes"}, []string{"c2hvcnRTZWNyZXRLZXlCeXRlcw"}},
		{"second key bad", map[string]string{"TOKENSTORE_KEYS": fernetKey(t) + "," + badKey}, []string{"TOKENSTORE_KEYS", "key #2"}, []string{badKey}},
		{"callers not JSON", map[string]string{"TOKENSTORE_CALLERS": `{"name":`}, []string{"TOKENSTORE_CALLERS"}, nil},
		{"caller bad hash", map[string]string{"TOKENSTORE_CALLERS": `[{"name":"svc","credential_hash":"md5:abc","permissions":["tokens:read"]}]`},
			[]string{"TOKENSTORE_CALLERS[0].credential_hash", `"svc"`, "sha256:"}, nil},
		{"caller short hash", map[string]string{"TOKENSTORE_CALLERS": `[{"name":"svc","credential_hash":"sha256:abcd","permissions":["tokens:read"]}]`},
			[]string{"TOKENSTORE_CALLERS[0].credential_hash", "64 hex digits"}, nil},
		{"caller unknown permission", map[string]string{"TOKENSTORE_CALLERS": `[{"name":"svc","credential_hash":"` + goodHash + `","permissions":["tokens:admin"]}]`},
			[]string{"TOKENSTORE_CALLERS[0].permissions", `"tokens:admin"`, "tokens:read"}, nil},
		{"caller without permissions", map[string]string{"TOKENSTORE_CALLERS": `[{"name":"svc","credential_hash":"` + goodHash + `"}]`},
			[]string{"TOKENSTORE_CALLERS[0].permissions", `"svc"`, "tokens:read"}, nil},
		{"caller without name", map[string]string{"TOKENSTORE_CALLERS": `[{"credential_hash":"` + goodHash + `","permissions":["tokens:read"]}]`},
			[]string{"TOKENSTORE_CALLERS[0].name"}, nil},
		{"config file missing", map[string]string{"TOKENSTORE_CONFIG": "/nonexistent/tokenstore.yaml"}, []string{"config file", "/nonexistent/tokenstore.yaml"}, nil},
		{"key file missing", map[string]string{"TOKENSTORE_KEY_FILE": "/nonexistent/keys"}, []string{"TOKENSTORE_KEY_FILE", "/nonexistent/keys"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cli.Load("", false, envOf(tt.env))
			wantErr(t, err, tt.want...)
			for _, s := range tt.never {
				if err != nil && strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
		})
	}
}

func fernetKey(t *testing.T) string {
	_, enc := newKey(t)
	return enc
}

func TestLoadConfigFile(t *testing.T) {
	t.Parallel()
	k1, enc1 := newKey(t)
	k2, enc2 := newKey(t)
	cred1, hash1, _ := httpapi.NewCredential()
	cred2, hash2, _ := httpapi.NewCredential()
	file := fmt.Sprintf(`# a comment
database:
  url: postgres://tokenstore@db.internal:5432/tokenstore
  max_conns: 20
  lock_timeout: 2s
  migrate: true
http:
  addr: 0.0.0.0:8081
  read_header_timeout: 1s
  read_timeout: 2s
  write_timeout: 3s
  idle_timeout: 4m
  shutdown_timeout: 5s
keys: [%s, %s]
refresh:
  margin: 10m
log:
  format: json
  level: warn
callers:
  - name: backend
    credential_hash: %s
    permissions: [tokens:read, tokens:write]
  - name: worker
    credential_hash: %s
    permissions:
      - offline:read
`, enc1, enc2, hash1, hash2)
	path := writeFile(t, "tokenstore.yaml", file, 0o600)

	check := func(t *testing.T, cfg cli.Config) {
		t.Helper()
		checks := []struct {
			name      string
			got, want any
		}{
			{"Database.URL", cfg.Database.URL, "postgres://tokenstore@db.internal:5432/tokenstore"},
			{"Database.MaxConns", cfg.Database.MaxConns, int32(20)},
			{"Database.LockTimeout", cfg.Database.LockTimeout, 2 * time.Second},
			{"Migrate", cfg.Migrate, true},
			{"HTTP", cfg.HTTP, httpapi.Config{Addr: "0.0.0.0:8081", ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second,
				WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Minute, ShutdownTimeout: 5 * time.Second}},
			{"keys", len(cfg.Keys.Keys), 2},
			{"App.RefreshMargin", cfg.App.RefreshMargin, 10 * time.Minute},
			{"Log", cfg.Log, cli.LogConfig{Format: "json", Level: "warn"}},
			{"callers", len(cfg.Callers), 2},
		}
		for _, c := range checks {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
		}
		if len(cfg.Keys.Keys) == 2 && (cfg.Keys.Keys[0].ID() != k1.ID() || cfg.Keys.Keys[1].ID() != k2.ID()) {
			t.Errorf("keys out of order: %v", cfg.Keys.Keys)
		}
		if len(cfg.Callers) != 2 {
			return
		}
		wantCallers := []struct {
			name  string
			cred  string
			perms []httpapi.Permission
		}{
			{"backend", cred1, []httpapi.Permission{httpapi.PermTokensRead, httpapi.PermTokensWrite}},
			{"worker", cred2, []httpapi.Permission{httpapi.PermOfflineRead}},
		}
		auth, err := httpapi.NewAuthenticator(cfg.Callers)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range wantCallers {
			c := cfg.Callers[i]
			if c.Name != w.name || !reflect.DeepEqual(c.Permissions, w.perms) {
				t.Errorf("callers[%d] = %s %v, want %s %v", i, c.Name, c.Permissions, w.name, w.perms)
			}
			if got := auth.Authenticate(w.cred); got == nil || got.Name != w.name {
				t.Errorf("credential of %s authenticates as %v", w.name, got)
			}
		}
	}

	t.Run("path argument", func(t *testing.T) {
		t.Parallel()
		cfg, err := cli.Load(path, false, envOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		check(t, cfg)
	})
	t.Run("TOKENSTORE_CONFIG", func(t *testing.T) {
		t.Parallel()
		cfg, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_CONFIG": path}))
		if err != nil {
			t.Fatal(err)
		}
		check(t, cfg)
	})
	t.Run("path argument wins over TOKENSTORE_CONFIG", func(t *testing.T) {
		t.Parallel()
		cfg, err := cli.Load(path, false, envOf(map[string]string{"TOKENSTORE_CONFIG": "/nonexistent.yaml"}))
		if err != nil {
			t.Fatal(err)
		}
		check(t, cfg)
	})
}

func TestLoadConfigFileFlatKeysAndEmpty(t *testing.T) {
	t.Parallel()
	// Dotted keys at the top level mean the same as nested ones.
	path := writeFile(t, "flat.yaml", "http.addr: 127.0.0.1:9999\nlog.level: debug\n", 0o600)
	cfg, err := cli.Load(path, false, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9999" || cfg.Log.Level != "debug" {
		t.Errorf("flat keys: addr %q level %q", cfg.HTTP.Addr, cfg.Log.Level)
	}
	// An empty file (or only comments) changes nothing.
	for _, content := range []string{"", "# nothing here\n"} {
		path := writeFile(t, "empty.yaml", content, 0o600)
		cfg, err := cli.Load(path, false, envOf(nil))
		if err != nil {
			t.Fatalf("file %q: %v", content, err)
		}
		if !reflect.DeepEqual(cfg, cli.Defaults()) {
			t.Errorf("file %q changed the configuration: %+v", content, cfg)
		}
	}
}

// TestLoadExampleConfig keeps configs/tokenstore.example.yaml loadable. Its
// key_file does not exist here, so the environment points at a real one.
func TestLoadExampleConfig(t *testing.T) {
	t.Parallel()
	example := filepath.Join("..", "..", "..", "configs", "tokenstore.example.yaml")
	if _, err := os.Stat(example); err != nil {
		t.Fatalf("no example config: %v", err)
	}
	keyFile := writeFile(t, "keys", fernetKey(t)+"\n", 0o600)
	ca := testpki.NewCA(t, "example CA")
	tlsFiles := ca.Server(t).Write(t, t.TempDir(), "tls")
	caFile := writeFile(t, "clients-ca.crt", string(ca.PEM), 0o644)
	cfg, err := cli.Load(example, false, envOf(map[string]string{"TOKENSTORE_KEY_FILE": keyFile, "GITLAB_CLIENT_SECRET": "example-secret",
		"TOKENSTORE_HTTP_TLS_CERT_FILE": tlsFiles.Cert, "TOKENSTORE_HTTP_TLS_KEY_FILE": tlsFiles.Key, "TOKENSTORE_HTTP_CLIENT_CA_FILE": caFile}))
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("example config does not validate: %v", err)
	}
	if len(cfg.Callers) == 0 || len(cfg.Keys.Keys) != 1 || len(cfg.OAuth.Providers) != 3 || !cfg.OAuth.Providers[2].StoreOnly {
		t.Errorf("example config: %d callers, %d keys, %d providers", len(cfg.Callers), len(cfg.Keys.Keys), len(cfg.OAuth.Providers))
	}
	if got := cfg.OAuth.Providers[0].ClientSecret.Reveal(); got != "example-secret" {
		t.Errorf("client_secret_env was not read from the environment (got %d bytes)", len(got))
	}
}

func TestLoadConfigFileInvalid(t *testing.T) {
	t.Parallel()
	_, goodHash, _ := httpapi.NewCredential()
	const badKey = "NotAKeyButSecretLooking$$$Material0123456789"
	tests := []struct {
		name  string
		file  string
		want  []string
		never []string
	}{
		{"unknown key", "http:\n  adress: 0.0.0.0:80\n", []string{`"http.adress"`, "unknown setting"}, nil},
		{"unknown key does not echo its value", "database:\n  uri: postgres://u:" + secretPW + "@h/db\n", []string{`"database.uri"`}, []string{secretPW}},
		{"unknown top-level key", "verbose: true\n", []string{`"verbose"`}, nil},
		{"bad duration", "http:\n  read_timeout: abc\n", []string{"http.read_timeout", `"abc"`}, nil},
		{"bad int", "database:\n  max_conns: 0\n", []string{"database.max_conns"}, nil},
		{"bad bool", "database:\n  migrate: sometimes\n", []string{"database.migrate"}, nil},
		{"bad enum", "log:\n  format: xml\n", []string{"log.format", `"xml"`}, nil},
		{"bad key", "keys: [" + badKey + "]\n", []string{"keys", "key #1"}, []string{badKey, "SecretLooking"}},
		{"not YAML", "http: [unterminated\n", []string{"not valid YAML"}, nil},
		{"callers not a list", "callers: backend\n", []string{"callers"}, nil},
		{"caller unknown field", "callers:\n  - name: a\n    credential_hash: " + goodHash + "\n    permission: [tokens:read]\n", []string{"callers", "permission"}, nil},
		{"caller bad hash", "callers:\n  - name: a\n    credential_hash: deadbeef\n    permissions: [tokens:read]\n",
			[]string{"callers[0].credential_hash", `"a"`}, nil},
		{"caller unknown permission", "callers:\n  - name: a\n    credential_hash: " + goodHash + "\n    permissions: [tokens:admin]\n",
			[]string{"callers[0].permissions", `"tokens:admin"`}, nil},
		{"second caller without permissions", "callers:\n  - name: a\n    credential_hash: " + goodHash + "\n    permissions: [tokens:read]\n" +
			"  - name: b\n    credential_hash: " + goodHash + "\n",
			[]string{"callers[1].permissions", `"b"`}, nil},
		{"caller without name", "callers:\n  - credential_hash: " + goodHash + "\n    permissions: [tokens:read]\n", []string{"callers[0].name"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "tokenstore.yaml", tt.file, 0o600)
			_, err := cli.Load(path, false, envOf(nil))
			wantErr(t, err, append([]string{path}, tt.want...)...)
			for _, s := range tt.never {
				if err != nil && strings.Contains(err.Error(), s) {
					t.Errorf("error %q shows %q", err, s)
				}
			}
		})
	}
}

func TestLoadEnvWinsOverFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "tokenstore.yaml", `database:
  url: postgres://file@h/db
  max_conns: 5
http:
  addr: 127.0.0.1:1111
  read_timeout: 1s
log:
  level: warn
  format: text
`, 0o600)
	cfg, err := cli.Load(path, false, envOf(map[string]string{
		"TOKENSTORE_DATABASE_URL":       "postgres://env@h/db",
		"TOKENSTORE_HTTP_ADDR":          "127.0.0.1:2222",
		"TOKENSTORE_DATABASE_MAX_CONNS": "9",
		"TOKENSTORE_LOG_LEVEL":          "error",
	}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"database.url (env)", cfg.Database.URL, "postgres://env@h/db"},
		{"database.max_conns (env)", cfg.Database.MaxConns, int32(9)},
		{"http.addr (env)", cfg.HTTP.Addr, "127.0.0.1:2222"},
		{"log.level (env)", cfg.Log.Level, "error"},
		{"http.read_timeout (file)", cfg.HTTP.ReadTimeout, time.Second},
		{"log.format (file)", cfg.Log.Format, "text"},
		{"http.write_timeout (default)", cfg.HTTP.WriteTimeout, httpapi.DefaultConfig().WriteTimeout},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// An empty variable is the same as an unset one: the file's value stays.
	cfg, err = cli.Load(path, false, envOf(map[string]string{"TOKENSTORE_HTTP_ADDR": ""}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:1111" {
		t.Errorf("empty TOKENSTORE_HTTP_ADDR: addr %q, want the file's", cfg.HTTP.Addr)
	}
}

// TestLoadEnvKeysWinOverFileKeys: the environment wins over the file, so
// TOKENSTORE_KEYS replaces the file's keys list and its first key is the
// primary. Load appends the environment's keys after the file's instead,
// so the file's (older) key stays primary and keeps encrypting.
func TestLoadEnvKeysWinOverFileKeys(t *testing.T) {
	t.Parallel()
	fileKey, fileEnc := newKey(t)
	envKey, envEnc := newKey(t)
	path := writeFile(t, "tokenstore.yaml", "keys: ["+fileEnc+"]\n", 0o600)
	cfg, err := cli.Load(path, false, envOf(map[string]string{"TOKENSTORE_KEYS": envEnc}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range cfg.Keys.Keys {
		ids = append(ids, string(k.ID()))
	}
	if len(ids) == 0 || ids[0] != string(envKey.ID()) {
		t.Errorf("keys %v (file key %s, env key %s): the primary is not TOKENSTORE_KEYS' first key",
			ids, fileKey.ID(), envKey.ID())
	}
	if len(ids) != 1 {
		t.Errorf("keys %v: TOKENSTORE_KEYS should replace the file's keys list, not add to it", ids)
	}
}

// TestLoadEnvCallersWinOverFileCallers: as with every setting, the
// environment's callers list replaces the file's. Load merges them instead.
func TestLoadEnvCallersWinOverFileCallers(t *testing.T) {
	t.Parallel()
	_, fileHash, _ := httpapi.NewCredential()
	path := writeFile(t, "tokenstore.yaml",
		"callers:\n  - name: from-file\n    credential_hash: "+fileHash+"\n    permissions: [tokens:read]\n", 0o600)
	value, _ := callersJSON(t, "from-env")
	cfg, err := cli.Load(path, false, envOf(map[string]string{"TOKENSTORE_CALLERS": value}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cfg.Callers {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"from-env"}) {
		t.Errorf("callers %v, want only [from-env]: TOKENSTORE_CALLERS should replace the file's callers", names)
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	k1, enc1 := newKey(t)
	k2, enc2 := newKey(t)
	tests := []struct {
		name    string
		content string
		want    []fernet.Key
	}{
		{"one key", enc1 + "\n", []fernet.Key{k1}},
		{"no final newline", enc1, []fernet.Key{k1}},
		{"comments and blank lines", "# primary (newest)\n\n" + enc2 + "  # rotated in today\n\n# older\n   " + enc1 + "\n\n", []fernet.Key{k2, k1}},
		{"CRLF", enc1 + "\r\n" + enc2 + "\r\n", []fernet.Key{k1, k2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "keys", tt.content, 0o600)
			cfg, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_KEY_FILE": path}))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.KeyFile != path {
				t.Errorf("KeyFile = %q, want %q", cfg.KeyFile, path)
			}
			if len(cfg.Keys.Keys) != len(tt.want) {
				t.Fatalf("%d keys, want %d", len(cfg.Keys.Keys), len(tt.want))
			}
			for i := range tt.want {
				if cfg.Keys.Keys[i].ID() != tt.want[i].ID() {
					t.Errorf("key %d has id %s, want %s", i, cfg.Keys.Keys[i].ID(), tt.want[i].ID())
				}
			}
		})
	}

	t.Run("from the config file", func(t *testing.T) {
		t.Parallel()
		keys := writeFile(t, "keys", enc1+"\n", 0o600)
		path := writeFile(t, "tokenstore.yaml", "key_file: "+keys+"\n", 0o600)
		cfg, err := cli.Load(path, false, envOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Keys.Keys) != 1 || cfg.Keys.Keys[0].ID() != k1.ID() {
			t.Errorf("keys %v, want the key file's", cfg.Keys.Keys)
		}
	})

	refused := []struct {
		name    string
		content string
		mode    os.FileMode
		want    []string
	}{
		{"group readable", enc1 + "\n", 0o640, []string{"TOKENSTORE_KEY_FILE", "chmod 600", "0640"}},
		{"world readable", enc1 + "\n", 0o644, []string{"TOKENSTORE_KEY_FILE", "chmod 600", "0644"}},
		{"group writable", enc1 + "\n", 0o620, []string{"chmod 600"}},
		{"empty", "", 0o600, []string{"TOKENSTORE_KEY_FILE", "no key", "tokenstore keys generate"}},
		{"only comments", "# no key yet\n\n   \n", 0o600, []string{"no key", "tokenstore keys generate"}},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "keys", tt.content, tt.mode)
			_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_KEY_FILE": path}))
			wantErr(t, err, append([]string{path}, tt.want...)...)
			if err != nil && strings.Contains(err.Error(), enc1) {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}

	t.Run("refused/bad key does not echo it", func(t *testing.T) {
		t.Parallel()
		const bad = "NotAKeyButSecretLooking$$$Material0123456789"
		path := writeFile(t, "keys", enc1+"\n"+bad+"\n", 0o600)
		_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_KEY_FILE": path}))
		wantErr(t, err, "TOKENSTORE_KEY_FILE", "key #2")
		if err != nil && (strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), enc1)) {
			t.Errorf("error shows key material: %v", err)
		}
	})
}

// validConfig is a configuration Validate accepts.
func validConfig(t *testing.T) cli.Config {
	t.Helper()
	cfg := cli.Defaults()
	cfg.Database.URL = "postgres://u:pw@127.0.0.1:5432/db?sslmode=disable"
	k, _ := newKey(t)
	cfg.Keys = fernet.Config{Keys: []fernet.Key{k}}
	_, c := newCaller(t, "svc")
	cfg.Callers = []httpapi.Caller{c}
	return cfg
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*cli.Config)
		want   []string // nil: valid
	}{
		{"valid", func(*cli.Config) {}, nil},
		{"keyword DSN", func(c *cli.Config) { c.Database.URL = "host=127.0.0.1 user=u dbname=db" }, nil},
		{"missing database URL", func(c *cli.Config) { c.Database.URL = "" }, []string{"TOKENSTORE_DATABASE_URL", "postgres://"}},
		{"malformed database URL", func(c *cli.Config) { c.Database.URL = "postgres://h:notaport/db" }, []string{"TOKENSTORE_DATABASE_URL"}},
		{"missing keys", func(c *cli.Config) { c.Keys = fernet.Config{} }, []string{"TOKENSTORE_KEYS", "TOKENSTORE_KEY_FILE", "tokenstore keys generate"}},
		{"missing callers", func(c *cli.Config) { c.Callers = nil }, []string{"TOKENSTORE_CALLERS", "callers", "tokenstore callers generate"}},
		{"empty HTTP address", func(c *cli.Config) { c.HTTP.Addr = "" }, []string{"TOKENSTORE_HTTP_ADDR"}},
		{"pool too large", func(c *cli.Config) { c.Database.MaxConns = 1001 }, []string{"TOKENSTORE_DATABASE_MAX_CONNS", "1 to 1000"}},
		{"query exec mode for PgBouncer", func(c *cli.Config) { c.Database.QueryExecMode = "exec" }, nil},
		{"unknown query exec mode", func(c *cli.Config) { c.Database.QueryExecMode = "prepared" }, []string{"TOKENSTORE_DATABASE_QUERY_EXEC_MODE", "cache_statement, cache_describe, describe_exec, exec, simple_protocol"}},
		{"query exec mode given twice", func(c *cli.Config) {
			c.Database.URL += "&default_query_exec_mode=exec"
			c.Database.QueryExecMode = "simple_protocol"
		}, []string{"TOKENSTORE_DATABASE_QUERY_EXEC_MODE", "default_query_exec_mode", "one place"}},
		{"query exec mode in the URL only", func(c *cli.Config) { c.Database.URL += "&default_query_exec_mode=exec" }, nil},
		{"direct URL", func(c *cli.Config) { c.Database.DirectURL = "postgres://u:pw@127.0.0.1:5433/db" }, nil},
		{"malformed direct URL", func(c *cli.Config) { c.Database.DirectURL = "postgres://h:notaport/db" }, []string{"TOKENSTORE_DATABASE_DIRECT_URL"}},
		{"metrics anywhere", func(c *cli.Config) { c.Metrics.Addr = "0.0.0.0:9464" }, nil},
		{"metrics on the API's address", func(c *cli.Config) { c.Metrics.Addr = c.HTTP.Addr }, []string{"TOKENSTORE_METRICS_ADDR", "TOKENSTORE_HTTP_ADDR"}},
		{"both on a free port", func(c *cli.Config) { c.HTTP.Addr, c.Metrics.Addr = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"pprof beyond loopback", func(c *cli.Config) { c.Metrics.Addr, c.Metrics.Pprof = "0.0.0.0:9464", true }, []string{"TOKENSTORE_METRICS_PPROF", "loopback"}},
		{"provider twice", func(c *cli.Config) {
			gl := oauth.ProviderConfig{Name: "gitlab", ClientID: "x"}
			c.OAuth.Providers = []oauth.ProviderConfig{gl, gl}
		}, []string{"providers[gitlab]", "configured twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := validConfig(t)
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			wantErr(t, err, tt.want...)
		})
	}
}

// secretURLs hold secretPW in each form a database URL can carry it.
var secretURLs = []string{
	"postgres://u:" + secretPW + "@h/db",
	"postgresql://u:" + secretPW + "@h:5432/db?sslmode=disable",
	"postgres://u:" + secretPW + "@h/db?password=" + secretPW,
	"postgres://u@h/db?password=" + secretPW,
	"postgres://u:" + secretPW + "@h1:5432,h2:5433/db",
	"host=h password=" + secretPW,
	"host=h user=u password='" + secretPW + "' dbname=db sslmode=disable",
}

func TestDatabaseConfigLogHidesPassword(t *testing.T) {
	t.Parallel()
	handlers := map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	}
	for _, u := range secretURLs {
		for name, h := range handlers {
			t.Run(name+"/"+u, func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				log := slog.New(h(&buf))
				cfg := postgres.Config{URL: u, DirectURL: u, MaxConns: 3, LockTimeout: time.Second}
				log.Info("starting", "database", cfg)
				log.Info("starting", slog.Any("database", cfg))
				log.With("database", cfg).Info("with")
				out := buf.String()
				wantNoSecret(t, "log", out)
				if !strings.Contains(out, "max_conns") {
					t.Errorf("log lacks the rest of the configuration:\n%s", out)
				}
				if strings.HasPrefix(u, "postgres") && !strings.Contains(out, "h") {
					t.Errorf("log lacks the host:\n%s", out)
				}
			})
		}
	}
	// The JSON log keeps the URL usable for debugging: user, host and db.
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "database", postgres.Config{URL: "postgres://u:" + secretPW + "@dbhost:5432/tokens"})
	var line struct {
		Database struct {
			URL string `json:"url"`
		} `json:"database"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line.Database.URL, "dbhost:5432/tokens") || !strings.Contains(line.Database.URL, "u:") {
		t.Errorf("logged url %q lost its user, host or database", line.Database.URL)
	}
}

// TestDatabaseConfigLogHidesPasswordWithReservedCharacters: pgx reads
// "postgres://u:#s3cretPW@h/db" as user u, password "#s3cretPW", host h, and
// so accepts such URLs; net/url reads the same text as host "u", empty port
// and fragment "s3cretPW@h/db", so RedactURL finds no password to hide and
// returns the whole URL. Likewise a password of digits followed by # or ?,
// and the sslpassword parameter (the client key's passphrase).
func TestDatabaseConfigLogHidesPasswordWithReservedCharacters(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"postgres://u:#" + secretPW + "@h/db",
		"postgres://u:123#" + secretPW + "@h/db",
		"postgres://u:123?" + secretPW + "@h/db",
		"postgres://u@h/db?sslmode=verify-full&sslpassword=" + secretPW,
	} {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			cfg := postgres.Config{URL: u}
			if _, err := postgres.ParsePoolConfig(cfg); err != nil {
				t.Skipf("pgx refuses this URL (%v), so it is never logged", err)
			}
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "database", cfg)
			wantNoSecret(t, "log", buf.String())
			wantNoSecret(t, "RedactURL", postgres.RedactURL(u))
		})
	}
}

func TestErrorsHidePassword(t *testing.T) {
	t.Parallel()
	malformed := []string{
		"postgres://u:" + secretPW + "@h:99999999/db",
		"postgres://u:" + secretPW + "@h:port/db",
		"postgres://u:" + secretPW + "@h/db?sslmode=bogus",
		"postgres://u:" + secretPW + "@h/db?pool_max_conns=many",
		"postgres://u:" + secretPW + "@h/db?connect_timeout=soon",
		"host=h password=" + secretPW + " port=notanumber",
		"host=h password='" + secretPW,
		"host=h password=" + secretPW + " sslmode=bogus",
	}
	for _, u := range malformed {
		t.Run(u, func(t *testing.T) {
			t.Parallel()
			_, err := postgres.ParsePoolConfig(postgres.Config{URL: u})
			wantErr(t, err, "TOKENSTORE_DATABASE_URL")
			wantNoSecret(t, "ParsePoolConfig error", fmt.Sprint(err))
			err = postgres.Config{URL: "postgres://u@h/db", DirectURL: u}.Validate()
			wantErr(t, err, "TOKENSTORE_DATABASE_DIRECT_URL")
			wantNoSecret(t, "Validate error (direct URL)", fmt.Sprint(err))

			cfg, err := cli.Load("", false, envOf(map[string]string{
				"TOKENSTORE_DATABASE_URL": u,
				"TOKENSTORE_KEYS":         fernetKey(t),
			}))
			if err != nil {
				wantNoSecret(t, "Load error", err.Error())
				return
			}
			_, c := newCaller(t, "svc")
			cfg.Callers = []httpapi.Caller{c}
			err = cfg.Validate()
			wantErr(t, err, "TOKENSTORE_DATABASE_URL")
			wantNoSecret(t, "Validate error", fmt.Sprint(err))

			path := writeFile(t, "tokenstore.yaml", "database:\n  url: \""+strings.ReplaceAll(u, `"`, `\"`)+"\"\n", 0o600)
			cfg, err = cli.Load(path, false, envOf(nil))
			if err != nil {
				wantNoSecret(t, "Load error", err.Error())
				return
			}
			err = cfg.Validate()
			wantErr(t, err, "TOKENSTORE_DATABASE_URL")
			wantNoSecret(t, "Validate error", fmt.Sprint(err))
		})
	}
}

func TestNewLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		format string
		json   bool
	}{
		{"json", true},
		{"text", false},
		{"auto", true}, // a bytes.Buffer is not a terminal
		{"", true},
	}
	for _, tt := range tests {
		t.Run("format="+tt.format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := cli.NewLogger(cli.LogConfig{Format: tt.format, Level: "info"}, &buf)
			log.Info("hello", "n", 42)
			out := strings.TrimSpace(buf.String())
			var m map[string]any
			isJSON := json.Unmarshal([]byte(out), &m) == nil
			if isJSON != tt.json {
				t.Fatalf("format %q wrote %q; JSON=%v, want %v", tt.format, out, isJSON, tt.json)
			}
			if tt.json {
				if m["msg"] != "hello" || m["level"] != "INFO" || m["n"] != float64(42) {
					t.Errorf("JSON line %v", m)
				}
			} else if !strings.Contains(out, "level=INFO") || !strings.Contains(out, "msg=hello") || !strings.Contains(out, "n=42") {
				t.Errorf("text line %q", out)
			}
		})
	}

	t.Run("auto on a regular file is JSON", func(t *testing.T) {
		t.Parallel()
		f, err := os.Create(filepath.Join(t.TempDir(), "log"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cli.NewLogger(cli.LogConfig{Format: "auto", Level: "info"}, f).Info("hello")
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(bytes.TrimSpace(b)) {
			t.Errorf("auto on a file wrote %q, want JSON", b)
		}
	})

	levels := []struct {
		level       string
		debug, info bool
		warn, error bool
	}{
		{"debug", true, true, true, true},
		{"info", false, true, true, true},
		{"warn", false, false, true, true},
		{"error", false, false, false, true},
	}
	for _, tt := range levels {
		t.Run("level="+tt.level, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := cli.NewLogger(cli.LogConfig{Format: "json", Level: tt.level}, &buf)
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			log.Error("e")
			out := buf.String()
			for msg, want := range map[string]bool{`"msg":"d"`: tt.debug, `"msg":"i"`: tt.info, `"msg":"w"`: tt.warn, `"msg":"e"`: tt.error} {
				if strings.Contains(out, msg) != want {
					t.Errorf("level %s: %s logged=%v, want %v", tt.level, msg, !want, want)
				}
			}
		})
	}
}

// TestEverySettingRejectsInvalidValues takes the settings from
// `serve --help` (so new ones are covered too) and sets each, from the
// environment and from the file, to a value no setting accepts: the error
// names the variable, or the file key.
func TestEverySettingRejectsInvalidValues(t *testing.T) {
	t.Parallel()
	var help bytes.Buffer
	_ = cli.Run(t.Context(), []string{"serve", "--help"}, cli.Env{Stdout: &help, Stderr: &help, Getenv: envOf(nil)})
	re := regexp.MustCompile(`(?m)^  ([a-z_.]+)\s+(TOKENSTORE_[A-Z_]+)$`)
	matches := re.FindAllStringSubmatch(help.String(), -1)
	if len(matches) < 15 {
		t.Fatalf("found %d settings in serve --help:\n%s", len(matches), help.String())
	}
	// Free-form strings: anything is accepted at load time.
	free := map[string]bool{"database.url": true, "database.direct_url": true, "http.addr": true, "metrics.addr": true, "callers": true}
	const bad = "!!invalid!!"
	for _, m := range matches {
		key, env := m[1], m[2]
		if free[key] {
			continue
		}
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			_, err := cli.Load("", false, envOf(map[string]string{env: bad}))
			wantErr(t, err, env)

			parts := strings.Split(key, ".")
			var yml strings.Builder
			for i, p := range parts {
				yml.WriteString(strings.Repeat("  ", i) + p + ":")
				if i < len(parts)-1 {
					yml.WriteString("\n")
				}
			}
			yml.WriteString(" \"" + bad + "\"\n")
			path := writeFile(t, "tokenstore.yaml", yml.String(), 0o600)
			_, err = cli.Load(path, false, envOf(nil))
			if err == nil {
				t.Fatalf("file setting %s=%q accepted:\n%s", key, bad, yml.String())
			}
			if !strings.Contains(err.Error(), key) && !strings.Contains(err.Error(), env) {
				t.Errorf("file setting %s: error %q names neither %s nor %s", key, err, key, env)
			}
		})
	}
}
