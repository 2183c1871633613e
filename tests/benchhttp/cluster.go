package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// The database is a throwaway PostgreSQL 15 cluster made with initdb in the
// run's directory and reached over 127.0.0.1, not the Docker image the
// tests use: a container's published port goes through docker-proxy,
// whose CPU time belongs to neither side and would blur the split, while
// a local cluster's processes are this machine's, so /proc gives their CPU
// time; nothing is pulled or built either. Settings are PostgreSQL's
// defaults (fsync and synchronous_commit on, shared_buffers 128MB),
// except: pg_stat_statements is loaded, so the run can show which
// statements each side sent per request (both sides pay its small cost),
// max_connections is 200 for the refresh storm's instances, and
// connections are trusted (see startCluster).

const (
	superuser = "bench"      // initdb's superuser: makes roles and databases, reads statistics
	appRole   = "tokenstore" // what tokenstore and pgbench connect as
)

type cluster struct {
	bin      string // PostgreSQL's bin directory
	dir      string // holds data/ and the socket
	port     int
	password string // of both roles; the cluster lives for one run on loopback
	cmd      *exec.Cmd
	exited   chan struct{}
	logPath  string
	admin    *pgx.Conn // superuser, database postgres
}

// asPostgres runs cmd as the postgres user when this program runs as
// root, which initdb and postgres refuse.
func asPostgres(cmd *exec.Cmd) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root, PostgreSQL must run as another user, and user postgres is missing: %w (run as a non-root user, or install postgresql-15, which creates it)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return nil
}

// chownPostgres gives path to the postgres user when running as root.
func chownPostgres(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// startCluster makes and starts a cluster under dir.
func startCluster(ctx context.Context, bin, dir string) (*cluster, error) {
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	c := &cluster{bin: bin, dir: filepath.Join(dir, "postgres"), password: hex.EncodeToString(pw), exited: make(chan struct{})}
	if err := os.Mkdir(c.dir, 0o700); err != nil {
		return nil, err
	}
	if err := chownPostgres(c.dir); err != nil {
		return nil, err
	}
	pwfile := filepath.Join(c.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := chownPostgres(pwfile); err != nil {
		return nil, err
	}
	data := filepath.Join(c.dir, "data")
	// --no-sync skips only initdb's own final fsync of the new files; the
	// server itself runs with fsync on.
	// trust: a connection costs no password hashing (SCRAM's 4,096
	// iterations on both ends), which would otherwise land in pgbench's
	// measurements (it connects as it starts) and not in wrk's (tokenstore's
	// pool connected before). The cluster listens on 127.0.0.1 only, holds
	// made-up tokens, and lives for one run.
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", superuser,
		"--auth=trust", "--pwfile="+pwfile, "-E", "UTF8", "--no-locale", "--no-sync")
	if err := asPostgres(initdb); err != nil {
		return nil, err
	}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c.port = port
	c.logPath = filepath.Join(c.dir, "postgres.log")
	logf, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+c.dir,
		"-c", "shared_preload_libraries=pg_stat_statements",
		"-c", "max_connections=200")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := asPostgres(c.cmd); err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	go func() { _ = c.cmd.Wait(); logf.Close(); close(c.exited) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.url(superuser, "postgres"))
		if err == nil {
			c.admin = conn
			break
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("postgres exited at start-up; its log: %s", tail(c.logPath, 20))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("postgres did not accept connections within 30s: %w; its log: %s", err, tail(c.logPath, 20))
		}
	}
	for _, sql := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", appRole, c.password),
		"CREATE EXTENSION pg_stat_statements",
	} {
		if _, err := c.admin.Exec(ctx, sql); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s: %w", strings.Fields(sql)[0]+" "+strings.Fields(sql)[1], err)
		}
	}
	return c, nil
}

// createDatabase makes database name owned by appRole, copied from
// template when given.
func (c *cluster) createDatabase(ctx context.Context, name, template string) error {
	sql := fmt.Sprintf("CREATE DATABASE %s OWNER %s", pgx.Identifier{name}.Sanitize(), appRole)
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	_, err := c.admin.Exec(ctx, sql)
	return err
}

// url is a connection URL for role on database.
func (c *cluster) url(role, database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(role, c.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// checkpoint writes every dirty buffer now, so that no timed checkpoint
// falls inside the measurement that follows (checkpoint_timeout restarts).
func (c *cluster) checkpoint(ctx context.Context) error {
	_, err := c.admin.Exec(ctx, "CHECKPOINT")
	return err
}

// stop shuts the cluster down (fast shutdown: SIGINT) and waits.
func (c *cluster) stop() {
	if c.admin != nil {
		_ = c.admin.Close(context.Background())
	}
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the last n lines of the file at path, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n  " + strings.Join(lines, "\n  ")
}

// statementCounts are the calls of each statement appRole made since the
// last resetStatements, by name: the sqlc name ("-- name: X" as
// tokenstore sends it, "/* sqlc X */" in the pgbench scripts), else the
// statement's first word in upper case (BEGIN, COMMIT); and, as batchRows,
// the rows batchStatement wrote.
func (c *cluster) statementCounts(ctx context.Context, database string) (map[string]int64, error) {
	rows, err := c.admin.Query(ctx, `
		SELECT s.query, s.calls, s.rows FROM pg_stat_statements AS s
		JOIN pg_database AS d ON d.oid = s.dbid
		JOIN pg_roles AS r ON r.oid = s.userid
		WHERE d.datname = $1 AND r.rolname = $2`, database, appRole)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var q string
		var calls, n int64
		if err := rows.Scan(&q, &calls, &n); err != nil {
			return nil, err
		}
		name := statementName(q)
		out[name] += calls
		if name == batchStatement {
			out[batchRows] += n
		}
	}
	return out, rows.Err()
}

func (c *cluster) resetStatements(ctx context.Context) error {
	_, err := c.admin.Exec(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// statementName names a statement of pg_stat_statements (see
// statementCounts).
func statementName(q string) string {
	q = strings.TrimSpace(q)
	for _, prefix := range []string{"-- name: ", "/* sqlc "} {
		if rest, ok := strings.CutPrefix(q, prefix); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	f := strings.Fields(q)
	if len(f) == 0 {
		return "(empty)"
	}
	return strings.ToUpper(strings.TrimSuffix(f[0], ";"))
}
