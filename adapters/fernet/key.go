package fernet

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	fernetgo "github.com/fernet/fernet-go"

	"github.com/tokenstore/tokenstore/domain"
)

// keyIDDomain separates key-id hashing from every other use of SHA-256 over
// key material (the legacy derivation hashes a secret with plain SHA-256).
// Changing it changes every key id and orphans every stored row: don't.
const keyIDDomain = "tokenstore/fernet-key-id/v1\x00"

// keyIDBytes is how much of the hash becomes the id: 64 bits makes an
// accidental collision within one keyring practically impossible while
// keeping ids short enough to read in a log line.
const keyIDBytes = 8

// Key is one Fernet key. It keeps the material behind a pointer and prints
// as its id, so a Key can sit in a config struct that gets logged. The zero
// Key holds no material; NewKeyring rejects it.
type Key struct {
	k  *fernetgo.Key
	id domain.KeyID
}

func newKey(raw *[32]byte) Key {
	k := new(fernetgo.Key)
	copy(k[:], raw[:])
	h := sha256.New()
	h.Write([]byte(keyIDDomain))
	h.Write(k[:])
	return Key{k: k, id: domain.KeyID(hex.EncodeToString(h.Sum(nil)[:keyIDBytes]))}
}

// GenerateKey makes a new random key from crypto/rand, for
// `tokenstore keys generate`.
func GenerateKey() (Key, error) {
	var k fernetgo.Key
	if err := k.Generate(); err != nil {
		return Key{}, fmt.Errorf("generate fernet key: %w", err)
	}
	raw := [32]byte(k)
	return newKey(&raw), nil
}

// KeyFromJWTSecret derives the key the replaced system used: its Fernet key
// was base64(SHA-256(jwt_secret)), so the key material is the SHA-256 of the
// secret's UTF-8 bytes. It exists only to read that system's data; new
// deployments should use GenerateKey. An empty secret still yields a key
// (as it did in Python); rejecting it is the configuration's job.
func KeyFromJWTSecret(secret string) Key {
	sum := sha256.Sum256([]byte(secret))
	return newKey(&sum)
}

// keyEncodings are tried in order. Python's Fernet.generate_key and
// fernet-go print URL-safe base64 with padding; the legacy derivation
// printed standard base64; people paste keys without the padding. Strict
// decoding requires the two unused low bits of the last character to be
// zero, as every encoder writes them; without it, every 43-character
// URL-safe string (a JWT secret pasted into the key setting, say) would
// decode to 32 bytes, and with it three in four are refused.
var keyEncodings = []*base64.Encoding{
	base64.URLEncoding.Strict(),
	base64.StdEncoding.Strict(),
	base64.RawURLEncoding.Strict(),
	base64.RawStdEncoding.Strict(),
}

// ParseKey reads a key as `tokenstore keys generate`, Python's
// Fernet.generate_key or fernet-go print it: 32 bytes in URL-safe base64.
// Standard base64, missing padding, surrounding white space and 64 hex
// digits (which fernet-go's DecodeKey accepts) are tolerated too. Errors
// describe the shape of s, never its content, because s is the key.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, errors.New("fernet key is empty: generate one with `tokenstore keys generate`")
	}
	var raw [32]byte
	if len(s) == hex.EncodedLen(len(raw)) {
		if n, err := hex.Decode(raw[:], []byte(s)); err == nil && n == len(raw) {
			return newKey(&raw), nil
		}
	}
	for _, enc := range keyEncodings {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != len(raw) {
			return Key{}, fmt.Errorf("fernet key decodes to %d bytes, want %d: "+
				"a Fernet key is 32 random bytes in URL-safe base64 (44 characters)", len(b), len(raw))
		}
		copy(raw[:], b)
		clear(b)
		return newKey(&raw), nil
	}
	return Key{}, fmt.Errorf("fernet key (%d characters) is not base64: "+
		"a Fernet key is 32 random bytes in URL-safe base64 (44 characters)", len(s))
}

// ID is the key's deterministic id: the first 8 bytes, in hex, of
// SHA-256("tokenstore/fernet-key-id/v1\x00" || key). It reveals nothing about
// the key and is the same in every process. The zero Key's id is "".
func (k Key) ID() domain.KeyID { return k.id }

// isZero reports whether k holds no key material.
func (k Key) isZero() bool { return k.k == nil }

// Encode returns the key in URL-safe base64, the form ParseKey and Python's
// Fernet read. It is the only way to get the material out; grep for it.
func (k Key) Encode() string {
	if k.isZero() {
		return ""
	}
	return k.k.Encode()
}

func (k Key) redacted() string {
	if k.isZero() {
		return "fernet-key(none)"
	}
	return "fernet-key(" + string(k.id) + ")"
}

// String prints the id, never the material.
func (k Key) String() string { return k.redacted() }

// GoString keeps %#v from dumping the struct.
func (k Key) GoString() string { return k.redacted() }

// Format makes every verb (%x, %q, %+v ...) print the id instead of
// reaching the material.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.redacted())) }

// MarshalJSON keeps a Key inside a JSON-encoded config or log record safe.
func (k Key) MarshalJSON() ([]byte, error) { return []byte(`"` + k.redacted() + `"`), nil }

// MarshalText covers text encoders and map keys.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.redacted()), nil }

// LogValue keeps slog from reflecting over the struct.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.redacted()) }
