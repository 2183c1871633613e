package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Config is the database configuration.
type Config struct {
	// URL is a PostgreSQL connection URL or keyword/value string. It may hold
	// a password: print it only through RedactURL.
	URL string
	// MaxConns caps the pool. Zero means pgxpool's default (max(4, CPUs)).
	MaxConns int32
	// LockTimeout: see Options.
	LockTimeout time.Duration
}

// LogValue keeps the URL's password out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", RedactURL(c.URL)),
		slog.Int("max_conns", int(c.MaxConns)),
		slog.Duration("lock_timeout", c.LockTimeout),
	)
}

// RedactURL returns the URL with any password replaced by "xxxxx". Input it
// cannot parse as a URL is not echoed at all.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(not shown: not a postgres:// URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
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
	if current != latest {
		return fmt.Errorf("schema at version %d, this build needs %d: run `tokenstore migrate up`", current, latest)
	}
	return nil
}
