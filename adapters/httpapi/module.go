package httpapi

import (
	"go.uber.org/fx"
)

// Module provides the API server and ties it to the application lifecycle.
// It needs a Config, a []Caller, a *slog.Logger, the *app.TokenService and
// a Checker for readiness.
var Module = fx.Module("httpapi",
	fx.Provide(NewAuthenticator, NewServer),
	fx.Invoke(registerLifecycle),
)

func registerLifecycle(lc fx.Lifecycle, s *Server) {
	lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
}
