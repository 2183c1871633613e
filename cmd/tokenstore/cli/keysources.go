package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"github.com/tokenstore/tokenstore/adapters/fernet"
)

// resolveKeys picks the key source, first configured wins: the keys setting
// (TOKENSTORE_KEYS), the key file, the legacy JWT secret. Nothing is ever
// generated here (only --dev does that).
func (c *Config) resolveKeys() error {
	switch {
	case len(c.Keys.Keys) > 0:
		c.KeySource = "TOKENSTORE_KEYS"
	case c.KeyFile != "":
		if err := c.loadKeyFile(c.KeyFile); err != nil {
			return err
		}
		c.KeySource = "key file " + c.KeyFile
	case c.JWTSecret != "" || c.JWTSecretFile != "":
		secret := c.JWTSecret
		if c.JWTSecretFile != "" {
			if c.JWTSecret != "" {
				return errors.New("TOKENSTORE_JWT_SECRET and TOKENSTORE_JWT_SECRET_FILE are both set: give the secret one way")
			}
			const setting = "TOKENSTORE_JWT_SECRET_FILE (jwt_secret_file)"
			if err := checkPrivate(c.JWTSecretFile, setting); err != nil {
				return err
			}
			s, err := readTrimmed(c.JWTSecretFile)
			if err != nil {
				return fmt.Errorf("%s: %w", setting, err)
			}
			secret = s
		}
		if len(secret) < 16 {
			return errors.New("TOKENSTORE_JWT_SECRET: the secret is shorter than 16 bytes; a key derived from it would be guessable")
		}
		c.Keys.Keys = []fernet.Key{fernet.KeyFromJWTSecret(secret)}
		c.KeySource = "legacy JWT secret"
	}
	return nil
}

// loadKeyFile reads the key file, refusing a file others can read: it holds
// every token's key.
func (c *Config) loadKeyFile(path string) error {
	const setting = "TOKENSTORE_KEY_FILE (key_file)"
	if err := checkPrivate(path, setting); err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	keys, err := parseKeys([]string{string(raw)}, setting+" "+path)
	if err == nil && len(keys) == 0 {
		err = fmt.Errorf("%s: %s holds no key (make one with `tokenstore keys generate`)", setting, path)
	}
	c.Keys.Keys = keys
	return err
}

// keyEntry is one key in a JSON key source.
type keyEntry struct {
	Key       string `json:"key"`
	CreatedAt string `json:"created_at,omitempty"`
	Note      string `json:"note,omitempty"`
}

// parseKeys reads keys, primary first, from every key source (the keys
// setting, a key file): JSON, [{key, created_at, note}] or {"keys": [...]},
// or keys separated by commas, spaces or line breaks with notes after #.
// Errors name a key by its position, never by its text.
func parseKeys(texts []string, where string) ([]fernet.Key, error) {
	var fields []string
	for _, text := range texts {
		text = strings.TrimSpace(text)
		if strings.HasPrefix(text, "[") || strings.HasPrefix(text, "{") {
			var doc struct {
				Keys []keyEntry `json:"keys"`
			}
			var into any = &doc.Keys
			if text[0] == '{' {
				into = &doc
			}
			dec := json.NewDecoder(strings.NewReader(text))
			dec.DisallowUnknownFields()
			if dec.Decode(into) != nil {
				return nil, fmt.Errorf(`%s: not valid JSON: expected [{"key": ..., "created_at": ..., "note": ...}]`, where)
			}
			for _, e := range doc.Keys {
				fields = append(fields, e.Key)
			}
			continue
		}
		for line := range strings.Lines(text) {
			line, _, _ = strings.Cut(line, "#")
			fields = append(fields, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
		}
	}
	keys := make([]fernet.Key, 0, len(fields))
	for i, field := range fields {
		k, err := fernet.ParseKey(field)
		if err != nil {
			return nil, fmt.Errorf("key #%d in %s: %w", i+1, where, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// checkPrivate refuses a secret file that group or others can read.
func checkPrivate(path, setting string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: %s is readable by group or others (mode %04o); run `chmod 600 %s`",
			setting, path, info.Mode().Perm(), path)
	}
	return nil
}

// errNoKeys is what every command that needs the keys says without them.
var errNoKeys = errors.New("no encryption key: set TOKENSTORE_KEYS, TOKENSTORE_KEY_FILE or TOKENSTORE_JWT_SECRET(_FILE); " +
	"make a key with `tokenstore keys generate` (tokenstore never generates one outside --dev: " +
	"a key lost at restart makes every stored token unreadable)")

// Keyring builds the configured keyring, or says how to configure a key.
func (c *Config) Keyring() (*fernet.Keyring, error) {
	if len(c.Keys.Keys) == 0 {
		return nil, errNoKeys
	}
	return fernet.NewKeyringFromConfig(c.Keys)
}
