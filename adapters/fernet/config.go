package fernet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

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

// ParseKeys reads keys, primary first, in every form a key list is written
// in (the keys setting, a key file): keys separated by commas, spaces or
// line breaks, with notes after #; or JSON, [{"key", "created_at", "note"}]
// or {"keys": [...]}. Errors name a key by its position, never by its text.
func ParseKeys(text string) ([]Key, error) {
	var fields []string
	if text = strings.TrimSpace(text); strings.HasPrefix(text, "[") || strings.HasPrefix(text, "{") {
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
			return nil, errors.New(`not valid JSON: expected [{"key": ..., "created_at": ..., "note": ...}]`)
		}
		for _, e := range doc.Keys {
			fields = append(fields, e.Key)
		}
	} else {
		for line := range strings.Lines(text) {
			line, _, _ = strings.Cut(line, "#")
			fields = append(fields, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
		}
	}
	keys := make([]Key, len(fields))
	for i, field := range fields {
		var err error
		if keys[i], err = ParseKey(field); err != nil {
			return nil, fmt.Errorf("key #%d: %w", i+1, err)
		}
	}
	return keys, nil
}
