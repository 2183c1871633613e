package cli

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
)

// AppOptions is the whole service as an fx graph: each package's Module
// plus the configuration sections they consume. extra options are appended
// (tests populate the server to learn its address).
func AppOptions(cfg Config, log *slog.Logger, extra ...fx.Option) fx.Option {
	opts := []fx.Option{
		fx.Supply(cfg.Database, cfg.HTTP, cfg.Keys, cfg.Callers, cfg.App, cfg.Worker, log),
		fx.WithLogger(fxLogger(log)),
		fx.Provide(fx.Annotate(postgres.NewHealth, fx.As(new(httpapi.Checker)))),
	}
	if cfg.Migrate {
		// A decorator of the pool runs when the pool is first needed, which
		// is before the server is built, so the migration hook starts before
		// the server's: no request is served on an old schema.
		opts = append(opts, fx.Decorate(migrateOnStart))
	}
	opts = append(opts, postgres.Module, fernet.Module, app.Module, httpapi.Module)
	if len(cfg.OAuth.Providers) > 0 {
		// Without providers there is no refresher in the graph: expired
		// tokens are reported as expired.
		opts = append(opts, fx.Supply(cfg.OAuth), oauth.Module)
	}
	return fx.Options(append(opts, extra...)...)
}

// fxLogger logs fx's own events (each provide, invoke, hook) at debug level
// only: at info they would drown the request log.
func fxLogger(log *slog.Logger) func() fxevent.Logger {
	return func() fxevent.Logger {
		l := &fxevent.SlogLogger{Logger: log}
		l.UseLogLevel(slog.LevelDebug)
		return l
	}
}

// migrateOnStart applies pending migrations after the pool's ping hook and
// before the server starts taking requests.
func migrateOnStart(lc fx.Lifecycle, pool *pgxpool.Pool, log *slog.Logger) *pgxpool.Pool {
	lc.Append(fx.Hook{OnStart: func(ctx context.Context) error {
		m, err := postgres.NewMigrator(pool, nil)
		if err != nil {
			return err
		}
		defer m.Close()
		n, err := m.Up(ctx)
		if err != nil {
			return err
		}
		log.Info("migrations applied", "count", n)
		return nil
	}})
	return pool
}

// NewApp builds the service's fx application.
func NewApp(cfg Config, log *slog.Logger, extra ...fx.Option) *fx.App {
	return fx.New(AppOptions(cfg, log, extra...))
}

// prepareDev makes development defaults real: a key file and a caller
// credential in the dev directory, created once (mode 0600) and reused, so
// restarts keep data readable and curl commands working.
func prepareDev(cfg *Config, log *slog.Logger) error {
	if len(cfg.Keys.Keys) == 0 {
		path := filepath.Join(cfg.DevDir, "keys")
		if !exists(path) {
			k, err := fernet.GenerateKey()
			if err != nil {
				return err
			}
			content := "# Development key made by `tokenstore serve --dev`. Never use it in production.\n" + k.Encode() + "\n"
			if err := writeSecretFile(path, content); err != nil {
				return fmt.Errorf("create development key file: %w", err)
			}
			log.Info("created development key file", "path", path)
		}
		if err := cfg.loadKeyFile(path); err != nil {
			return err
		}
		cfg.KeySource = "development key file " + path
		log.Info("dev mode: using development key file", "path", path)
	}
	if len(cfg.Callers) == 0 {
		path := filepath.Join(cfg.DevDir, "caller-credential")
		if !exists(path) {
			cred, _, err := httpapi.NewCredential()
			if err != nil {
				return err
			}
			if err := writeSecretFile(path, cred+"\n"); err != nil {
				return fmt.Errorf("create development caller credential: %w", err)
			}
			log.Info("created development caller credential", "path", path)
		}
		cred, err := readTrimmed(path)
		if err != nil {
			return err
		}
		h, err := httpapi.ParseCredentialHash(httpapi.HashCredential(cred))
		if err != nil {
			return err
		}
		cfg.Callers = []httpapi.Caller{{Name: "dev", CredentialHash: h, Permissions: httpapi.AllPermissions}}
		log.Info("dev mode: caller \"dev\" has every permission; its credential is in the file",
			"path", path, "permissions", strings.Join(permNames(), ","))
	}
	return nil
}

func permNames() []string {
	out := make([]string, len(httpapi.AllPermissions))
	for i, p := range httpapi.AllPermissions {
		out[i] = string(p)
	}
	return out
}
