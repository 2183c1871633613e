package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// Each tokenstore instance is the built binary (bin/tokenstore serve), as
// deployed, configured by a config file of its own: only what the
// benchmark needs is set, everything else is tokenstore's default (pool
// size postgres.DefaultMaxConns, audit fail_closed, events on, JSON request log, which
// goes to a file here as it would to a log collector's pipe). The
// environment's TOKENSTORE_* and OTEL_* variables are not passed on, so
// nothing from the caller's shell changes what is measured.

type server struct {
	name    string
	url     string // http://127.0.0.1:PORT
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// serverConfig is the config file of one instance (JSON, which YAML reads).
type serverConfig map[string]any

// caller is the benchmark's API credential: one caller with read and
// write permissions.
type caller struct {
	credential string
	entry      map[string]any // the callers: entry
}

func newCaller() (caller, error) {
	cred, _, err := httpapi.NewCredential()
	if err != nil {
		return caller{}, err
	}
	return caller{credential: cred, entry: map[string]any{
		"name": "bench", "credential_hash": httpapi.HashCredential(cred),
		"permissions": []string{"tokens:read", "tokens:write"},
	}}, nil
}

// childEnv is this process's environment without TOKENSTORE_* and OTEL_*
// variables, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TOKENSTORE_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// migrate applies tokenstore's migrations to the database at url with the
// binary's own `migrate up`.
func (b *bench) migrate(ctx context.Context, url string) error {
	cmd := exec.CommandContext(ctx, b.bin, "migrate", "up")
	cmd.Env = childEnv("TOKENSTORE_DATABASE_URL="+url, "TOKENSTORE_LOG_FORMAT=json")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s migrate up: %w\n%s", b.bin, err, out)
	}
	return nil
}

// newDatabase creates database name on the cluster, migrates it with
// the binary, and returns its URL for tokenstore's role.
func (b *bench) newDatabase(ctx context.Context, name string) (string, error) {
	if err := b.db.createDatabase(ctx, name, ""); err != nil {
		return "", err
	}
	url := b.db.url(appRole, name)
	return url, b.migrate(ctx, url)
}

// startServer starts `tokenstore serve` with cfg (http.addr is chosen
// here) and env added to its environment (childEnv), and waits until
// /readyz answers 200.
func (b *bench) startServer(ctx context.Context, name string, cfg serverConfig, env ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg["http"] = map[string]any{"addr": "127.0.0.1:" + strconv.Itoa(port)}
	cfg["log"] = map[string]any{"format": "json"}
	body, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(b.dir, name+".yaml")
	if err := os.WriteFile(confPath, body, 0o600); err != nil { // holds a key and a password
		return nil, err
	}
	s := &server{name: name, url: "http://127.0.0.1:" + strconv.Itoa(port),
		logPath: filepath.Join(b.dir, name+".log"), exited: make(chan struct{})}
	// Appended to: an instance restarted under its name keeps one log.
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.bin, "serve", "--config", confPath)
	cmd.Env = childEnv(env...) // a variable given twice: the last one counts (os/exec)
	if err := b.launch(ctx, s, cmd, logf, "/readyz", 60*time.Second); err != nil {
		return nil, fmt.Errorf("tokenstore %w", err)
	}
	return s, nil
}

// launch starts cmd as s, its output to logf (closed when it exits), keeps
// s for the run's clean-up, and waits until s answers GET readyPath within
// the given time.
func (b *bench) launch(ctx context.Context, s *server, cmd *exec.Cmd, logf *os.File, readyPath string, within time.Duration) error {
	s.cmd = cmd
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	go func() { _ = cmd.Wait(); logf.Close(); close(s.exited) }()
	b.servers = append(b.servers, s)
	if err := s.waitAnswering(ctx, readyPath, within); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// waitAnswering polls path on s until it answers 200, s exits, ctx ends
// or within passes; the error of an exit or a timeout ends with s's log.
func (s *server) waitAnswering(ctx context.Context, path string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(s.url + path)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("exited at start-up; its log:%s", tail(s.logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s; its log:%s", within, tail(s.logPath, 20))
		}
	}
}

// stop stops the instance (SIGTERM: it drains) and waits.
func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// apiClient is an HTTP client keeping up to conns connections per host open.
func apiClient(conns int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns * 4, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
	}}
}

// do sends one API request with the bench credential and returns the
// status and body.
func do(ctx context.Context, c *http.Client, cred, method, url string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

func tokensURL(s *server, user, provider string) string {
	return s.url + "/v1/users/" + user + "/providers/" + provider + "/tokens"
}

// seedUsers stores users' tokens through the API of s, clients at a
// time: PUT /v1/users/{user}/providers/{provider}/tokens with an access
// token, a refresh token and expires_in, the shape wrk's PUT sends.
func (b *bench) seedUsers(ctx context.Context, s *server, provider string) error {
	return b.calls(ctx, users, func(i int) (string, string, any) {
		user := strconv.Itoa(firstUser + i)
		return http.MethodPut, tokensURL(s, user, provider), putBody(user, "seed")
	})
}

// calls sends n API requests, clients at a time: request(i) gives the
// i-th's method, URL and body (nil for none). Any answer but 200 fails it.
func (b *bench) calls(ctx context.Context, n int, request func(i int) (method, url string, body any)) error {
	c := apiClient(clients)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				method, url, body := request(i)
				status, answer, err := do(ctx, c, b.caller.credential, method, url, body)
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("%s %s: %d %s", method, url, status, answer)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when none
}

// putBody is a PUT body like wrk/put.lua's: tokens of realistic length
// (GitLab's glpat- and glrt- tokens are about 26 characters), the access
// token valid for eight hours, so every GET finds a token to serve without
// a refresh, the refresh token for six months (GitHub's lifetimes). Both
// expiries are given because pgbench cannot pass a NULL argument: with
// them, every argument of the upsert has a value in both runs.
func putBody(user, gen string) map[string]any {
	return map[string]any{
		"access_token":             fmt.Sprintf("glpat-%s-%s-0123456789abcdef", gen, user),
		"refresh_token":            fmt.Sprintf("glrt-%s-%s-0123456789abcdef", gen, user),
		"expires_in":               28800,
		"refresh_token_expires_in": 15897600,
	}
}

// poolSize is the database pool size the instance logged in its start-up
// line ("starting tokenstore"), for the report.
func poolSize(logPath string) string {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return "pool size unknown"
	}
	for line := range strings.Lines(string(b)) {
		var entry struct {
			Msg      string         `json:"msg"`
			Database map[string]any `json:"database"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil || entry.Msg != "starting tokenstore" {
			continue
		}
		for k, v := range entry.Database {
			if strings.Contains(k, "conns") || strings.Contains(k, "pool") {
				return fmt.Sprintf("database pool %v", v)
			}
		}
	}
	return "pool size unknown"
}
