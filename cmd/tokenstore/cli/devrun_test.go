package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/tests/testdb"
)

// lockedBuffer is a bytes.Buffer two goroutines may use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTaskRunCtrlC runs `task run` as the README says (the dev database
// stands in for by fakeDocker, the test's PostgreSQL by its URL) and
// interrupts its process group as Ctrl-C in a terminal does: task must end
// with status 0 and no "Failed to run task" (it did while tokenstore ran
// under `go run`, which exits 1 when interrupted), and say that the dev
// database keeps running and how to stop it.
func TestTaskRunCtrlC(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "docker"), []byte(fakeDocker), 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENSTORE_") && !strings.HasPrefix(kv, "TESTCONTAINERS_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+fake+":"+os.Getenv("PATH"), "FAKE_LOG="+filepath.Join(fake, "calls"), "FAKE_EXISTS=1", "FAKE_PORT=55432",
		"TOKENSTORE_TEST_POSTGRES_IMAGE=img:tag", "TOKENSTORE_DATABASE_URL="+testdb.NewEmptyDSN(t),
		"TOKENSTORE_DEV_DIR="+filepath.Join(t.TempDir(), ".dev"), "TOKENSTORE_HTTP_ADDR=127.0.0.1:0", "TOKENSTORE_LOG_FORMAT=text")
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "task", "run", "BIN="+filepath.Join(t.TempDir(), "tokenstore"))
	cmd.Dir, cmd.Env = root, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a process group, as a terminal's foreground job
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	})
	eventually(t, 3*time.Minute, "task run to serve", func() bool {
		select {
		case err := <-done:
			t.Fatalf("task run ended before serving: %v\n%s", err, out.String())
		default:
		}
		return strings.Contains(out.String(), "listening")
	})
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("task run after Ctrl-C: %v, want status 0\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("task run did not end within a minute of Ctrl-C:\n%s", out.String())
	}
	logs := out.String()
	if strings.Contains(logs, "Failed to run task") {
		t.Errorf("Ctrl-C reported as a failure:\n%s", logs)
	}
	for _, want := range []string{"shutting down", "tokenstore-dev-postgres keeps running", "task run:stop"} {
		if !strings.Contains(logs, want) {
			t.Errorf("task run's output lacks %q:\n%s", want, logs)
		}
	}
}
