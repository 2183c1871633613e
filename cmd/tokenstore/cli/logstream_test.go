package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/testdb"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// tokenstoreBinary builds cmd/tokenstore once per test run.
func tokenstoreBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokenstore-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "tokenstore")
		out, err := exec.Command("go", "build", "-o", binary, "github.com/tokenstore/tokenstore/cmd/tokenstore").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// closedPipe returns the write end of a pipe whose read end is closed.
func closedPipe(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func devFull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// captured is a file a test reads after the process wrote to it.
func captured(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeSurvivesBrokenLogStreams runs the real binary with its standard
// streams on a closed pipe or a full disk, makes requests, and checks that
// it keeps serving, reports the failure on /readyz and on the other stream,
// and stops cleanly on SIGTERM. Before, a closed pipe killed it with
// SIGPIPE at the first log line, and a full disk lost every line unseen.
func TestServeSurvivesBrokenLogStreams(t *testing.T) {
	t.Parallel()
	bin := tokenstoreBinary(t)
	tests := []struct {
		name string
		// streams returns the child's stdout and stderr and, when the log
		// stream (stderr) fails, the file its notice lands in ("" if none).
		streams   func(t *testing.T) (stdout, stderr, notice *os.File)
		logsBroke bool
	}{
		{"stderr on a closed pipe", func(t *testing.T) (*os.File, *os.File, *os.File) {
			n := captured(t)
			return n, closedPipe(t), n
		}, true},
		{"stderr on a full disk", func(t *testing.T) (*os.File, *os.File, *os.File) {
			n := captured(t)
			return n, devFull(t), n
		}, true},
		{"stdout on a closed pipe", func(t *testing.T) (*os.File, *os.File, *os.File) {
			return closedPipe(t), captured(t), nil
		}, false},
		{"both on one closed pipe (2>&1 | a reader that left)", func(t *testing.T) (*os.File, *os.File, *os.File) {
			p := closedPipe(t)
			return p, p, nil
		}, true},
		{"both on a full disk", func(t *testing.T) (*os.File, *os.File, *os.File) {
			f := devFull(t)
			return f, f, nil
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			callers, cred := callersJSON(t, "svc")
			addr := freeAddr(t)
			stdout, stderr, notice := tt.streams(t)
			cmd, exited := startServe(t, bin, append(serveEnv(t, addr), "TOKENSTORE_CALLERS="+callers), stdout, stderr)

			base := "http://" + addr
			waitServing(t, http.DefaultClient, base, exited)
			for range 5 {
				get(t, base+"/v1/users/nobody/providers/github/tokens", cred) // a request line each
			}
			status, _, body := get(t, base+"/readyz", "")
			if status != http.StatusOK {
				t.Fatalf("/readyz: %d %s", status, body)
			}
			var ready map[string]any
			if err := json.Unmarshal(body, &ready); err != nil {
				t.Fatal(err)
			}
			n, _ := ready["log_write_failures"].(float64)
			if tt.logsBroke && (n < 5 || ready["log_last_error"] == nil) {
				t.Errorf("/readyz %s: want the lost log lines counted and the last error", body)
			}
			if !tt.logsBroke && n != 0 {
				t.Errorf("/readyz %s: no log line was lost", body)
			}
			select {
			case err := <-exited:
				t.Fatalf("the server exited while serving: %v", err)
			default:
			}
			stopServe(t, cmd, exited)
			if notice != nil {
				out, _ := os.ReadFile(notice.Name())
				lines := strings.Count(string(out), "writing the log failed")
				if lines != 1 {
					t.Errorf("notice stream holds %d failure notices, want 1 (at most one a minute):\n%s", lines, out)
				}
			}
		})
	}
}

// serveEnv is the environment of a `tokenstore serve` process on addr
// with its own database and key, logging JSON; callers are the test's.
func serveEnv(t *testing.T, addr string) []string {
	t.Helper()
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"TOKENSTORE_DATABASE_URL=" + testdb.NewDSN(t),
		"TOKENSTORE_KEYS=" + fernetKey(t),
		"TOKENSTORE_HTTP_ADDR=" + addr,
		"TOKENSTORE_LOG_FORMAT=json",
	}
}

// startServe starts `bin serve` with env and the streams; exited receives
// its result, and it is killed when t ends.
func startServe(t *testing.T, bin string, env []string, stdout, stderr *os.File) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, exited
}

// stopServe sends SIGTERM and expects exit status 0 within 30 s.
func stopServe(t *testing.T, cmd *exec.Cmd, exited chan error) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not stop within 30 s of SIGTERM")
	}
}

// waitServing polls /healthz with client until it answers 200, failing if
// the process exits first.
func waitServing(t *testing.T, client *http.Client, base string, exited chan error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("the server died before serving: %v (signal %v)", err, ee.Sys())
			}
			t.Fatalf("the server exited before serving: %v", err)
		default:
		}
		resp, err := client.Get(base + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the server did not serve within 60 s")
}

// TestLogStreamCountsAndReports: the writer on its own, with a fake clock.
func TestLogStreamCountsAndReports(t *testing.T) {
	t.Parallel()
	var notice bytes.Buffer
	s := cli.NewLogStream(failingWriter{}, &notice)
	for range 3 {
		if n, err := s.Write([]byte("line\n")); n != 5 || err != nil {
			t.Fatalf("Write = %d, %v: a failure is counted, never returned", n, err)
		}
	}
	if n, last := s.Failures(); n != 3 || !strings.Contains(last, "no space") {
		t.Errorf("Failures() = %d, %q, want the 3 lines buffered before it counted", n, last)
	}
	if c := strings.Count(notice.String(), "writing the log failed"); c != 1 {
		t.Errorf("%d notices, want 1:\n%s", c, notice.String())
	}
	var ok testlog.Buffer
	w := cli.NewLogStream(&ok, io.Discard)
	defer w.Close()
	if _, err := w.Write([]byte("fine\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil || ok.String() != "fine\n" {
		t.Errorf("a working stream after Flush: %v %q", err, ok.String())
	}
}

// TestServeWritesEveryRequestLine: serve's log is buffered, yet once serve
// returns (its context cancelled, as SIGTERM does) every request it
// answered has its line, and the shutdown lines follow.
// The lines wait an hour unless flushed, so only the flush at the end can
// have written the last of them. Not parallel: it sets SetLogFlushEvery.
func TestServeWritesEveryRequestLine(t *testing.T) {
	defer cli.SetLogFlushEvery(time.Hour)()
	callers, cred := callersJSON(t, "svc")
	addr := freeAddr(t)
	r := start(t, []string{"serve"}, envOf(map[string]string{
		"TOKENSTORE_DATABASE_URL": testdb.NewDSN(t),
		"TOKENSTORE_KEYS":         fernetKey(t),
		"TOKENSTORE_HTTP_ADDR":    addr,
		"TOKENSTORE_LOG_FORMAT":   "json",
		"TOKENSTORE_CALLERS":      callers,
	}))
	base := "http://" + addr
	eventually(t, 60*time.Second, "serve to answer /healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	const requests = 200
	ids := make([]string, requests)
	for i := range ids {
		ids[i] = fmt.Sprintf("logtest-%03d", i)
		req, err := http.NewRequest(http.MethodGet, base+"/v1/users/u1/providers", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+cred)
		req.Header.Set("X-Request-Id", ids[i])
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET providers: %d", resp.StatusCode)
		}
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	seen := map[string]bool{}
	var last string
	for _, m := range logLines(t, r.stderr.String()) {
		if m["msg"] == "request" {
			id, _ := m["request_id"].(string)
			seen[id] = true
		}
		last, _ = m["msg"].(string)
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("no request line for %s", id)
		}
	}
	if last == "request" || last == "" {
		t.Errorf("the log ends with %q: want the shutdown lines after the requests", last)
	}
}

// TestLogStreamBuffers: lines wait for the timer, a full buffer, a line
// at WARN or above, Flush or Close; after Close they are written at once.
// Not parallel: it sets SetLogFlushEvery.
func TestLogStreamBuffers(t *testing.T) {
	defer cli.SetLogFlushEvery(time.Hour)()
	var out testlog.Buffer
	s := cli.NewLogStream(&out, io.Discard)
	log := cli.NewLogger(cli.LogConfig{Format: "json", Level: "info"}, s)
	log.Info("first")
	log.With("k", "v").WithGroup("g").Info("second")
	if out.String() != "" {
		t.Fatalf("written before any flush:\n%s", out.String())
	}
	log.With("k", "v").WithGroup("g").Warn("third")
	lines := logLines(t, out.String())
	if len(lines) != 3 || lines[0]["msg"] != "first" || lines[2]["msg"] != "third" {
		t.Fatalf("after a WARN line, want the 3 lines in order:\n%s", out.String())
	}
	log.Info("fourth")
	log.Error("fifth")
	if n := len(logLines(t, out.String())); n != 5 {
		t.Fatalf("after an ERROR line, %d lines, want 5", n)
	}

	// A full buffer is written without waiting: 64 KiB of 1 KiB lines.
	line := strings.Repeat("x", 1023) + "\n"
	for range 65 {
		_, _ = s.Write([]byte(line))
	}
	if n := strings.Count(out.String(), line); n < 64 {
		t.Errorf("%d of 65 1 KiB lines written, want the buffer's 64 written when full", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), line); n != 65 {
		t.Errorf("%d of 65 lines written after Close", n)
	}
	_, _ = s.Write([]byte("after close\n"))
	if !strings.HasSuffix(out.String(), "after close\n") {
		t.Errorf("a line after Close was not written at once")
	}
}

// TestLogStreamFlushesOnItsOwn: a buffered line is written within the
// flush interval with nothing else happening.
func TestLogStreamFlushesOnItsOwn(t *testing.T) {
	t.Parallel()
	var out testlog.Buffer
	s := cli.NewLogStream(&out, io.Discard)
	defer s.Close()
	for i := range 2 { // twice: the timer is armed again after it fired
		msg := fmt.Sprintf("line %d\n", i)
		_, _ = s.Write([]byte(msg))
		eventually(t, 10*time.Second, "the timer to flush "+msg, func() bool { return strings.HasSuffix(out.String(), msg) })
	}
}

// TestLogStreamCountsLinesLost: a write that fails partway counts the lines
// whose newline was not written.
func TestLogStreamCountsLinesLost(t *testing.T) {
	t.Parallel()
	s := cli.NewLogStream(&shortWriter{n: len("one\ntw")}, io.Discard)
	for _, l := range []string{"one\n", "two\n", "three\n"} {
		_, _ = s.Write([]byte(l))
	}
	if n, last := s.Failures(); n != 2 || last == "" {
		t.Errorf("Failures() = %d, %q, want 2 lines lost (two, three)", n, last)
	}
}

// shortWriter writes n bytes, then fails.
type shortWriter struct{ n int }

func (w *shortWriter) Write(p []byte) (int, error) {
	if len(p) <= w.n {
		w.n -= len(p)
		return len(p), nil
	}
	n := w.n
	w.n = 0
	return n, syscall.EIO
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestGraphFlushesLogsOnStop: the fx graph's last stop hook writes out the
// log stream, so the lines its other stop hooks log are out once Stop
// returns, with no Close. Not parallel: it sets SetLogFlushEvery.
func TestGraphFlushesLogsOnStop(t *testing.T) {
	defer cli.SetLogFlushEvery(time.Hour)()
	var out testlog.Buffer
	s := cli.NewLogStream(&out, io.Discard)
	defer s.Close()
	log := cli.NewLogger(cli.LogConfig{Format: "json", Level: "info"}, s)
	cfg := validConfig(t)
	cfg.Database.URL, cfg.Migrate, cfg.HTTP.Addr = testdb.NewDSN(t), true, "127.0.0.1:0"
	app := cli.NewApp(cfg, log, cli.WithLogStream(s), fx.Invoke(func(lc fx.Lifecycle) {
		// Registered after every hook of the graph: stopped first.
		lc.Append(fx.StopHook(func() { log.Info("a stop hook's line") }))
	}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, `"msg":"listening"`) || !strings.Contains(text, `"msg":"a stop hook's line"`) {
		t.Errorf("after Stop, the log lacks the start or stop lines:\n%s", text)
	}
}
