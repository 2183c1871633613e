package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tokenstore/tokenstore/sql/migrations"
)

// Migrator applies tokenstore's schema migrations with goose's Provider API.
// A Postgres session (advisory) lock serialises migrators, so several
// instances starting at once apply each migration exactly once.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// MigrationState is one migration's status.
type MigrationState struct {
	Version int64
	Name    string
	Applied bool
}

// NewMigrator returns a Migrator on a session connection to cfg's database:
// cfg.DirectURL, or cfg.URL when that is empty. goose holds a session
// (advisory) lock across the migrations' statements, which a pooler in
// transaction mode would hand to another client between them, so the
// migrator never goes through cfg.URL's pooler when a direct URL is given.
// Its connections have cfg's settings but no statement timeout, since a
// migration may rewrite a large table. Close it when done. Errors name the
// setting, never the URL; a database that does not answer within cfg's
// timeout is a *ConnectError.
func NewMigrator(ctx context.Context, cfg Config, logger *slog.Logger) (*Migrator, error) {
	cc, err := parseSessionConfig(cfg)
	if err != nil {
		return nil, err
	}
	cc.RuntimeParams["statement_timeout"] = "0"
	sqlDB := stdlib.OpenDB(*cc)
	_, setting := cfg.sessionURL()
	if err := ping(ctx, cc, settingNames[setting], sqlDB.PingContext); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	return newMigrator(sqlDB, logger)
}

// SchemaVersions returns the database's schema version and the latest
// version this build knows (equal: the schema is current). It reads
// goose's version table through pool and takes no lock, so it is safe
// through a pooler in transaction mode.
func SchemaVersions(ctx context.Context, pool *pgxpool.Pool) (current, latest int64, err error) {
	m, err := newMigrator(stdlib.OpenDBFromPool(pool), nil)
	if err != nil {
		return 0, 0, err
	}
	defer m.Close()
	return m.Versions(ctx)
}

func newMigrator(sqlDB *sql.DB, logger *slog.Logger) (*Migrator, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("migrations: session locker: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker)}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS, opts...)
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &Migrator{db: sqlDB, provider: p}, nil
}

// MigrateUp applies every pending migration through NewMigrator(cfg) and
// returns how many it applied. Instances starting at once serialise on the
// migrator's lock.
func MigrateUp(ctx context.Context, cfg Config) (int, error) {
	m, err := NewMigrator(ctx, cfg, nil)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	return m.Up(ctx)
}

// Close releases the migrator's database handle (not the pool).
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration and returns how many it applied.
func (m *Migrator) Up(ctx context.Context) (int, error) {
	res, err := m.provider.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("migrate up: %w", interpretError(err, mayHaveApplied))
	}
	return len(res), nil
}

// Down rolls back the latest applied migration. It reports false when none
// was applied.
func (m *Migrator) Down(ctx context.Context) (bool, error) {
	current, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return false, fmt.Errorf("migrate down: %w", interpretError(err, noEffect))
	}
	if current == 0 {
		return false, nil
	}
	if _, err := m.provider.Down(ctx); err != nil {
		return false, fmt.Errorf("migrate down: %w", interpretError(err, mayHaveApplied))
	}
	return true, nil
}

// DownTo rolls back to version (0 removes every migration).
func (m *Migrator) DownTo(ctx context.Context, version int64) error {
	if _, err := m.provider.DownTo(ctx, version); err != nil {
		return fmt.Errorf("migrate down to %d: %w", version, interpretError(err, mayHaveApplied))
	}
	return nil
}

// Status lists every known migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]MigrationState, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", interpretError(err, noEffect))
	}
	out := make([]MigrationState, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationState{
			Version: s.Source.Version,
			Name:    s.Source.Path,
			Applied: s.State == goose.StateApplied,
		})
	}
	return out, nil
}

// Versions returns the database's schema version and the latest version this
// build knows. Equal values mean the schema is current.
func (m *Migrator) Versions(ctx context.Context) (current, latest int64, err error) {
	current, latest, err = m.provider.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", interpretError(err, noEffect))
	}
	return current, latest, nil
}
