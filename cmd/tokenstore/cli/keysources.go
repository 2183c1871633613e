package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/tokenstore/tokenstore/adapters/fernet"
)

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

// resolveKeys picks the key source, first configured wins: the keys setting
// (TOKENSTORE_KEYS), the key file, the legacy JWT secret. Nothing is ever
// generated here (only --dev does that).
func (c *Config) resolveKeys() error {
	secret := c.JWTSecret
	switch {
	case len(c.Keys.Keys) > 0:
		c.KeySource = "TOKENSTORE_KEYS"
		return nil
	case c.KeyFile != "":
		c.KeySource = "key file " + c.KeyFile
		return c.loadKeyFile(c.KeyFile)
	case c.JWTSecret != "" && c.JWTSecretFile != "":
		return errors.New("TOKENSTORE_JWT_SECRET and TOKENSTORE_JWT_SECRET_FILE are both set: give the secret one way")
	case c.JWTSecretFile != "":
		const setting = "TOKENSTORE_JWT_SECRET_FILE (jwt_secret_file)"
		if err := checkPrivate(c.JWTSecretFile, setting); err != nil {
			return err
		}
		s, err := readTrimmed(c.JWTSecretFile)
		if err != nil {
			return fmt.Errorf("%s: %w", setting, err)
		}
		secret = s
	case c.JWTSecret == "":
		return nil
	}
	if len(secret) < 16 {
		return errors.New("TOKENSTORE_JWT_SECRET: the secret is shorter than 16 bytes; a key derived from it would be guessable")
	}
	c.Keys.Keys, c.KeySource = []fernet.Key{fernet.KeyFromJWTSecret(secret)}, "legacy JWT secret"
	return nil
}

// loadKeyFile reads the key file, refusing a file others can read: it holds
// every token's key.
func (c *Config) loadKeyFile(path string) (err error) {
	const setting = "TOKENSTORE_KEY_FILE (key_file)"
	if err := checkPrivate(path, setting); err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	if c.Keys.Keys, err = parseKeys(&yaml.Node{Kind: yaml.ScalarNode, Value: string(raw)}, setting+" "+path); err == nil && len(c.Keys.Keys) == 0 {
		err = fmt.Errorf("%s: %s holds no key (make one with `tokenstore keys generate`)", setting, path)
	}
	return err
}

// parseKeys reads keys, primary first, the one way for every source (the
// keys setting, a key file): a YAML list; JSON, [{key, created_at, note}] or
// {"keys": [...]}; or text with keys separated by commas, spaces or line
// breaks and notes after #. Errors name a key by position, never by text.
func parseKeys(n *yaml.Node, where string) ([]fernet.Key, error) {
	var fields []string
	text := strings.TrimSpace(n.Value)
	switch {
	case n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			fields = append(fields, item.Value)
		}
	case strings.HasPrefix(text, "[") || strings.HasPrefix(text, "{"):
		if text[0] == '[' {
			text = `{"keys":` + text + `}`
		}
		var doc struct {
			Keys []struct {
				Key       string `json:"key"`
				CreatedAt string `json:"created_at"`
				Note      string `json:"note"`
			} `json:"keys"`
		}
		dec := json.NewDecoder(strings.NewReader(text))
		dec.DisallowUnknownFields()
		if dec.Decode(&doc) != nil {
			return nil, fmt.Errorf(`%s: not valid JSON: expected [{"key": ..., "created_at": ..., "note": ...}]`, where)
		}
		for _, e := range doc.Keys {
			fields = append(fields, e.Key)
		}
	default:
		for line := range strings.Lines(text) {
			line, _, _ = strings.Cut(line, "#")
			fields = append(fields, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
		}
	}
	keys := make([]fernet.Key, len(fields))
	for i, field := range fields {
		var err error
		if keys[i], err = fernet.ParseKey(field); err != nil {
			return nil, fmt.Errorf("key #%d in %s: %w", i+1, where, err)
		}
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
