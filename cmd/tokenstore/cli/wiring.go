package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/metrics"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/adapters/webhook"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/ports"
)

// AppOptions is the whole service as one fx graph; no other package knows
// fx. Start hooks run in the order the Invokes below register them and stop
// hooks in reverse, so this function reads as start-up from top to bottom
// and as shutdown from bottom to top. extra options are appended (tests
// populate the server to learn its address).
func AppOptions(cfg Config, log *slog.Logger, extra ...fx.Option) fx.Option {
	migrate := fx.Options()
	if cfg.Migrate {
		migrate = fx.Invoke(migrateOnStart)
	}
	// One name for this instance: its refresh leases, its audit events and
	// its keyring record.
	if cfg.App.Refresh.Instance == "" {
		cfg.App.Refresh.Instance = app.InstanceName()
	}
	cfg.KeyringHeartbeat.Instance = cfg.App.Refresh.Instance
	cfg.Delivery.Owner = cfg.App.Refresh.Instance
	cfg.Database.Events = cfg.Events.Policy()
	return fx.Options(
		// Configuration and logger.
		fx.WithLogger(fxLogger(log)),
		fx.Supply(log, cfg, cfg.Database, cfg.Keys, cfg.OAuth, cfg.Worker, cfg.HTTP, cfg.Callers, cfg.Metrics,
			cfg.Database.Options(), cfg.KeyringHeartbeat),
		// The log stream buffers lines (see LogStream): its stop hook,
		// registered first, runs last and writes out what every other stop
		// hook logged.
		fx.Invoke(flushLogsOnStop),

		// Observability: the metrics (served on their own listener, below)
		// and the tracer provider (the OTEL_* variables' exporter, or
		// none; flushed on stop, after everything that makes spans).
		fx.Provide(metrics.New, newTracerProvider, observedAppConfig, observedAuditConfig),

		// The database pool: pinged on start, closed last on stop.
		fx.Provide(newPool),
		fx.Invoke(openPool),
		// Migrations, when asked, before anything can serve a request.
		migrate,

		// The core: keyring (swapped whole by a SIGHUP reload), repository,
		// refresher (with no providers it refreshes nothing), the token
		// service and the proactive worker.
		fx.Provide(
			fx.Annotate(fernet.NewSwappableKeyringFromConfig, fx.As(fx.Self()), fx.As(new(ports.TokenCrypter)), fx.As(new(ports.Keyring))),
			fx.Annotate(postgres.New, fx.As(fx.Self()), fx.As(new(ports.RefreshQueue)), fx.As(new(ports.DatabaseClock)),
				fx.As(new(ports.AuditRecorder)), fx.As(new(ports.AuditRetention)), fx.As(new(ports.StoreCensus)),
				fx.As(new(ports.EventFeed)), fx.As(new(ports.EventRetention)), fx.As(new(ports.DeliveryQueue)),
				fx.As(new(ports.KeyInventory)), fx.As(new(ports.KeyringRegistry))),
			newTokenRepository,
			app.NewKeyringCheck,
			app.NewKeyringHeartbeat,
			app.NewAuditor,
			func(log *slog.Logger, store ports.AuditRetention) *app.AuditRetention {
				return app.NewAuditRetention(cfg.Audit.Retention, log, store)
			},
			fx.Annotate(newRefresher, fx.As(new(ports.TokenRefresher))),
			newRevoker,
			fx.Annotate(app.NewTokenService, fx.As(fx.Self()), fx.As(new(httpapi.TokenService))),
			(*app.TokenService).Refreshes,
			(*app.TokenService).Clock,
			app.NewSkewMonitor,
			app.NewRefreshWorker,
			app.NewCensus,
			func(store ports.EventFeed) *app.EventFeed { return app.NewEventFeed(store, 0) },
			func(log *slog.Logger, store ports.EventRetention) *app.EventRetention {
				return app.NewEventRetention(cfg.Events.Retention, log, store)
			},
			newDeliveryWorker,
		),
		// The read cache hears the database's changes for the
		// application's life (when read_cache.enabled).
		fx.Invoke(runReadCache),
		// Every key id that seals a stored value must be in the keyring, or
		// serve refuses to start; then this instance records its keyring
		// (and again every key_heartbeat_interval).
		fx.Invoke(checkKeyringOnStart),
		fx.Invoke(runKeyringHeartbeat),
		// The database's clock against this instance's: measured before
		// anything is served, then every minute.
		fx.Invoke(runSkewMonitor),
		fx.Invoke(runWorker),
		// Events go out to the webhooks, deleted tokens are revoked
		// upstream; stopping waits for the sends in flight.
		fx.Invoke(runDeliveryWorker),
		// Audit events older than audit.retention leave in small batches.
		fx.Invoke(runAuditRetention),
		// Events older than events.retention leave the same way.
		fx.Invoke(runEventRetention),
		// Stopping waits for refreshes in flight, before the pool closes.
		fx.Invoke(drainOnStop),
		// The audit batcher stops after the server (no read waits for it
		// any more) and before the pool closes.
		fx.Invoke(stopAuditor),

		// The metrics listener (when metrics.addr is set): the pool's and
		// the store's gauges join the series the use cases feed; it stops
		// after the API, so the last requests are counted.
		fx.Provide(metrics.NewServer),
		fx.Invoke(serveMetrics),

		// The HTTP API: listens on start (a busy port fails start-up), stops
		// first on shutdown.
		fx.Provide(
			postgres.NewHealth,
			newReadiness,
			httpapi.NewAuthenticator,
			newServer,
		),
		fx.Invoke(serveHTTP),
		fx.Invoke(stopEventWaits),
		// What SIGHUP reloads (serve catches the signal).
		fx.Provide(hangupReloaders),
		fx.Options(extra...),
	)
}

// NewApp builds the service's fx application.
func NewApp(cfg Config, log *slog.Logger, extra ...fx.Option) *fx.App {
	return fx.New(AppOptions(cfg, log, extra...))
}

// observedAppConfig is the configuration of the token service, with the
// metrics as its observer, the tracer provider for its spans and the
// upstream revoker.
func observedAppConfig(cfg Config, m *metrics.Metrics, tp trace.TracerProvider, revoker *oauth.Revoker) app.Config {
	c := cfg.App
	c.Observer, c.TracerProvider, c.Revoker = m, tp, revoker
	return c
}

// newRevoker is the upstream revoker of the declared providers. It is
// built even when none revokes on delete: revocations queued while one
// did still get their outcome (revocation.failed,
// revocation_not_supported) instead of staying pending.
func newRevoker(cfg oauth.Config, tp trace.TracerProvider) (*oauth.Revoker, error) {
	return oauth.NewRevokerFromConfig(cfg, oauth.WithTracerProvider(tp))
}

// newDeliveryWorker delivers events to the webhooks and revocations to
// the providers.
func newDeliveryWorker(cfg Config, svc *app.TokenService, queue ports.DeliveryQueue, revoker *oauth.Revoker, log *slog.Logger) *app.DeliveryWorker {
	return app.NewDeliveryWorker(cfg.Delivery, svc, queue, webhook.Targets(cfg.Webhooks, webhook.New()), revoker, log)
}

// runDeliveryWorker delivers for the application's life.
func runDeliveryWorker(lc fx.Lifecycle, w *app.DeliveryWorker) {
	lc.Append(fx.StartStopHook(w.Start, w.Stop))
}

// observedAuditConfig is the auditor's configuration, observed by the
// metrics.
func observedAuditConfig(cfg Config, m *metrics.Metrics) app.AuditConfig {
	return app.AuditConfig{Mode: app.AuditMode(cfg.Audit.Mode), Instance: cfg.App.Refresh.Instance, Observer: m}
}

// newPool is the database pool, its queries traced when tracing is on.
func newPool(cfg postgres.Config, tp trace.TracerProvider) (*pgxpool.Pool, error) {
	if _, off := tp.(noop.TracerProvider); off {
		return postgres.NewPool(cfg)
	}
	return postgres.NewTracedPool(cfg, tp)
}

// newRefresher is the providers' refresher, its token endpoint calls traced.
func newRefresher(cfg oauth.Config, tp trace.TracerProvider) (*oauth.Refresher, error) {
	return oauth.NewFromConfig(cfg, oauth.WithTracerProvider(tp))
}

// newServer is the API server, observed by the metrics and traced.
func newServer(cfg httpapi.Config, log *slog.Logger, svc httpapi.TokenService, auth *httpapi.Authenticator, ready httpapi.Checker,
	m *metrics.Metrics, tp trace.TracerProvider, events *app.EventFeed,
) *httpapi.Server {
	return httpapi.NewServer(cfg, log, svc, auth, ready, httpapi.WithRequestObserver(m), httpapi.WithTracerProvider(tp),
		httpapi.WithEventFeed(events, cfg.MaxEventWait()))
}

// newTokenRepository is the repository the use cases read and write
// through: the read cache in front of PostgreSQL when read_cache.enabled
// (then also returned, with the listener that keeps it exact, for
// runReadCache and the metrics), else PostgreSQL.
func newTokenRepository(cfg Config, repo *postgres.Repository, log *slog.Logger) (ports.TokenRepository, *readcache.Repository, *postgres.ChangeListener, error) {
	if !cfg.ReadCache.Enabled {
		return repo, nil, nil, nil
	}
	l, err := postgres.NewChangeListener(cfg.Database, postgres.ListenerOptions{SyncTimeout: cfg.ReadCache.SyncTimeout, Log: log})
	if err != nil {
		return nil, nil, nil, err
	}
	cache := readcache.New(repo, l, readcache.Options{MaxRows: cfg.ReadCache.MaxRows, SyncTimeout: cfg.ReadCache.SyncTimeout, Log: log})
	return cache, cache, l, nil
}

// runReadCache runs the read cache's listener (a session connection of
// its own, on database.direct_url when set) for the application's life,
// stopping it before the pool closes. Until it listens, reads go to the
// database.
func runReadCache(lc fx.Lifecycle, cache *readcache.Repository, l *postgres.ChangeListener, m *metrics.Metrics) {
	if cache == nil {
		return
	}
	m.RegisterReadCache(cache)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() { defer close(done); _ = l.Run(ctx, cache) }()
			return nil
		},
		OnStop: func(stop context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-stop.Done():
				return stop.Err()
			}
		},
	})
}

// stopEventWaits ends the event feed's long polls when shutdown begins:
// invoked after serveHTTP, its stop hook runs before the server's, which
// would otherwise wait for them.
func stopEventWaits(lc fx.Lifecycle, f *app.EventFeed) {
	lc.Append(fx.StopHook(f.Stop))
}

// serveMetrics adds the pool's statistics, the store's census and the
// NOTIFY queue's usage to the metrics, and serves them on metrics.addr for
// the application's life (a busy port fails start-up).
func serveMetrics(lc fx.Lifecycle, m *metrics.Metrics, pool *pgxpool.Pool, repo *postgres.Repository, census *app.Census, s *metrics.Server, log *slog.Logger) {
	m.RegisterPool(pool)
	m.RegisterCensus(census, log)
	m.RegisterNotificationQueue(repo)
	lc.Append(fx.StartStopHook(s.Start, s.Stop))
}

// openPool pings the database on start, so a wrong URL or a database that is
// down fails start-up, and closes the pool on stop.
// It warns when the server does not apply the timeouts the pool asked for
// (a pooler dropped them): calls are still bounded by the client's deadline.
func openPool(lc fx.Lifecycle, pool *pgxpool.Pool, log *slog.Logger) {
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := postgres.PingOrClose(ctx, pool); err != nil {
				return err
			}
			var notApplied *postgres.TimeoutsNotAppliedError
			switch err := postgres.CheckServerTimeouts(ctx, pool); {
			case errors.As(err, &notApplied):
				log.Warn("database timeouts not applied by the server", "err", err)
			case err != nil:
				log.Warn("could not read the server's timeouts", "err", err)
			}
			return nil
		},
		OnStop: func(context.Context) error { pool.Close(); return nil },
	})
}

// migrateStartTimeout bounds migrations applied by serve. Longer ones are
// for `tokenstore migrate up`, which has no bound.
const migrateStartTimeout = time.Minute

// migrateOnStart applies pending migrations once the pool answers and
// before the server listens: no request is served on an old schema.
// They go through the direct URL when one is set (postgres.NewMigrator).
func migrateOnStart(lc fx.Lifecycle, cfg postgres.Config, log *slog.Logger) {
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, migrateStartTimeout)
		defer cancel()
		n, err := postgres.MigrateUp(ctx, cfg)
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("applying migrations (TOKENSTORE_DATABASE_MIGRATE / database.migrate) did not finish within %s: "+
				"the database stopped answering, or a migration needs longer: run `tokenstore migrate up`", migrateStartTimeout)
		}
		if err != nil {
			return fmt.Errorf("applying migrations (TOKENSTORE_DATABASE_MIGRATE / database.migrate): %w", err)
		}
		log.Info("migrations applied", "count", n)
		return nil
	}))
}

// checkKeyringOnStart refuses to start when stored values are sealed by
// keys the keyring lacks (app.MissingKeysError names them and their
// values): such a server would answer 500 for every one of those rows. An
// unmigrated or unreachable database is left to /readyz, which says so and
// checks the keyring too once the schema is current.
func checkKeyringOnStart(lc fx.Lifecycle, health *postgres.Health, check *app.KeyringCheck, log *slog.Logger) {
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		if err := health.Check(ctx); err != nil {
			log.Warn("the keyring is not checked against the stored values at start-up; /readyz checks it once the database is ready", "err", err)
			return nil
		}
		if err := check.Check(ctx); err != nil {
			return fmt.Errorf("refusing to serve: %w", err)
		}
		return nil
	}))
}

// runKeyringHeartbeat records this instance's keyring for its life and
// deletes the record on stop, before the pool closes.
func runKeyringHeartbeat(lc fx.Lifecycle, h *app.KeyringHeartbeat) {
	lc.Append(fx.StartStopHook(h.Start, h.Stop))
}

// runSkewMonitor measures the clock skew for the application's life.
func runSkewMonitor(lc fx.Lifecycle, m *app.SkewMonitor) {
	lc.Append(fx.StartStopHook(m.Start, m.Stop))
}

// runWorker refreshes tokens ahead of expiry for the application's life.
func runWorker(lc fx.Lifecycle, w *app.RefreshWorker) {
	lc.Append(fx.StartStopHook(w.Start, w.Stop))
}

// runAuditRetention removes old audit events for the application's life.
func runAuditRetention(lc fx.Lifecycle, r *app.AuditRetention) {
	lc.Append(fx.StartStopHook(r.Start, r.Stop))
}

// runEventRetention removes old outbox events for the application's life.
func runEventRetention(lc fx.Lifecycle, r *app.EventRetention) {
	lc.Append(fx.StartStopHook(r.Start, r.Stop))
}

// drainOnStop makes shutdown wait for refreshes started by reads, so they
// can store their result while the pool is still open.
func drainOnStop(lc fx.Lifecycle, s *app.RefreshCoordinator) {
	lc.Append(fx.StopHook(s.Drain))
}

// stopAuditor writes the audit events still queued at shutdown.
func stopAuditor(lc fx.Lifecycle, a *app.Auditor) {
	lc.Append(fx.StopHook(a.Stop))
}

// serveHTTP binds the port on start and serves in the background. A port
// that cannot be bound fails start-up with one line naming the setting.
func serveHTTP(lc fx.Lifecycle, s *httpapi.Server, cfg httpapi.Config) {
	lc.Append(fx.StartStopHook(func(ctx context.Context) error {
		err := s.Start(ctx)
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return fmt.Errorf("cannot listen on %s (TOKENSTORE_HTTP_ADDR / http.addr): %s", cfg.Addr, errno)
		}
		return err
	}, s.Stop))
}

// readinessIn is what /readyz checks. `serve` supplies its *LogStream;
// tests that log to a buffer do not.
type readinessIn struct {
	fx.In
	DB    *postgres.Health
	Keys  *app.KeyringCheck
	Clock *app.Clock
	Audit *app.Auditor
	Logs  *LogStream `optional:"true"`
}

func newReadiness(in readinessIn) httpapi.Checker {
	return readiness{db: in.DB, keys: in.Keys, logs: in.Logs, clock: in.Clock, audit: in.Audit}
}

// logStreamIn is serve's *LogStream; tests that log to a buffer have none.
type logStreamIn struct {
	fx.In
	Logs *LogStream `optional:"true"`
}

// flushLogsOnStop flushes the log stream, when there is one, as the graph's
// last stop step.
func flushLogsOnStop(lc fx.Lifecycle, in logStreamIn) {
	if in.Logs == nil {
		return
	}
	lc.Append(fx.StopHook(in.Logs.Flush))
}

// withLogStream gives the graph the server's log stream, for /readyz.
func withLogStream(s *LogStream) fx.Option { return fx.Supply(s) }

// withKeyLoader gives the graph how serve loaded its keys, so that SIGHUP
// reloads the keyring from the same sources.
func withKeyLoader(load keyLoader) fx.Option { return fx.Supply(load) }

// withReloaders hands serve the list of what SIGHUP reloads.
func withReloaders(list *reloaders) fx.Option { return fx.Populate(list) }

// fxLogger logs fx's own events (each provide, invoke, hook) at debug level
// only: at info they would drown the request log.
func fxLogger(log *slog.Logger) func() fxevent.Logger {
	return func() fxevent.Logger {
		l := &fxevent.SlogLogger{Logger: log}
		l.UseLogLevel(slog.LevelDebug)
		// A failure is returned, and printed once, by whoever started the
		// application: fx's own report of it would repeat it with Go
		// function names around it.
		l.UseErrorLevel(slog.LevelDebug)
		return l
	}
}
