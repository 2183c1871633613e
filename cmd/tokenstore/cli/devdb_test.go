package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
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
