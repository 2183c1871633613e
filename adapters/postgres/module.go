package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/ports"
)

// Module provides the pool (pinged on start, closed on stop) and the
// repository as a ports.TokenRepository and a ports.RefreshQueue. It needs a Config. The readiness
// check (NewHealth) is bound by the composition root to its consumer's interface.
var Module = fx.Module("postgres",
	fx.Provide(
		newLifecyclePool,
		repositoryOptions,
		fx.Annotate(New, fx.As(new(ports.TokenRepository)), fx.As(new(ports.RefreshQueue))),
	),
)

func newLifecyclePool(lc fx.Lifecycle, cfg Config) (*pgxpool.Pool, error) {
	pool, err := NewPool(cfg)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := Ping(ctx, pool); err != nil {
				// fx does not run the stop hook of a hook that failed to start.
				pool.Close()
				return err
			}
			return nil
		},
		OnStop: func(context.Context) error { pool.Close(); return nil },
	})
	return pool, nil
}

func repositoryOptions(cfg Config) Options { return Options{LockTimeout: cfg.LockTimeout} }
