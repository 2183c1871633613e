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
	"strings"
	"syscall"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenstore/tokenstore/domain"
)

// Config is the database configuration.
type Config struct {
	// URL is a PostgreSQL connection URL or keyword/value string. It may hold
	// a password: print it only through RedactURL.
	URL string
	// MaxConns caps the pool, up to MaxPoolConns. Zero means the URL's
	// pool_max_conns, else DefaultMaxConns.
	MaxConns int32
	// LockTimeout: see Options.
	LockTimeout time.Duration
	// Timeout bounds every database call: the server's statement_timeout
	// and idle_in_transaction_session_timeout, the client's deadline for
	// each repository call (Options.Timeout), and connecting, which bounds
	// start-up. Zero means DefaultTimeout.
	Timeout time.Duration
	// QueryExecMode is how the pool sends statements: one of QueryExecModes,
	// pgx's names for its QueryExecMode values. Empty means the URL's
	// default_query_exec_mode, else cache_statement (named prepared
	// statements, cached per connection: the fastest, and wrong behind a
	// pooler in transaction mode, where consecutive statements reach
	// different server connections).
	QueryExecMode string
	// DirectURL is a session connection to the same database, for what
	// needs one session from start to end: migrations, which hold goose's
	// advisory lock (pg_advisory_lock) across statements. Set it when URL
	// goes through a pooler in transaction mode (PgBouncer's
	// pool_mode=transaction); empty means URL. It may hold a password:
	// print it only through RedactURL.
	DirectURL string
	// Events: see Options (the events.* settings).
	Events domain.EventPolicy
}

// QueryExecModes are the values of Config.QueryExecMode, pgx's names
// (pgx.ParseConfig's default_query_exec_mode), fastest first.
var QueryExecModes = []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}

// queryExecModes maps QueryExecModes to pgx's values.
var queryExecModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

// sessionURL is the URL of a session connection: DirectURL, else URL.
// The setting is named as its variable.
func (c Config) sessionURL() (url, setting string) {
	if c.DirectURL != "" {
		return c.DirectURL, "TOKENSTORE_DATABASE_DIRECT_URL"
	}
	return c.URL, "TOKENSTORE_DATABASE_URL"
}

// settingNames names a setting by its variable and its file key.
var settingNames = map[string]string{
	"TOKENSTORE_DATABASE_URL":        "TOKENSTORE_DATABASE_URL / database.url",
	"TOKENSTORE_DATABASE_DIRECT_URL": "TOKENSTORE_DATABASE_DIRECT_URL / database.direct_url",
}

// Options are the repository options this configuration implies.
func (c Config) Options() Options {
	return Options{LockTimeout: c.LockTimeout, Timeout: c.Timeout, Events: c.Events}
}

func (c Config) timeout() time.Duration { return cmp.Or(max(c.Timeout, 0), DefaultTimeout) }

// DefaultMaxConns is the pool size when neither database.max_conns nor
// the URL's pool_max_conns sets one. pgxpool's own default, max(4, CPUs),
// sizes the pool by this host's CPUs, but a request holds its connection
// while PostgreSQL works and a write while the commit waits for its WAL
// flush: measured with task bench:http (32 clients, one 2-CPU machine),
// PUT throughput against pgbench's same transaction went from 0.68 with 4
// connections to 0.79 with 16, GET unchanged. 16 also leaves room for
// several instances under PostgreSQL's default max_connections of 100.
const DefaultMaxConns = 16

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
	if _, err := ParsePoolConfig(c); err != nil {
		return err
	}
	_, err := parseSessionConfig(c)
	return err
}

// LogValue keeps the URL's password out of logs. It states what the pool
// will use: max_conns is the effective pool size (database.max_conns, else
// the URL's pool_max_conns, else DefaultMaxConns), and durations are
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
		slog.String("query_exec_mode", cmp.Or(c.QueryExecMode, "(default)")),
		slog.String("direct_url", cmp.Or(RedactURL(c.DirectURL), "(database.url)")),
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
		"query_exec_mode": c.QueryExecMode, "direct_url": RedactURL(c.DirectURL),
	})
}

// RedactURL describes where a connection string points (user, host, port,
// database) without echoing it: it is rebuilt from the parsed settings, so
// no spelling of a password (in the user info, after a '#' or '?', or as a
// password or sslpassword parameter) can survive. Unparseable input is not
// shown at all.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
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
	switch {
	case cfg.MaxConns > 0:
		pc.MaxConns = cfg.MaxConns
	case !strings.Contains(cfg.URL, "pool_max_conns"):
		pc.MaxConns = DefaultMaxConns
	}
	if cfg.QueryExecMode != "" {
		mode, ok := queryExecModes[cfg.QueryExecMode]
		if !ok {
			return nil, fmt.Errorf("TOKENSTORE_DATABASE_QUERY_EXEC_MODE (database.query_exec_mode) is %q: give one of %s",
				cfg.QueryExecMode, strings.Join(QueryExecModes, ", "))
		}
		// One place says it: a URL that also sets default_query_exec_mode
		// would leave the reader of either unsure which applies.
		if cc, err := pgconn.ParseConfig(cfg.URL); err == nil && cc.RuntimeParams["default_query_exec_mode"] != "" {
			return nil, errors.New("TOKENSTORE_DATABASE_QUERY_EXEC_MODE (database.query_exec_mode) is set and TOKENSTORE_DATABASE_URL sets default_query_exec_mode too: give it in one place")
		}
		pc.ConnConfig.DefaultQueryExecMode = mode
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

// parseSessionConfig is the configuration of a session connection
// (Config.DirectURL, else Config.URL) with cfg's timeouts. Its errors name
// the setting, never the URL.
func parseSessionConfig(cfg Config) (*pgx.ConnConfig, error) {
	url, setting := cfg.sessionURL()
	direct := cfg
	direct.URL, direct.QueryExecMode = url, "" // a session connection needs no pooler's workaround
	pc, err := ParsePoolConfig(direct)
	if err != nil {
		return nil, errors.New(strings.Replace(err.Error(), "TOKENSTORE_DATABASE_URL", setting, 1))
	}
	return pc.ConnConfig, nil
}

// NewPool creates the connection pool. It does not connect: Ping does, from
// the application's start hook, so a wrong URL fails start-up clearly.
func NewPool(cfg Config) (*pgxpool.Pool, error) {
	return NewTracedPool(cfg, nil)
}

// NewTracedPool is NewPool with a span per query, batch and connection
// acquire made by tp (otelpgx); nil tp makes none. A span carries the
// statement's text (sqlc's SQL with $n placeholders), never its
// arguments, which hold ciphertexts and user ids.
func NewTracedPool(cfg Config, tp trace.TracerProvider) (*pgxpool.Pool, error) {
	pc, err := ParsePoolConfig(cfg)
	if err != nil {
		return nil, err
	}
	if tp != nil {
		pc.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTracerProvider(tp))
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
	return ping(ctx, pool.Config().ConnConfig, "TOKENSTORE_DATABASE_URL / database.url", pool.Ping)
}

// ping runs fn within cc's connect timeout and explains its failure as a
// *ConnectError naming setting.
func ping(ctx context.Context, cc *pgx.ConnConfig, setting string, fn func(context.Context) error) error {
	timeout := cmp.Or(cc.ConnectTimeout, DefaultTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		return &ConnectError{
			Server:  fmt.Sprintf("%s database %q", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cc.Database),
			Said:    whatPostgresSaid(ctx, err, timeout),
			Setting: setting,
			err:     interpretError(err, noEffect),
		}
	}
	return nil
}

// serverTimeouts are the server settings the pool asks for as startup
// parameters (ParsePoolConfig).
var serverTimeouts = []string{"statement_timeout", "idle_in_transaction_session_timeout"}

// CheckServerTimeouts compares the server's statement_timeout and
// idle_in_transaction_session_timeout (pg_settings, in milliseconds) with
// what pool asked for in its startup parameters. It returns a
// *TimeoutsNotAppliedError naming each that differs, nil when all match,
// or the error that kept it from reading them. A pooler that accepts and
// drops startup parameters (PgBouncer's ignore_startup_parameters) leaves
// the server's own values, often none: then the server no longer cancels a
// runaway statement, and only the client's deadline bounds a call.
func CheckServerTimeouts(ctx context.Context, pool *pgxpool.Pool) error {
	asked := pool.Config().ConnConfig.RuntimeParams
	rows, err := pool.Query(ctx, "SELECT name, setting FROM pg_settings WHERE name = ANY($1::text[])", serverTimeouts)
	if err != nil {
		return fmt.Errorf("read the server's timeouts: %w", interpretError(err, noEffect))
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv [2]string, err error) {
		return kv, r.Scan(&kv[0], &kv[1])
	})
	if err != nil {
		return fmt.Errorf("read the server's timeouts: %w", interpretError(err, noEffect))
	}
	var e TimeoutsNotAppliedError
	for _, kv := range got {
		if want, ok := asked[kv[0]]; ok && want != kv[1] {
			e.Wrong = append(e.Wrong, fmt.Sprintf("%s is %s ms, not %s ms", kv[0], kv[1], want))
			e.Fix = append(e.Fix, fmt.Sprintf("ALTER ROLE CURRENT_USER SET %s = %s;", kv[0], want))
		}
	}
	if e.Wrong == nil {
		return nil
	}
	return &e
}

// TimeoutsNotAppliedError says which of the timeouts tokenstore asked for
// the server does not apply, and the statements that set them.
type TimeoutsNotAppliedError struct {
	Wrong []string // such as "statement_timeout is 0 ms, not 6000 ms"
	Fix   []string // ALTER ROLE statements, one per setting
}

func (e *TimeoutsNotAppliedError) Error() string {
	return fmt.Sprintf("the server's %s: a connection pooler dropped the startup parameters tokenstore sends for database.timeout; "+
		"set them where the server applies them (`%s` as tokenstore's role, then reconnect the pooler; README: Poolers); "+
		"until then only tokenstore's own deadline bounds a call", strings.Join(e.Wrong, " and "), strings.Join(e.Fix, " "))
}

// ConnectError is a failure to reach the configured database.
type ConnectError struct {
	Server  string // host:port and database name
	Said    string // what PostgreSQL (or the network) answered
	Setting string // the setting that names the server, as "VARIABLE / file.key"
	err     error
}

func (e *ConnectError) Error() string {
	return "cannot use the PostgreSQL database at " + e.Server + " (" + e.Setting + "): " + e.Said
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
	current, latest, err := SchemaVersions(ctx, h.pool)
	switch {
	case err != nil && ctx.Err() != nil:
		// database/sql reports a deadline as "bad connection": say what
		// happened.
		return fmt.Errorf("cannot read the schema version: the database did not answer within 2s: %w", domain.ErrStorageUnavailable)
	case err != nil:
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
