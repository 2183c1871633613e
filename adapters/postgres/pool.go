package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/tokenstore/tokenstore/domain"
)

// Config is the database configuration.
type Config struct {
	// URL is a PostgreSQL connection URL or keyword/value string. It may hold
	// a password: print it only through RedactURL.
	URL string
	// MaxConns caps the pool, up to MaxPoolConns. Zero means pgxpool's
	// default (max(4, CPUs)).
	MaxConns int32
	// LockTimeout: see Options.
	LockTimeout time.Duration
	// Timeout bounds every database call: the server's statement_timeout
	// and idle_in_transaction_session_timeout, the client's deadline for
	// each repository call (Options.Timeout), and connecting, which bounds
	// start-up. Zero means DefaultTimeout.
	Timeout time.Duration
}

// Options are the repository options this configuration implies.
func (c Config) Options() Options {
	return Options{LockTimeout: c.LockTimeout, Timeout: c.Timeout}
}

func (c Config) timeout() time.Duration { return cmp.Or(max(c.Timeout, 0), DefaultTimeout) }

// MaxPoolConns bounds Config.MaxConns: PostgreSQL's own connection limit
// is far lower in practice, so a larger number is a typo.
const MaxPoolConns = 1000

// Validate checks the configuration a pool needs: a URL pgx accepts (the
// error never contains it) and a pool size from 0 to MaxPoolConns.
func (c Config) Validate() error {
	if c.MaxConns < 0 || c.MaxConns > MaxPoolConns {
		return fmt.Errorf("TOKENSTORE_DATABASE_MAX_CONNS (database.max_conns) is %d: give a number from 1 to %d", c.MaxConns, MaxPoolConns)
	}
	if lt := cmp.Or(c.LockTimeout, DefaultLockTimeout); lt >= c.timeout() {
		return fmt.Errorf("TOKENSTORE_DATABASE_LOCK_TIMEOUT (database.lock_timeout) is %s but TOKENSTORE_DATABASE_TIMEOUT (database.timeout) is %s: "+
			"a write waiting for a row would be cut off before it could answer busy; keep the lock timeout shorter", lt, c.timeout())
	}
	_, err := ParsePoolConfig(c)
	return err
}

// LogValue keeps the URL's password out of logs. It states what the pool
// will use: max_conns is the effective pool size (database.max_conns, else
// the URL's pool_max_conns, else pgxpool's max(4, CPUs)), and durations are
// Go duration strings ("5s"), not nanoseconds.
func (c Config) LogValue() slog.Value {
	maxConns := c.MaxConns
	if pc, err := ParsePoolConfig(c); err == nil {
		maxConns = pc.MaxConns
	}
	return slog.GroupValue(
		slog.String("url", RedactURL(c.URL)),
		slog.Int("max_conns", int(maxConns)),
		slog.String("lock_timeout", cmp.Or(c.LockTimeout, DefaultLockTimeout).String()),
		slog.String("timeout", c.timeout().String()),
	)
}

// String, GoString and MarshalJSON keep the password out of every other
// rendering of a Config.
func (c Config) String() string { return "postgres.Config{url: " + RedactURL(c.URL) + "}" }

// GoString implements fmt.GoStringer.
func (c Config) GoString() string { return c.String() }

// MarshalJSON implements json.Marshaler.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"url": RedactURL(c.URL), "max_conns": c.MaxConns, "lock_timeout": c.LockTimeout.String(),
	})
}

// RedactURL describes where a connection string points (user, host, port,
// database) without echoing it: it is rebuilt from the parsed settings, so
// no spelling of a password (in the user info, after a '#' or '?', or as a
// password or sslpassword parameter) can survive. Unparseable input is not
// shown at all.
func RedactURL(raw string) string {
	cc, err := pgconn.ParseConfig(raw)
	if err != nil {
		return "(not shown: not a valid PostgreSQL connection string)"
	}
	u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), Path: "/" + cc.Database}
	if cc.User != "" {
		if cc.Password != "" {
			u.User = url.UserPassword(cc.User, "xxxxx")
		} else {
			u.User = url.User(cc.User)
		}
	}
	return u.String()
}

// ParsePoolConfig validates cfg into a pool configuration. Its errors never
// contain the URL.
func ParsePoolConfig(cfg Config) (*pgxpool.Config, error) {
	if cfg.URL == "" {
		return nil, errors.New("no database URL: set TOKENSTORE_DATABASE_URL (postgres://user:password@host:5432/dbname)")
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, errors.New("TOKENSTORE_DATABASE_URL is not a valid PostgreSQL URL (expected postgres://user:password@host:5432/dbname)")
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	// Every call is bounded on both sides: the server cancels a statement
	// (and ends a transaction left idle) after the timeout, and the
	// repository's context deadline covers a server that does not answer at
	// all. A URL that sets them itself wins.
	ms := strconv.FormatInt(max(cfg.timeout().Milliseconds(), 1), 10)
	for _, p := range []string{"statement_timeout", "idle_in_transaction_session_timeout"} {
		if _, set := pc.ConnConfig.RuntimeParams[p]; !set {
			pc.ConnConfig.RuntimeParams[p] = ms
		}
	}
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > cfg.timeout() {
		pc.ConnConfig.ConnectTimeout = cfg.timeout()
	}
	return pc, nil
}

// NewPool creates the connection pool. It does not connect: Ping does, from
// the application's start hook, so a wrong URL fails start-up clearly.
func NewPool(cfg Config) (*pgxpool.Pool, error) {
	pc, err := ParsePoolConfig(cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	return pool, nil
}

// Ping checks the database answers within the configured timeout. Its error
// is one line naming the setting, the server (never the URL or password) and
// what PostgreSQL said; it matches domain.ErrStorageUnavailable when the
// database was unreachable rather than refusing.
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	cc := pool.Config().ConnConfig
	timeout := cmp.Or(cc.ConnectTimeout, DefaultTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		return &ConnectError{
			Server: fmt.Sprintf("%s database %q", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cc.Database),
			Said:   whatPostgresSaid(ctx, err, timeout),
			err:    interpretError(err, noEffect),
		}
	}
	return nil
}

// ConnectError is a failure to reach the configured database.
type ConnectError struct {
	Server string // host:port and database name
	Said   string // what PostgreSQL (or the network) answered
	err    error
}

func (e *ConnectError) Error() string {
	return "cannot use the PostgreSQL database at " + e.Server +
		" (TOKENSTORE_DATABASE_URL / database.url): " + e.Said
}

// Unwrap returns the interpreted driver error.
func (e *ConnectError) Unwrap() error { return e.err }

// whatPostgresSaid is the innermost useful part of a connection error: the
// server's own message, the network's refusal, or how long it stayed silent.
// pgconn's outer layers repeat the user and database, never the password.
func whatPostgresSaid(ctx context.Context, err error, timeout time.Duration) string {
	var pgErr *pgconn.PgError
	var errno syscall.Errno
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &pgErr):
		return fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err), ctx.Err() != nil:
		return fmt.Sprintf("no answer within %s (the server is down, frozen or unreachable)", timeout)
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &dnsErr):
		return dnsErr.Error()
	}
	return err.Error()
}

// PingOrClose checks the database answers, and closes pool when it does
// not: the caller is about to give up on it, and an open pool would keep
// its health-check goroutine running (fx, for one, runs no stop hook for a
// start hook that failed).
func PingOrClose(ctx context.Context, pool *pgxpool.Pool) error {
	if err := Ping(ctx, pool); err != nil {
		pool.Close()
		return err
	}
	return nil
}

// Health reports whether the database is reachable and its schema is at the
// latest migration this build knows (the readiness probe).
type Health struct {
	pool *pgxpool.Pool
}

// NewHealth returns the readiness check for pool.
func NewHealth(pool *pgxpool.Pool) *Health { return &Health{pool: pool} }

// Check implements the readiness check.
func (h *Health) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := Ping(ctx, h.pool); err != nil {
		var ce *ConnectError
		if errors.As(err, &ce) {
			return fmt.Errorf("database unreachable: %s: %w", ce.Said, domain.ErrStorageUnavailable)
		}
		return fmt.Errorf("database unreachable: %w", domain.ErrStorageUnavailable)
	}
	m, err := newMigrator(stdlib.OpenDBFromPool(h.pool), nil)
	if err != nil {
		return err
	}
	defer m.Close()
	current, latest, err := m.Versions(ctx)
	if err != nil {
		return fmt.Errorf("cannot read the schema version: %w", err)
	}
	// A newer schema is fine: during a rolling deploy the first new instance
	// (or a migrate step) moves it ahead of the old instances, which must
	// stay in rotation. Migrations are additive for that reason.
	if current < latest {
		return fmt.Errorf("schema at version %d, this build needs %d: run `tokenstore migrate up`", current, latest)
	}
	return nil
}
