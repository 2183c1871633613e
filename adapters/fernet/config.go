package fernet

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
// or {"keys": [...]}. The JSON is read strictly: a member name given twice,
// an unknown or differently cased member, invalid UTF-8 or a lone surrogate
// is refused rather than guessed at. Errors name a key by its position and
// a member by its name, never quote a value.
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
		if err := json.Unmarshal([]byte(text), &doc, json.RejectUnknownMembers(true)); err != nil {
			return nil, fmt.Errorf(`not valid JSON: %s; expected [{"key": ..., "created_at": ..., "note": ...}]`, jsonProblem(err))
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

// jsonProblem says what is wrong with a key file's JSON without quoting
// it: the library's messages may quote a value, and values are keys.
func jsonProblem(err error) string {
	var serr *json.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		return "a member name appears twice"
	case errors.Is(err, json.ErrUnknownName):
		return "unknown member (names are lower case: key, created_at, note)"
	case errors.As(err, &syn) && strings.Contains(syn.Err.Error(), "UTF-8"):
		return "invalid UTF-8"
	case errors.As(err, &syn) && strings.Contains(syn.Err.Error(), "surrogate"):
		return "a lone surrogate escape (\\ud800 to \\udfff unpaired)"
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.ByteOffset)
	case errors.As(err, &serr):
		return "a member has the wrong type (each is a string)"
	}
	return "cannot be decoded"
}
