package oauth

import (
	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/ports"
)

// Config is the refresher's configuration: one entry per provider name.
// The composition root fx.Supply-s it.
type Config struct {
	Providers []ProviderConfig
}

// Module provides the Refresher as a ports.TokenRefresher, and as itself for
// a consumer that asks Configured before it takes a lock. It needs a Config.
var Module = fx.Module("oauth",
	fx.Provide(fx.Annotate(NewFromConfig, fx.As(fx.Self()), fx.As(new(ports.TokenRefresher)))),
)

// NewFromConfig builds a Refresher from cfg with the default HTTP client.
func NewFromConfig(cfg Config) (*Refresher, error) {
	return New(cfg.Providers)
}
