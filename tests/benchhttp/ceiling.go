package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// The HTTP ceiling: this program, started again with -serve-noop, is a Go
// net/http server that answers every request with a fixed body of the
// size of tokenstore's GET answer and does nothing else (no
// authentication, no cache, no decryption, no log). wrk runs the same GET
// script against it as against tokenstore, in the same rounds: its ops/s
// is the most any Go HTTP server can answer on this machine with this load
// generator, and its ratio to pgbench's the most a GET ratio can be.

// noopBody is about as long as tokenstore's answer to a GET of an access
// token (the token, its expiry, the provider and user echoed).
var noopBody = []byte(`{"user":"bench-user-00001","provider":"gitlab","access_token":"glpat-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH-0123456789","expires_at":"2026-11-30T15:00:00Z"}` + "\n")

// serveNoop serves the ceiling on addr until the process is killed.
func serveNoop(addr string) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(noopBody)
	})
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// startNoop starts the ceiling server as a process of its own (so its CPU
// is read apart from wrk's and this program's), and waits until it answers.
func (b *bench) startNoop(ctx context.Context) (*server, error) {
	return b.startSelf(ctx, "noop-http", "-serve-noop", "/")
}

// startSelf starts this program again with flag (-serve-noop,
// -serve-provider) and a free loopback address, as server name, and waits
// until it answers GET readyPath.
func (b *bench) startSelf(ctx context.Context, name, flag, readyPath string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s := &server{name: name, url: "http://127.0.0.1:" + strconv.Itoa(port),
		logPath: filepath.Join(b.dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	if err := b.launch(ctx, s, exec.Command(self, flag, "127.0.0.1:"+strconv.Itoa(port)), logf, readyPath, 30*time.Second); err != nil {
		return nil, err
	}
	return s, nil
}
