package cli_test

import (
	"errors"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// fakeDocker answers devdb.sh's docker calls from FAKE_* variables and logs
// every call to $FAKE_LOG: no engine is needed to check what the script asks.
const fakeDocker = `#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$1" in
ps) [ -n "$FAKE_EXISTS" ] && echo abc123 ;;
inspect) case "$3" in *PortBindings*) echo "$FAKE_PORT" ;; *) echo true ;; esac ;;
esac
exit 0
`

// runDevDB runs tests/pgimage/devdb.sh against fakeDocker with env added,
// returning its combined output, docker's calls and the error.
func runDevDB(t *testing.T, env ...string) (out, calls string, err error) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(fakeDocker), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(bin, "calls")
	cmd := exec.Command("bash", filepath.Join("..", "..", "..", "tests", "pgimage", "devdb.sh"))
	cmd.Env = append([]string{"PATH=" + bin + ":" + os.Getenv("PATH"), "FAKE_LOG=" + log,
		"TOKENSTORE_TEST_POSTGRES_IMAGE=img:tag"}, env...)
	b, err := cmd.CombinedOutput()
	c, _ := os.ReadFile(log)
	return string(b), string(c), err
}

// TestDevDBPortIsTheSetting: `task run`'s database is published on
// dev.database_port (TOKENSTORE_DEV_DATABASE_PORT), the port --dev connects
// to, with the same default; a container made on another port is refused,
// not started where --dev would not find it.
func TestDevDBPortIsTheSetting(t *testing.T) {
	t.Parallel()
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		out, calls, err := runDevDB(t)
		if err != nil {
			t.Fatalf("devdb.sh: %v\n%s", err, out)
		}
		if want := "-p 127.0.0.1:" + strconv.Itoa(cli.DefaultDevDatabasePort) + ":5432"; !strings.Contains(calls, want) {
			t.Errorf("docker calls lack %q (cli.DefaultDevDatabasePort):\n%s", want, calls)
		}
	})
	t.Run("set", func(t *testing.T) {
		t.Parallel()
		out, calls, err := runDevDB(t, "TOKENSTORE_DEV_DATABASE_PORT=55999")
		if err != nil {
			t.Fatalf("devdb.sh: %v\n%s", err, out)
		}
		if !strings.Contains(calls, "-p 127.0.0.1:55999:5432") || !strings.Contains(out, "127.0.0.1:55999") {
			t.Errorf("TOKENSTORE_DEV_DATABASE_PORT=55999 not used:\ncalls:\n%s\noutput:\n%s", calls, out)
		}
	})
	t.Run("existing container on another port", func(t *testing.T) {
		t.Parallel()
		out, calls, err := runDevDB(t, "TOKENSTORE_DEV_DATABASE_PORT=55999", "FAKE_EXISTS=1", "FAKE_PORT=55432")
		if err == nil || !strings.Contains(out, "TOKENSTORE_DEV_DATABASE_PORT=55432") {
			t.Errorf("devdb.sh: err %v, want a refusal naming the container's port:\n%s", err, out)
		}
		if strings.Contains(calls, "start") || strings.Contains(calls, "run ") {
			t.Errorf("devdb.sh started a container on the wrong port:\n%s", calls)
		}
	})
	t.Run("not a port", func(t *testing.T) {
		t.Parallel()
		if out, _, err := runDevDB(t, "TOKENSTORE_DEV_DATABASE_PORT=5x"); err == nil {
			t.Errorf("devdb.sh accepted port 5x:\n%s", out)
		}
	})
}

// TestOneOffCommandsFindTheDevEnvironment: after `serve --dev` (what `task
// run` starts), `migrate status --dev`, `keys list --dev` and `audit list
// --dev` find its database and its key file, as the README's newcomer path
// runs them; without --dev, keys list says no key is configured. (The
// database is the test's, by TOKENSTORE_DATABASE_URL, which wins in --dev
// as everywhere; TestOneOffCommandsDevDatabasePort checks the port.)
func TestOneOffCommandsFindTheDevEnvironment(t *testing.T) {
	t.Parallel()
	devDir := filepath.Join(t.TempDir(), ".dev")
	env := map[string]string{"TOKENSTORE_DEV_DIR": devDir, "TOKENSTORE_HTTP_ADDR": "127.0.0.1:0",
		"TOKENSTORE_DATABASE_URL": testdb.NewEmptyDSN(t)}

	// Before serve --dev made the key file: keys list --dev says where it looked.
	_, _, err := run(t, env, "keys", "list", "--dev")
	wantErr(t, err, "no development key file", devDir, "task run")
	if _, err := os.Stat(devDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("keys list --dev created %s (%v): only serve --dev makes it", devDir, err)
	}

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
	cred, err := os.ReadFile(filepath.Join(devDir, "caller-credential"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/users/alice/providers/gitlab/tokens",
		strings.NewReader(`{"access_token":"glpat-example"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(cred)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT tokens: %d", resp.StatusCode)
	}

	tests := []struct {
		args []string
		want *regexp.Regexp
	}{
		{[]string{"migrate", "status", "--dev"}, regexp.MustCompile(`(?m)^\d{5}  applied `)},
		{[]string{"keys", "--dev", "list"}, regexp.MustCompile(`(?m)^[0-9a-f]{16}\s+primary\s+1$`)},
		{[]string{"audit", "list", "--dev", "--user", "alice"}, regexp.MustCompile(`"action":"put_tokens"`)},
	}
	for _, tt := range tests {
		out, errOut, err := run(t, env, tt.args...)
		if err != nil || !tt.want.MatchString(out) || strings.Contains(out, " pending ") {
			t.Errorf("%v: %v\nstdout:\n%s\nstderr:\n%s", tt.args, err, out, errOut)
		}
	}
	_, _, err = run(t, env, "keys", "list")
	wantErr(t, err, "no encryption key", "TOKENSTORE_KEYS")
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Errorf("serve --dev after cancel: %v", err)
	}
}

// TestOneOffCommandsDevDatabasePort: with --dev and no database URL, every
// one-off command that uses the database connects to 127.0.0.1 on
// dev.database_port, as serve --dev does; without --dev it asks for a URL.
func TestOneOffCommandsDevDatabasePort(t *testing.T) {
	t.Parallel()
	key := writeFile(t, "keys", fernetKey(t)+"\n", 0o600)
	env := map[string]string{"TOKENSTORE_DEV_DIR": filepath.Join(t.TempDir(), ".dev"), "TOKENSTORE_DEV_DATABASE_PORT": "1",
		"TOKENSTORE_KEY_FILE": key, "TOKENSTORE_DATABASE_TIMEOUT": "2s", "TOKENSTORE_DATABASE_LOCK_TIMEOUT": "1s"}
	for _, args := range [][]string{{"migrate", "up"}, {"migrate", "down"}, {"migrate", "status"}, {"keys", "list"}, {"keys", "rotate"},
		{"keys", "retire", "0123456789abcdef"}, {"audit", "list"}, {"import", "openhands", "--source-dsn", "postgres://o@127.0.0.1:1/o", "--jwt-secret-env", "SECRET"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			env := maps.Clone(env)
			env["SECRET"] = "a-secret-of-sixteen-bytes"
			_, _, err := run(t, env, append(args, "--dev")...)
			wantErr(t, err, "127.0.0.1:1", `database "tokenstore"`)
			_, _, err = run(t, env, args...)
			wantErr(t, err, "TOKENSTORE_DATABASE_URL", "or give --dev")
		})
	}
}
