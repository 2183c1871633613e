package httpapi

import (
	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/app"
)

// Module provides the API server and ties it to the application lifecycle.
// It needs a Config, a []Caller, a *slog.Logger, the *app.TokenService (as
// the TokenService the handlers call) and a Checker for readiness.
var Module = fx.Module("httpapi",
	fx.Provide(NewAuthenticator, NewServer, tokenService),
	fx.Invoke(registerLifecycle),
)

// tokenService hands the application's service to NewServer as the
// interface the API depends on.
func tokenService(s *app.TokenService) TokenService { return s }

func registerLifecycle(lc fx.Lifecycle, s *Server) {
	lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
}
