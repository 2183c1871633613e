package cli

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/secretfile"
)

// errNoKeys is what every command that needs the keys says without them.
var errNoKeys = errors.New("no encryption key: set TOKENSTORE_KEYS, TOKENSTORE_KEY_FILE or TOKENSTORE_JWT_SECRET(_FILE); " +
	"make a key with `tokenstore keys generate` (tokenstore never generates one outside --dev: " +
	"a key lost at restart makes every stored token unreadable)")

// Keyring builds the configured keyring, or says how to configure a key.
func (c *Config) Keyring() (*fernet.Keyring, error) {
	if len(c.Keys.Keys) == 0 && c.devKeyFile != "" {
		abs, _ := filepath.Abs(c.devKeyFile)
		return nil, fmt.Errorf("no encryption key: --dev found no development key file %s: `task run` (tokenstore serve --dev) makes it on its first start; "+
			"run this command in the directory serve --dev ran in, or set TOKENSTORE_DEV_DIR to its .dev", abs)
	}
	if len(c.Keys.Keys) == 0 {
		return nil, errNoKeys
	}
	return fernet.NewKeyringFromConfig(c.Keys)
}

// resolveKeys picks the key source, first configured wins: the keys setting
// (TOKENSTORE_KEYS), the key file, the legacy JWT secret. Nothing is ever
// generated here (only --dev does that).
func (c *Config) resolveKeys() (err error) {
	switch secret := c.JWTSecret; {
	case len(c.Keys.Keys) > 0:
		c.KeySource = "TOKENSTORE_KEYS"
	case c.KeyFile != "":
		c.KeySource = "key file " + c.KeyFile
		return c.loadKeyFile(c.KeyFile)
	case secret != "" && c.JWTSecretFile != "":
		return errors.New("TOKENSTORE_JWT_SECRET and TOKENSTORE_JWT_SECRET_FILE are both set: give the secret one way")
	case c.JWTSecretFile != "":
		if secret, err = secretfile.Read(c.JWTSecretFile, "TOKENSTORE_JWT_SECRET_FILE (jwt_secret_file)"); err != nil {
			return err
		}
		fallthrough
	case secret != "":
		if len(secret) < 16 {
			return errors.New("TOKENSTORE_JWT_SECRET: the secret is shorter than 16 bytes; a key derived from it would be guessable")
		}
		c.Keys.Keys, c.KeySource = []fernet.Key{fernet.KeyFromJWTSecret(secret)}, "legacy JWT secret"
	}
	return nil
}

// loadKeyFile reads the key file (see fernet.ParseKeys for its forms).
func (c *Config) loadKeyFile(path string) error {
	const setting = "TOKENSTORE_KEY_FILE (key_file)"
	text, err := secretfile.Read(path, setting)
	if err != nil {
		return err
	}
	if c.Keys.Keys, err = fernet.ParseKeys(text); err != nil {
		return fmt.Errorf("%s: %s: %w", setting, path, err)
	} else if len(c.Keys.Keys) == 0 {
		return fmt.Errorf("%s: %s holds no key (make one with `tokenstore keys generate`)", setting, path)
	}
	return nil
}
