package cli_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// run runs a command to completion with a fake environment.
func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = cli.Run(ctx, args, cli.Env{Stdout: &out, Stderr: &errOut, Getenv: envOf(env)})
	return out.String(), errOut.String(), err
}

func TestVersion(t *testing.T) {
	t.Parallel()
	out, _, err := run(t, nil, "version")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) == "" {
		t.Error("version printed nothing")
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string // in the usage, on stdout (asked for, so not an error)
	}{
		{[]string{"--help"}, []string{"Usage:", "tokenstore serve", "tokenstore migrate", "tokenstore keys generate", "tokenstore callers generate", "tokenstore audit list", "tokenstore events list|redeliver", "tokenstore healthcheck", "tokenstore version"}},
		{[]string{"-h"}, []string{"Usage:"}},
		{[]string{"help"}, []string{"Usage:"}},
		{[]string{"serve", "--help"}, []string{"Usage: tokenstore serve", "--dev", "-config", "TOKENSTORE_DATABASE_URL", "TOKENSTORE_KEYS",
			"TOKENSTORE_KEY_FILE", "TOKENSTORE_CALLERS", "TOKENSTORE_HTTP_ADDR", "TOKENSTORE_LOG_FORMAT", "database.url", "tokens:read"}},
		{[]string{"serve", "-h"}, []string{"TOKENSTORE_DATABASE_URL"}},
		{[]string{"migrate", "--help"}, []string{"Usage: tokenstore migrate", "up", "down", "status", "TOKENSTORE_DATABASE_URL", "-dev"}},
		{[]string{"keys", "--help"}, []string{"Usage: tokenstore keys generate", "-dev"}},
		{[]string{"callers", "--help"}, []string{"Usage: tokenstore callers generate", "-name", "-permissions"}},
		{[]string{"healthcheck", "--help"}, []string{"Usage: tokenstore healthcheck", "/readyz", "-url", "-ca-file", "-timeout"}},
		{[]string{"version", "--help"}, []string{"Usage: tokenstore version"}},
		{[]string{"events", "--help"}, []string{"Usage: tokenstore events list", "tokenstore events redeliver ID|--failed", "-endpoint", "-failed", "-state", "-limit", "-dev"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			out, errOut, err := run(t, nil, tt.args...)
			if err != nil && !errors.Is(err, flag.ErrHelp) {
				t.Errorf("err = %v, want flag.ErrHelp or nil", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("usage on stdout lacks %q:\n%s", w, out)
				}
			}
			if errOut != "" {
				t.Errorf("help wrote to stderr:\n%s", errOut)
			}
		})
	}
}

// TestServeHelpListsEverySetting: every setting's environment variable is in
// `serve --help` and the env names follow TOKENSTORE_ + upper-cased key.
func TestServeHelpListsEverySetting(t *testing.T) {
	t.Parallel()
	help, _, _ := run(t, nil, "serve", "--help") // on stdout
	re := regexp.MustCompile(`(?m)^  ([a-z_.]+)\s+(TOKENSTORE_[A-Z_]+)$`)
	matches := re.FindAllStringSubmatch(help, -1)
	if len(matches) < 15 {
		t.Fatalf("found %d settings in serve --help:\n%s", len(matches), help)
	}
	for _, m := range matches {
		want := "TOKENSTORE_" + strings.ToUpper(strings.ReplaceAll(m[1], ".", "_"))
		if m[2] != want {
			t.Errorf("setting %s documented as %s, want %s", m[1], m[2], want)
		}
	}
}

func TestCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"missing command"}},
		{[]string{"frobnicate"}, []string{`"frobnicate"`}},
		{[]string{"migrate"}, []string{"up, down or status"}},
		{[]string{"migrate", "up", "down"}, []string{"up, down or status"}},
		{[]string{"keys"}, []string{"generate"}},
		{[]string{"keys", "frobnicate"}, []string{"unknown action"}},
		{[]string{"keys", "rotate"}, []string{"no encryption key", "TOKENSTORE_KEYS"}},
		{[]string{"callers"}, []string{"generate"}},
		{[]string{"callers", "generate"}, []string{"--name"}},
		{[]string{"callers", "--name", "svc", "--permissions", "tokens:read,tokens:admin", "generate"}, []string{"--permissions", "tokens:admin"}},
		{[]string{"serve", "--no-such-flag"}, []string{"no-such-flag"}},
		{[]string{"serve", "--config", "/nonexistent/tokenstore.yaml"}, []string{"config file", "/nonexistent/tokenstore.yaml"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			out, _, err := run(t, nil, tt.args...)
			wantErr(t, err, tt.want...)
			if strings.Contains(out, "tsc_") {
				t.Errorf("a failed command printed a credential: %s", out)
			}
		})
	}
	// An unknown command prints the usage to stderr.
	_, errOut, _ := run(t, nil, "frobnicate")
	if !strings.Contains(errOut, "Usage:") {
		t.Errorf("unknown command: stderr lacks the usage:\n%s", errOut)
	}
}

func TestKeysGenerate(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 3 {
		out, errOut, err := run(t, nil, "keys", "generate")
		if err != nil {
			t.Fatal(err)
		}
		enc := strings.TrimSpace(out)
		if strings.Count(out, "\n") != 1 {
			t.Errorf("keys generate printed %q, want one line (the key)", out)
		}
		k, err := fernet.ParseKey(enc)
		if err != nil {
			t.Fatalf("printed key %q does not parse: %v", enc, err)
		}
		if len(enc) != 44 {
			t.Errorf("key %q is %d characters, want 44 (URL-safe base64 of 32 bytes)", enc, len(enc))
		}
		if k.Encode() != enc {
			t.Errorf("key does not round-trip: %q vs %q", k.Encode(), enc)
		}
		if !strings.Contains(errOut, string(k.ID())) {
			t.Errorf("stderr %q lacks the key id %s", errOut, k.ID())
		}
		if strings.Contains(errOut, enc) {
			t.Errorf("the key went to stderr too")
		}
		if seen[enc] {
			t.Fatalf("keys generate printed %q twice", enc)
		}
		seen[enc] = true
	}
}

var (
	credentialLine = regexp.MustCompile(`(?m)^credential: (\S+)$`)
	hashLine       = regexp.MustCompile(`(?m)^\s+credential_hash: (\S+)$`)
)

// callersGenerate runs callers generate with args and returns the
// credential, the hash and the config-file part of the output.
func callersGenerate(t *testing.T, args ...string) (cred, hash, entry string) {
	t.Helper()
	out, errOut, err := run(t, nil, append([]string{"callers"}, args...)...)
	if err != nil {
		t.Fatalf("callers %v: %v\n%s", args, err, errOut)
	}
	m := credentialLine.FindStringSubmatch(out)
	h := hashLine.FindStringSubmatch(out)
	if m == nil || h == nil {
		t.Fatalf("callers generate output lacks the credential or its hash:\n%s", out)
	}
	_, entry, ok := strings.Cut(out, "# config file entry:\n")
	if !ok {
		t.Fatalf("callers generate output lacks the config file entry:\n%s", out)
	}
	return m[1], h[1], entry
}

// loadCallersEntry loads entry as a config file and returns the callers.
func loadCallersEntry(t *testing.T, entry string) []httpapi.Caller {
	t.Helper()
	path := writeFile(t, "tokenstore.yaml", entry, 0o600)
	cfg, err := cli.Load(path, false, envOf(nil))
	if err != nil {
		t.Fatalf("the printed entry does not load: %v\n%s", err, entry)
	}
	return cfg.Callers
}

func checkCallerRoundTrip(t *testing.T, name string, perms []httpapi.Permission, args ...string) {
	t.Helper()
	cred, hash, entry := callersGenerate(t, args...)
	if !strings.HasPrefix(cred, "tsc_") {
		t.Errorf("credential %q lacks the tsc_ prefix", cred)
	}
	if got := httpapi.HashCredential(cred); got != hash {
		t.Errorf("HashCredential(printed credential) = %s, printed hash %s", got, hash)
	}
	if strings.Contains(entry, cred) {
		t.Errorf("the config entry contains the credential itself:\n%s", entry)
	}
	callers := loadCallersEntry(t, entry)
	if len(callers) != 1 {
		t.Fatalf("%d callers loaded, want 1", len(callers))
	}
	c := callers[0]
	if c.Name != name {
		t.Errorf("loaded caller name %q, want %q", c.Name, name)
	}
	if fmt.Sprint(c.Permissions) != fmt.Sprint(perms) {
		t.Errorf("loaded permissions %v, want %v", c.Permissions, perms)
	}
	auth, err := httpapi.NewAuthenticator(callers)
	if err != nil {
		t.Fatal(err)
	}
	if got := auth.Authenticate(cred); got == nil || got.Name != name {
		t.Errorf("printed credential authenticates as %v against the loaded entry", got)
	}
}

// TestCallersGenerate uses the flags-first form, which the flag package
// parses today; TestCallersGenerateDocumentedArgumentOrder covers the form
// the usage documents.
func TestCallersGenerate(t *testing.T) {
	t.Parallel()
	t.Run("all permissions", func(t *testing.T) {
		t.Parallel()
		checkCallerRoundTrip(t, "svc", httpapi.AllPermissions, "--name", "svc", "generate")
	})
	t.Run("some permissions", func(t *testing.T) {
		t.Parallel()
		checkCallerRoundTrip(t, "worker", []httpapi.Permission{httpapi.PermTokensRead, httpapi.PermOfflineRead},
			"--name", "worker", "--permissions", "tokens:read, offline:read", "generate")
	})
	t.Run("different every call", func(t *testing.T) {
		t.Parallel()
		c1, h1, _ := callersGenerate(t, "--name", "svc", "generate")
		c2, h2, _ := callersGenerate(t, "--name", "svc", "generate")
		if c1 == c2 || h1 == h2 {
			t.Errorf("two calls printed the same credential or hash")
		}
	})
}

// TestCallersGenerateDocumentedArgumentOrder: the usage, README and
// Validate's error all say `tokenstore callers generate --name NAME`, with
// the flags after the action, which the flag package alone would not parse.
func TestCallersGenerateDocumentedArgumentOrder(t *testing.T) {
	t.Parallel()
	out, errOut, err := run(t, nil, "callers", "generate", "--name", "svc")
	if err != nil {
		t.Fatalf("`tokenstore callers generate --name svc` (the documented form) fails: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	checkCallerRoundTrip(t, "svc", []httpapi.Permission{httpapi.PermTokensRead},
		"generate", "--name", "svc", "--permissions", "tokens:read")
}

// TestCallersGenerateEntryQuotesName: the printed config entry writes the
// name unquoted, so a name YAML reads specially is not round-tripped: in
// "- name: billing #2" the "#2" is a comment (the caller is silently named
// "billing"), and "team: billing" makes the entry invalid YAML.
func TestCallersGenerateEntryQuotesName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"billing #2", "team: billing", "[svc]", "*svc", "'svc'"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, entry := callersGenerate(t, "--name", name, "generate")
			path := writeFile(t, "tokenstore.yaml", entry, 0o600)
			cfg, err := cli.Load(path, false, envOf(nil))
			if err != nil {
				t.Fatalf("the printed entry for name %q does not load: %v\n%s", name, err, entry)
			}
			if len(cfg.Callers) != 1 || cfg.Callers[0].Name != name {
				t.Errorf("the printed entry for name %q loads as %+v\n%s", name, cfg.Callers, entry)
			}
		})
	}
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"TOKENSTORE_DATABASE_URL": testdb.NewEmptyDSN(t)}

	status := func() (applied, pending int, out string) {
		t.Helper()
		out, _, err := run(t, env, "migrate", "status")
		if err != nil {
			t.Fatalf("migrate status: %v", err)
		}
		for line := range strings.Lines(out) {
			switch {
			case strings.Contains(line, " applied "):
				applied++
			case strings.Contains(line, " pending "):
				pending++
			}
		}
		return applied, pending, out
	}

	applied, pending, out := status()
	if applied != 0 || pending == 0 {
		t.Fatalf("status on an empty database: %d applied, %d pending:\n%s", applied, pending, out)
	}
	total := pending

	out, _, err := run(t, env, "migrate", "up")
	if err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	if want := fmt.Sprintf("applied %d migration(s)", total); !strings.Contains(out, want) {
		t.Errorf("migrate up printed %q, want %q", out, want)
	}
	if applied, pending, out := status(); applied != total || pending != 0 {
		t.Errorf("status after up: %d applied, %d pending, want all %d applied:\n%s", applied, pending, total, out)
	}

	out, _, err = run(t, env, "migrate", "up")
	if err != nil || !strings.Contains(out, "applied 0 migration(s)") {
		t.Errorf("second migrate up: %q, %v; want applied 0", out, err)
	}

	out, _, err = run(t, env, "migrate", "down")
	if err != nil || !strings.Contains(out, "rolled back 1 migration") {
		t.Fatalf("migrate down: %q, %v", out, err)
	}
	applied, pending, out = status()
	if applied != total-1 || pending != 1 {
		t.Errorf("status after down: %d applied, %d pending, want %d and 1:\n%s", applied, pending, total-1, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.Contains(lines[len(lines)-1], "pending") {
		t.Errorf("after down the latest migration should be the pending one:\n%s", out)
	}

	out, _, err = run(t, env, "migrate", "up")
	if err != nil || !strings.Contains(out, "applied 1 migration(s)") {
		t.Errorf("migrate up after down: %q, %v; want applied 1", out, err)
	}

	_, _, err = run(t, env, "migrate", "sideways")
	wantErr(t, err, `"sideways"`)
}

// TestMigrateCommandUsesDirectURL: migrations hold a session lock, so
// they go through database.direct_url when it is set: here database.url
// points at nothing and the migration still succeeds.
func TestMigrateCommandUsesDirectURL(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"TOKENSTORE_DATABASE_URL":        "postgres://u@127.0.0.1:1/pooled?sslmode=disable",
		"TOKENSTORE_DATABASE_DIRECT_URL": testdb.NewEmptyDSN(t),
	}
	out, _, err := run(t, env, "migrate", "up")
	if err != nil || !strings.Contains(out, "applied") || strings.Contains(out, "applied 0") {
		t.Fatalf("migrate up through the direct URL: %q, %v", out, err)
	}
	out, _, err = run(t, env, "migrate", "status")
	if err != nil || strings.Contains(out, "pending") {
		t.Errorf("migrate status through the direct URL: %q, %v", out, err)
	}
}

func TestMigrateCommandDownToNothing(t *testing.T) {
	t.Parallel()
	env := map[string]string{"TOKENSTORE_DATABASE_URL": testdb.NewEmptyDSN(t)}
	out, _, err := run(t, env, "migrate", "down")
	if err != nil || !strings.Contains(out, "nothing to roll back") {
		t.Errorf("migrate down on an empty database: %q, %v", out, err)
	}
}

func TestMigrateCommandFromConfigFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "tokenstore.yaml", "database:\n  url: "+testdb.NewEmptyDSN(t)+"\n", 0o600)
	out, _, err := run(t, nil, "migrate", "--config", path, "up")
	if err != nil || !strings.Contains(out, "applied") {
		t.Errorf("migrate --config up: %q, %v", out, err)
	}
	out, _, err = run(t, map[string]string{"TOKENSTORE_CONFIG": path}, "migrate", "status")
	if err != nil || strings.Contains(out, "pending") {
		t.Errorf("migrate status via TOKENSTORE_CONFIG: %q, %v", out, err)
	}
}

func TestMigrateCommandErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no database URL", nil, []string{"TOKENSTORE_DATABASE_URL"}},
		{"malformed URL", map[string]string{"TOKENSTORE_DATABASE_URL": "postgres://u:" + secretPW + "@h:port/db"}, []string{"TOKENSTORE_DATABASE_URL"}},
		{"unreachable", map[string]string{"TOKENSTORE_DATABASE_URL": "postgres://u:" + secretPW + "@127.0.0.1:1/tokens?sslmode=disable"},
			[]string{"127.0.0.1:1", "tokens"}},
		{"invalid setting", map[string]string{"TOKENSTORE_DATABASE_MAX_CONNS": "0"}, []string{"TOKENSTORE_DATABASE_MAX_CONNS"}},
		{"unreachable direct URL", map[string]string{
			"TOKENSTORE_DATABASE_URL":        "postgres://u@127.0.0.1:1/pooled?sslmode=disable",
			"TOKENSTORE_DATABASE_DIRECT_URL": "postgres://u:" + secretPW + "@127.0.0.1:2/direct?sslmode=disable",
		}, []string{"TOKENSTORE_DATABASE_DIRECT_URL / database.direct_url", "127.0.0.1:2", "direct"}},
		{"malformed direct URL", map[string]string{
			"TOKENSTORE_DATABASE_URL":        "postgres://u@127.0.0.1:1/pooled?sslmode=disable",
			"TOKENSTORE_DATABASE_DIRECT_URL": "postgres://u:" + secretPW + "@h:port/db",
		}, []string{"TOKENSTORE_DATABASE_DIRECT_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, err := run(t, tt.env, "migrate", "status")
			wantErr(t, err, tt.want...)
			wantNoSecret(t, "error", fmt.Sprint(err))
			wantNoSecret(t, "output", out+errOut)
		})
	}
}

func TestServeStartupLogHidesPassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"postgres://u:" + secretPW + "@127.0.0.1:1/tokens?sslmode=disable",
		"host=127.0.0.1 port=1 user=u password=" + secretPW + " dbname=tokens sslmode=disable",
	} {
		t.Run(url, func(t *testing.T) {
			t.Parallel()
			callers, _ := callersJSON(t, "svc")
			env := map[string]string{
				"TOKENSTORE_DATABASE_URL": url,
				"TOKENSTORE_KEYS":         fernetKey(t),
				"TOKENSTORE_CALLERS":      callers,
				"TOKENSTORE_HTTP_ADDR":    "127.0.0.1:0",
				"TOKENSTORE_LOG_LEVEL":    "debug", // fx's own events too
				"TOKENSTORE_DEV_DIR":      filepath.Join(t.TempDir(), "dev"),
			}
			out, errOut, err := run(t, env, "serve")
			wantErr(t, err, "TOKENSTORE_DATABASE_URL", "PostgreSQL database at 127.0.0.1:1", "tokens", "connection refused")
			wantNoSecret(t, "serve error", fmt.Sprint(err))
			wantNoSecret(t, "serve stderr", errOut)
			wantNoSecret(t, "serve stdout", out)
			if !strings.Contains(errOut, "starting tokenstore") {
				t.Errorf("no start-up log line:\n%s", errOut)
			}
			if strings.HasPrefix(url, "postgres://") && !strings.Contains(errOut, "u:xxxxx@127.0.0.1:1/tokens") {
				t.Errorf("start-up log should show the redacted URL:\n%s", errOut)
			}
		})
	}
}

func TestServeRefusesIncompleteConfiguration(t *testing.T) {
	t.Parallel()
	callers, _ := callersJSON(t, "svc")
	key := fernetKey(t)
	url := "postgres://u:" + secretPW + "@127.0.0.1:1/tokens?sslmode=disable"
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no keys", map[string]string{"TOKENSTORE_DATABASE_URL": url, "TOKENSTORE_CALLERS": callers},
			[]string{"no encryption key", "tokenstore keys generate", "TOKENSTORE_KEYS"}},
		{"no callers", map[string]string{"TOKENSTORE_DATABASE_URL": url, "TOKENSTORE_KEYS": key},
			[]string{"TOKENSTORE_CALLERS", "tokenstore callers generate"}},
		{"no database URL", map[string]string{"TOKENSTORE_KEYS": key, "TOKENSTORE_CALLERS": callers},
			[]string{"TOKENSTORE_DATABASE_URL"}},
		{"invalid setting", map[string]string{"TOKENSTORE_DATABASE_URL": url, "TOKENSTORE_KEYS": key, "TOKENSTORE_CALLERS": callers,
			"TOKENSTORE_LOG_FORMAT": "xml"}, []string{"TOKENSTORE_LOG_FORMAT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			devDir := filepath.Join(t.TempDir(), "dev")
			tt.env["TOKENSTORE_DEV_DIR"] = devDir
			tt.env["TOKENSTORE_HTTP_ADDR"] = "127.0.0.1:0"
			out, errOut, err := run(t, tt.env, "serve")
			wantErr(t, err, tt.want...)
			wantNoSecret(t, "output", out+errOut+fmt.Sprint(err))
			// Outside --dev nothing is ever generated.
			if _, err := os.Stat(devDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("serve without --dev created %s (%v)", devDir, err)
			}
		})
	}
	// Nor under the default dev directory, relative to the working directory.
	if _, err := os.Stat(".dev"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a .dev directory exists in the package directory (%v)", err)
	}
}

// devEnv is the environment of a dev-mode serve on dsn writing to devDir.
func devEnv(dsn, devDir string) map[string]string {
	return map[string]string{
		"TOKENSTORE_DEV_DIR":      devDir,
		"TOKENSTORE_DATABASE_URL": dsn,
		"TOKENSTORE_HTTP_ADDR":    "127.0.0.1:0",
	}
}

// serveDev runs `serve --dev` until it listens, checks the API with the
// development credential, stops it and returns the keys and credential
// files' contents.
func serveDev(t *testing.T, env map[string]string) (keys, cred string) {
	t.Helper()
	r := start(t, []string{"serve", "--dev"}, envOf(env))
	var addr string
	eventually(t, 90*time.Second, "serve --dev to log listening", func() bool {
		select {
		case err := <-r.done:
			r.done <- err // for the cleanup
			t.Fatalf("serve --dev returned before listening: %v\nstderr:\n%s", err, r.stderr.String())
		default:
		}
		addr = listeningAddr(t, r.stderr.String())
		return addr != ""
	})
	devDir := env["TOKENSTORE_DEV_DIR"]
	keysPath := filepath.Join(devDir, "keys")
	credPath := filepath.Join(devDir, "caller-credential")
	for _, p := range []string{keysPath, credPath} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatalf("dev file: %v", err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", p, perm)
		}
	}
	info, err := os.Stat(devDir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("dev directory %s has mode %04o, want 0700", devDir, perm)
	}
	kb, err := os.ReadFile(keysPath)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := os.ReadFile(credPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, cred = string(kb), strings.TrimSpace(string(cb))

	base := "http://" + addr
	if status, _, body := get(t, base+"/readyz", ""); status != http.StatusOK {
		t.Errorf("dev /readyz: %d %s (dev mode migrates on start)", status, body)
	}
	if status, _, body := get(t, base+"/v1/users/u1/providers", cred); status != http.StatusOK {
		t.Errorf("dev credential: GET providers %d %s", status, body)
	}
	if status, _, _ := get(t, base+"/v1/users/u1/providers", "tsc_wrong"); status != http.StatusUnauthorized {
		t.Errorf("wrong credential: GET providers %d, want 401", status)
	}
	logs := r.stderr.String()
	if strings.Contains(logs, cred) {
		t.Errorf("the development credential is in the log")
	}
	for line := range strings.Lines(keys) {
		if k := strings.TrimSpace(line); k != "" && !strings.HasPrefix(k, "#") && strings.Contains(logs, k) {
			t.Errorf("the development key is in the log")
		}
	}

	r.cancel()
	if err := r.wait(t); err != nil {
		t.Errorf("serve --dev after cancel: %v\nstderr:\n%s", err, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "shutting down") {
		t.Errorf("no shutting down log line")
	}
	return keys, cred
}

func TestServeDev(t *testing.T) {
	t.Parallel()
	devDir := filepath.Join(t.TempDir(), "dev")
	env := devEnv(testdb.NewEmptyDSN(t), devDir)

	keys1, cred1 := serveDev(t, env)
	var keyLines []string
	for line := range strings.Lines(keys1) {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			keyLines = append(keyLines, l)
		}
	}
	if len(keyLines) != 1 {
		t.Fatalf("dev key file holds %d keys, want 1:\n%s", len(keyLines), keys1)
	}
	if _, err := fernet.ParseKey(keyLines[0]); err != nil {
		t.Errorf("dev key does not parse: %v", err)
	}
	if !strings.HasPrefix(cred1, "tsc_") {
		t.Errorf("dev credential %q lacks the tsc_ prefix", cred1)
	}

	// A second run reuses both files unchanged.
	keys2, cred2 := serveDev(t, env)
	if keys2 != keys1 || cred2 != cred1 {
		t.Errorf("second dev run changed the files:\nkeys %q -> %q\ncredential %q -> %q", keys1, keys2, cred1, cred2)
	}
}

func TestServeDevUsesConfiguredKeysAndCallers(t *testing.T) {
	t.Parallel()
	devDir := filepath.Join(t.TempDir(), "dev")
	env := devEnv(testdb.NewEmptyDSN(t), devDir)
	env["TOKENSTORE_KEYS"] = fernetKey(t)
	callers, cred := callersJSON(t, "mine")
	env["TOKENSTORE_CALLERS"] = callers

	r := start(t, []string{"serve", "--dev"}, envOf(env))
	var addr string
	eventually(t, 90*time.Second, "serve --dev to log listening", func() bool {
		select {
		case err := <-r.done:
			r.done <- err // for the cleanup
			t.Fatalf("serve --dev returned before listening: %v\nstderr:\n%s", err, r.stderr.String())
		default:
		}
		addr = listeningAddr(t, r.stderr.String())
		return addr != ""
	})
	if status, _, body := get(t, "http://"+addr+"/v1/users/u1/providers", cred); status != http.StatusOK {
		t.Errorf("configured caller: %d %s", status, body)
	}
	if _, err := os.Stat(devDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dev mode with keys and callers configured still created %s", devDir)
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Errorf("serve --dev after cancel: %v", err)
	}
}

func TestServeDevRefusesReadableKeyFile(t *testing.T) {
	t.Parallel()
	devDir := filepath.Join(t.TempDir(), "dev")
	if err := os.MkdirAll(devDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keysPath := filepath.Join(devDir, "keys")
	if err := os.WriteFile(keysPath, []byte(fernetKey(t)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keysPath, 0o644); err != nil {
		t.Fatal(err)
	}
	// The database is never reached: the key file is checked first.
	env := devEnv("postgres://u@127.0.0.1:1/db?sslmode=disable", devDir)
	_, _, err := run(t, env, "serve", "--dev")
	wantErr(t, err, keysPath, "chmod 600")
}
