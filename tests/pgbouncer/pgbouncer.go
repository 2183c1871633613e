// Package pgbouncer starts a real PgBouncer in transaction mode in front of
// the test PostgreSQL, as a child process of the test, so a suite can run
// tokenstore through the pooler many deployments put before PostgreSQL.
//
// The binary is the one Debian ships (package pgbouncer, 1.18: no
// prepared statement support, so pgx's default query mode cannot work
// through it). .ci/run installs it; a machine without it fails the test
// with the command that installs it, never skips it.
package pgbouncer

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenstore/tokenstore/tests/testdb"
)

// Binary is where Debian's package installs PgBouncer.
const Binary = "/usr/sbin/pgbouncer"

// IgnoredStartupParameters are the startup parameters PgBouncer 1.18 is
// told to accept and drop: tokenstore's pool sends statement_timeout and
// idle_in_transaction_session_timeout as startup parameters, which
// PgBouncer otherwise refuses ("unsupported startup parameter"). Dropped,
// they never reach the server: the README's Poolers section says where to
// set them instead, and tokenstore warns at start-up while the server's
// values differ (postgres.CheckServerTimeouts).
var IgnoredStartupParameters = []string{"statement_timeout", "idle_in_transaction_session_timeout"}

// Bouncer is one running PgBouncer.
type Bouncer struct {
	// Addr is its loopback listen address, host:port.
	Addr string

	admin string // URL of its admin console
	mu    sync.Mutex
	log   bytes.Buffer
}

// Admin runs command on PgBouncer's admin console (such as RECONNECT:
// every server connection is closed when next released, so clients get
// fresh ones).
func (b *Bouncer) Admin(t testing.TB, command string) {
	t.Helper()
	if err := ping(b.admin, command); err != nil {
		t.Fatalf("pgbouncer admin %s: %v", command, err)
	}
}

// Start runs PgBouncer with pool_mode=transaction in front of the server
// of direct (a PostgreSQL URL as testdb gives it: user, password, host,
// port), for every database on it, and stops it when t ends. Clients
// authenticate with direct's user and password (SCRAM); PgBouncer logs in
// to the server with the same.
func Start(t testing.TB, direct string) *Bouncer {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("PgBouncer is not installed (%v): apt-get install -y pgbouncer (.ci/run does)", err)
	}
	cc, err := pgconn.ParseConfig(direct)
	if err != nil {
		t.Fatalf("pgbouncer: %v", err)
	}
	// PgBouncer refuses to run as root; started as root it changes to the
	// user of its ini, so its files must be readable by that user.
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	runAs := ""
	if os.Geteuid() == 0 {
		runAs = "postgres"
		if _, err := user.Lookup(runAs); err != nil {
			t.Fatalf("pgbouncer: running as root needs a user to change to: %v", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	write := func(name, text string) {
		// 0644: PgBouncer reads it after changing user; the password is
		// the throwaway test server's.
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("userlist.txt", quote(cc.User)+" "+quote(cc.Password)+"\n")

	// A free port can be taken before PgBouncer binds it (PgBouncer then
	// exits): try another.
	b := &Bouncer{}
	for attempt := 1; ; attempt++ {
		port, err := testdb.FreeLoopbackPort()
		if err != nil {
			t.Fatal(err)
		}
		b.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		write("pgbouncer.ini", fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = %s
logfile =
pidfile =
log_connections = 0
log_disconnections = 0
admin_users = %s
%s`, cc.Host, cc.Port, port, filepath.Join(dir, "userlist.txt"), strings.Join(IgnoredStartupParameters, ","),
			cc.User, map[bool]string{true: "user = " + runAs + "\n", false: ""}[runAs != ""]))
		err = b.run(t, filepath.Join(dir, "pgbouncer.ini"), direct)
		if err == nil {
			return b
		}
		if attempt == 3 {
			t.Fatalf("pgbouncer: %v\n%s", err, b.Log())
		}
	}
}

// run starts PgBouncer on ini and waits until a client can run a statement
// through it, or returns why not. PgBouncer is stopped when t ends.
func (b *Bouncer) run(t testing.TB, ini, direct string) error {
	cmd := exec.Command(Binary, ini)
	cmd.Stdout, cmd.Stderr = b.writer(), b.writer()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt) // SIGINT: PgBouncer's immediate shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	through := b.DSN(t, direct)
	admin, _ := url.Parse(through)
	admin.Path = "/pgbouncer"
	b.admin = admin.String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(through, "SELECT 1")
		// Ready only if it is this process that answered: one that exited
		// (its port taken) must not pass for the one that took it.
		select {
		case exitErr := <-exited:
			exited <- exitErr // for the cleanup
			return fmt.Errorf("exited: %v", exitErr)
		default:
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("at %s not ready: %w", b.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DSN returns direct with its host and port replaced by PgBouncer's: the
// same user, password and database, through the pooler.
func (b *Bouncer) DSN(t testing.TB, direct string) string {
	t.Helper()
	u, err := url.Parse(direct)
	if err != nil || u.Scheme == "" {
		t.Fatalf("pgbouncer: %q is not a URL", direct)
	}
	u.Host = b.Addr
	return u.String()
}

// Log is what PgBouncer printed so far.
func (b *Bouncer) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

type lockedWriter struct{ b *Bouncer }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.log.Write(p)
}

func (b *Bouncer) writer() lockedWriter { return lockedWriter{b} }

// ping runs sql on a connection of its own with the simple protocol (the
// admin console knows no other).
func ping(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
