package fernet

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.Keyring = (*SwappableKeyring)(nil)

// SwappableKeyring is the keyring a running server uses: a Keyring that a
// reload (SIGHUP) replaces as a whole. Every call reads the current Keyring
// once, through an atomic pointer, so a reader sees the old ring or the new
// one, never a mix; a caller that needs two calls to agree (two values of
// one row sealed by the same primary) takes Current once and uses it.
type SwappableKeyring struct {
	current atomic.Pointer[Keyring]
}

// NewSwappableKeyring starts with k, which must not be nil.
func NewSwappableKeyring(k *Keyring) *SwappableKeyring {
	s := &SwappableKeyring{}
	s.current.Store(k)
	return s
}

// NewSwappableKeyringFromConfig is NewKeyringFromConfig, swappable.
func NewSwappableKeyringFromConfig(cfg Config) (*SwappableKeyring, error) {
	k, err := NewKeyringFromConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewSwappableKeyring(k), nil
}

// Current is the keyring in use now.
func (s *SwappableKeyring) Current() *Keyring { return s.current.Load() }

// Swap installs k (not nil) for every later call and returns the one it
// replaced.
func (s *SwappableKeyring) Swap(k *Keyring) *Keyring { return s.current.Swap(k) }

// Seal implements ports.TokenCrypter with the current keyring.
func (s *SwappableKeyring) Seal(msg []byte) (domain.Ciphertext, error) {
	return s.Current().Seal(msg)
}

// Open implements ports.TokenCrypter with the current keyring.
func (s *SwappableKeyring) Open(c domain.Ciphertext) ([]byte, error) {
	return s.Current().Open(c)
}

// PrimaryKeyID is the current keyring's primary key id.
func (s *SwappableKeyring) PrimaryKeyID() domain.KeyID { return s.Current().PrimaryKeyID() }

// Keys lists the current keyring's key ids, primary first.
func (s *SwappableKeyring) Keys() []domain.KeyID { return s.Current().Keys() }

// String summarises the current ring without material.
func (s *SwappableKeyring) String() string { return s.Current().String() }

// GoString keeps %#v from walking into the keys.
func (s *SwappableKeyring) GoString() string { return s.String() }

// Format makes every verb print the summary.
func (s *SwappableKeyring) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue keeps slog from reflecting over the ring.
func (s *SwappableKeyring) LogValue() slog.Value { return slog.StringValue(s.String()) }
