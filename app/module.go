package app

import (
	"go.uber.org/fx"
)

// Module provides the TokenService. A ports.TokenRefresher is optional: with
// none in the graph, expired tokens are reported as expired.
var Module = fx.Module("app",
	fx.Provide(fx.Annotate(NewTokenService, fx.ParamTags(``, ``, ``, `optional:"true"`))),
)
