package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
}

// MaxPoolConns bounds Config.MaxConns: PostgreSQL's own connection limit
// is far lower in practice, so a larger number is a typo.
const MaxPoolConns = 1000

// Validate checks the configuration a pool needs: a URL pgx accepts (the
// error never contains it) and a pool size from 0 to MaxPoolConns.
func (c Config) Validate() error {
	if c.MaxConns < 0 || c.MaxConns > MaxPoolConns {
		return fmt.Errorf("TOKENSTORE_DATABASE_MAX_CONNS (database.max_conns) is %d: give a number from 1 to %d", c.MaxConns, MaxPoolConns)
	}
	_, err := ParsePoolConfig(c)
	return err
}

// LogValue keeps the URL's password out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", RedactURL(c.URL)),
		slog.Int("max_conns", int(c.MaxConns)),
		slog.Duration("lock_timeout", c.LockTimeout),
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

// Ping checks the database answers, naming the server (never the URL).
func Ping(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pool.Ping(ctx); err != nil {
		cc := pool.Config().ConnConfig
		return fmt.Errorf("connect to PostgreSQL at %s:%d database %q: %w", cc.Host, cc.Port, cc.Database, err)
	}
	return nil
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
		return errors.New("database unreachable")
	}
	m, err := NewMigrator(h.pool, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	current, latest, err := m.Versions(ctx)
	if err != nil {
		return errors.New("cannot read the schema version")
	}
	// A newer schema is fine: during a rolling deploy the first new instance
	// (or a migrate step) moves it ahead of the old instances, which must
	// stay in rotation. Migrations are additive for that reason.
	if current < latest {
		return fmt.Errorf("schema at version %d, this build needs %d: run `tokenstore migrate up`", current, latest)
	}
	return nil
}
