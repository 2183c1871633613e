package app

import (
	"go.uber.org/fx"
)

// Module provides the TokenService and the proactive RefreshWorker (it needs
// a WorkerConfig). A ports.TokenRefresher is optional: with none in the
// graph, expired tokens are reported as expired and nothing is refreshed.
var Module = fx.Module("app",
	fx.Provide(
		fx.Annotate(NewTokenService, fx.ParamTags(``, ``, ``, ``, `optional:"true"`)),
		NewRefreshWorker,
	),
	fx.Invoke(registerWorker, registerDrain),
)

// registerDrain makes shutdown wait for refreshes in flight. Its stop hook
// runs before the pool's (hooks stop in reverse order), so they can commit.
func registerDrain(lc fx.Lifecycle, s *TokenService) {
	lc.Append(fx.Hook{OnStop: s.Drain})
}

// registerWorker runs the proactive refresher for the application's life.
func registerWorker(lc fx.Lifecycle, w *RefreshWorker) {
	lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
}
