package cli_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// startupLine runs serve with env against a database that refuses
// connections (the summary is logged before connecting) and returns the
// "starting tokenstore" line's attributes and the whole log.
func startupLine(t *testing.T, env map[string]string, args ...string) (map[string]any, string) {
	t.Helper()
	env["TOKENSTORE_LOG_FORMAT"] = "json"
	env["TOKENSTORE_HTTP_ADDR"] = "127.0.0.1:0"
	out, errOut, _ := run(t, env, append([]string{"serve"}, args...)...)
	for _, line := range logLines(t, errOut) {
		if line["msg"] == "starting tokenstore" {
			return line, out + errOut
		}
	}
	t.Fatalf("no start-up line:\n%s", errOut)
	return nil, ""
}

// TestStartupSummary: the start-up line states what the instance runs
// with, in an operator's units: the pool size pgxpool will really use (not
// the setting's 0 for "default"), durations as "5s" (not nanoseconds),
// every declared provider and whether it is refreshed, the audit mode and
// TLS; and no secret in any encoding.
func TestStartupSummary(t *testing.T) {
	t.Parallel()
	devDir := filepath.Join(t.TempDir(), ".dev")
	url := "postgres://u:" + secretPW + "@127.0.0.1:1/tokens?sslmode=disable"
	providers := `[{"name":"gitlab","client_id":"app","client_secret_env":"GITLAB_SECRET"},{"name":"corp","refresh":false}]`
	const clientSecret = "gitlab-client-secret-value"
	callers, cred := callersJSON(t, "backend")
	key := fernetKey(t)
	line, logs := startupLine(t, map[string]string{"TOKENSTORE_DATABASE_URL": url, "TOKENSTORE_KEYS": key, "TOKENSTORE_CALLERS": callers,
		"TOKENSTORE_PROVIDERS": providers, "GITLAB_SECRET": clientSecret, "TOKENSTORE_DEV_DIR": devDir})

	db, _ := line["database"].(map[string]any)
	want := map[string]any{
		"max_conns": float64(postgres.DefaultMaxConns), "lock_timeout": "5s", "timeout": "6s",
		"url": "postgres://u:xxxxx@127.0.0.1:1/tokens",
	}
	for k, v := range want {
		if db[k] != v {
			t.Errorf("database.%s = %#v, want %#v (line %v)", k, db[k], v, line)
		}
	}
	for k, v := range map[string]any{"tls": "off", "audit_mode": "fail_closed", "audit_retention": "9600h0m0s", "refresh_margin": "15m0s",
		"refresh_worker": "every 1m0s", "callers": "backend", "keys": float64(1), "key_source": "TOKENSTORE_KEYS", "envelope": "binary",
		"metrics": "off", "tracing": "off"} {
		if line[k] != v {
			t.Errorf("%s = %#v, want %#v", k, line[k], v)
		}
	}
	if got, _ := json.Marshal(line["providers"]); string(got) != `{"corp":"store-only","gitlab":"refresh"}` {
		t.Errorf("providers = %s, want each declared provider and whether it is refreshed", got)
	}
	if s, enc := testlog.FindSecret(logs, secretPW, key, cred, clientSecret); s != "" {
		t.Errorf("the start-up log holds a secret (%s encoding):\n%s", enc, logs)
	}

	// A pool size set is the one shown; so is TLS and a URL's pool_max_conns.
	line, _ = startupLine(t, map[string]string{"TOKENSTORE_DATABASE_URL": url + "&pool_max_conns=9", "TOKENSTORE_KEYS": key,
		"TOKENSTORE_CALLERS": callers, "TOKENSTORE_DEV_DIR": devDir})
	if db, _ := line["database"].(map[string]any); db["max_conns"] != float64(9) {
		t.Errorf("pool_max_conns=9 in the URL: max_conns %v", db["max_conns"])
	}
	line, _ = startupLine(t, map[string]string{"TOKENSTORE_DATABASE_URL": url + "&pool_max_conns=9", "TOKENSTORE_DATABASE_MAX_CONNS": "3",
		"TOKENSTORE_KEYS": key, "TOKENSTORE_CALLERS": callers, "TOKENSTORE_DEV_DIR": devDir})
	if db, _ := line["database"].(map[string]any); db["max_conns"] != float64(3) {
		t.Errorf("TOKENSTORE_DATABASE_MAX_CONNS=3: max_conns %v", db["max_conns"])
	}

	// --dev's store-only providers are listed too.
	line, _ = startupLine(t, map[string]string{"TOKENSTORE_DATABASE_URL": url, "TOKENSTORE_DEV_DIR": devDir}, "--dev")
	if got := fmt.Sprint(line["providers"]); !strings.Contains(got, "gitlab:store-only") || line["dev"] != true {
		t.Errorf("--dev: providers %s, dev %v", got, line["dev"])
	}
}
