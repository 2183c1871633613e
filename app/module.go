package app

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/ports"
)

// Module provides the TokenService, its RefreshCoordinator and the
// proactive RefreshWorker (it needs a WorkerConfig and a
// ports.RefreshQueue). A ports.TokenRefresher is optional: with none in the
// graph, NoRefresher stands in: expired tokens are reported as expired and
// nothing is refreshed.
var Module = fx.Module("app",
	fx.Provide(
		fx.Annotate(newTokenService, fx.ParamTags(``, ``, ``, ``, `optional:"true"`)),
		(*TokenService).Refreshes,
		NewRefreshWorker,
	),
	fx.Invoke(registerWorker, registerDrain),
)

func newTokenService(cfg Config, log *slog.Logger, crypter ports.TokenCrypter, repo ports.TokenRepository, refresher ports.TokenRefresher) *TokenService {
	if refresher == nil {
		refresher = NoRefresher{}
	}
	return NewTokenService(cfg, log, crypter, repo, refresher)
}

// registerDrain makes shutdown wait for refreshes in flight. Its stop hook
// runs before the pool's (hooks stop in reverse order), so they can commit.
func registerDrain(lc fx.Lifecycle, r *RefreshCoordinator) {
	lc.Append(fx.Hook{OnStop: r.Drain})
}

// registerWorker runs the proactive refresher for the application's life.
func registerWorker(lc fx.Lifecycle, w *RefreshWorker) {
	lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
}
