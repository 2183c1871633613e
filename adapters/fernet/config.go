package fernet

import "errors"

// Config is the keyring's configuration: the keys, primary first.
type Config struct {
	Keys []Key
}

// NewKeyringFromConfig builds the keyring from configured keys: the first
// encrypts, every one decrypts.
func NewKeyringFromConfig(cfg Config) (*Keyring, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("no encryption key configured: set TOKENSTORE_KEYS or TOKENSTORE_KEY_FILE " +
			"(make a key with `tokenstore keys generate`)")
	}
	return NewKeyring(cfg.Keys[0], cfg.Keys[1:]...)
}
