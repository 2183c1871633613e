package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/tests/testlog"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// secretPW is the password every secret-leak test plants; it must never be
// printed anywhere.
const secretPW = "s3cretPW"

// envOf is a fake getenv over a map.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// newKey returns a fresh Fernet key and its encoded form.
func newKey(t *testing.T) (fernet.Key, string) {
	t.Helper()
	k := servicetest.NewKey(t)
	return k, k.Encode()
}

// newCaller returns a fresh credential and the caller holding perms (none:
// every permission).
func newCaller(t *testing.T, name string, perms ...httpapi.Permission) (string, httpapi.Caller) {
	t.Helper()
	return servicetest.NewCaller(t, name, perms...)
}

// callersJSON is a TOKENSTORE_CALLERS value with one caller holding every
// permission; it returns the caller's credential too.
func callersJSON(t *testing.T, name string) (value, credential string) {
	t.Helper()
	cred, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	perms := make([]string, len(httpapi.AllPermissions))
	for i, p := range httpapi.AllPermissions {
		perms[i] = string(p)
	}
	b, err := json.Marshal([]map[string]any{{"name": name, "credential_hash": hash, "permissions": perms}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b), cred
}

// writeFile writes content to name in a fresh temporary directory with mode
// and returns its path.
func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantErr fails unless err is non-nil and contains every substring.
func wantErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// wantNoSecret fails if text contains secretPW.
func wantNoSecret(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, secretPW) {
		t.Errorf("%s shows the password %q:\n%s", what, secretPW, text)
	}
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// get sends a GET with an optional bearer credential and returns the status,
// headers and body.
func get(t *testing.T, url, credential string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// eventually polls cond every 20ms until it holds or the deadline passes.
func eventually(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("gave up after %s waiting for %s", deadline, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running is a `tokenstore` command running in the background.
type running struct {
	stdout, stderr *testlog.Buffer
	cancel         context.CancelFunc
	done           chan error
}

// start runs cli.Run(args) with getenv in a goroutine.
func start(t *testing.T, args []string, getenv func(string) string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stdout: &testlog.Buffer{}, stderr: &testlog.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- cli.Run(ctx, args, cli.Env{Stdout: r.stdout, Stderr: r.stderr, Getenv: getenv})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			t.Errorf("%v did not return within 60s of cancellation", args)
		}
	})
	return r
}

// wait returns Run's result, failing the test if it takes over a minute.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("command did not return within 60s; stderr:\n%s", r.stderr.String())
		return nil
	}
}

// logLines decodes the JSON log lines written so far.
func logLines(t *testing.T, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// listeningAddr is the address of the server's "listening" log line, or "".
func listeningAddr(t *testing.T, logs string) string {
	t.Helper()
	for _, m := range logLines(t, logs) {
		if m["msg"] == "listening" {
			addr, _ := m["addr"].(string)
			return addr
		}
	}
	return ""
}
