package domain

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Redacted is what every rendering of a Secret prints instead of its value.
const Redacted = "[REDACTED]"

// Secret carries token material. Every way Go has of turning a value into
// text (fmt verbs, %#v, JSON, slog) prints Redacted, so a Secret that ends up
// in a log line, an error message or a response body leaks nothing. The
// plaintext is reachable only through Reveal, which is easy to grep for.
//
// The plaintext sits behind a pointer: where fmt bypasses the methods below
// (a Secret in an unexported struct field, a mismatched verb such as %w or
// %p), it prints an address, never the material.
//
// The zero Secret is empty; IsZero reports it. Compare Secrets with Equal:
// == compares the pointers.
type Secret struct {
	value *string
}

// NewSecret wraps token material.
func NewSecret(plaintext string) Secret {
	if plaintext == "" {
		return Secret{}
	}
	return Secret{value: &plaintext}
}

// Reveal returns the plaintext. Call it only where the material must leave
// the process in the clear: the encryption adapter and the API response.
func (s Secret) Reveal() string {
	if s.value == nil {
		return ""
	}
	return *s.value
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.value == nil }

// Len is the plaintext's length in bytes; safe to log.
func (s Secret) Len() int { return len(s.Reveal()) }

// Equal compares two secrets in constant time (for equal lengths).
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.Reveal()), []byte(o.Reveal())) == 1
}

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter so that every verb, including %x, %q and
// %v with flags, prints Redacted instead of reaching the unexported field.
func (Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (used by text encoders and map keys).
func (Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }
