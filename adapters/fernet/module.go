package fernet

import (
	"errors"

	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/ports"
)

// Config is the keyring's configuration: the keys, primary first.
type Config struct {
	Keys []Key
}

// Module provides the keyring as a ports.TokenCrypter. It needs a Config.
var Module = fx.Module("fernet",
	fx.Provide(fx.Annotate(NewKeyringFromConfig, fx.As(new(ports.TokenCrypter)))),
)

// NewKeyringFromConfig builds the keyring from configured keys.
func NewKeyringFromConfig(cfg Config) (*Keyring, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("no encryption key configured: set TOKENSTORE_KEYS or TOKENSTORE_KEY_FILE " +
			"(make a key with `tokenstore keys generate`)")
	}
	return NewKeyring(cfg.Keys[0], cfg.Keys[1:]...)
}
