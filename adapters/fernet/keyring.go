package fernet

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"

	fernetgo "github.com/fernet/fernet-go"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.Keyring = (*Keyring)(nil)

// noTTL: tokens are stored for as long as the provider lets them live;
// expiry is the domain's business (domain.Expiry), not the envelope's.
const noTTL = 0

// Fernet token layout (https://github.com/fernet/spec): version, timestamp,
// IV, at least one AES block of ciphertext, HMAC-SHA256.
const (
	fernetVersion   = 0x80
	fernetOverhead  = 1 + 8 + aes.BlockSize + sha256.Size
	fernetMinLength = fernetOverhead + aes.BlockSize
)

// Keyring encrypts with its primary key and decrypts with any of its keys,
// so that making a new key primary never makes existing rows unreadable. It
// is immutable: a change of keys builds a new Keyring.
type Keyring struct {
	keys []Key           // primary first
	all  []*fernetgo.Key // the same, for values without a key id
	byID map[domain.KeyID]*fernetgo.Key
}

// NewKeyring builds a ring whose primary encrypts and whose older keys only
// decrypt. A key listed twice is rejected: it would mean the configuration
// is not what its author thinks (usually a key change that forgot to replace
// the primary).
func NewKeyring(primary Key, older ...Key) (*Keyring, error) {
	all := append([]Key{primary}, older...)
	r := &Keyring{keys: all, byID: make(map[domain.KeyID]*fernetgo.Key, len(all))}
	for i, k := range all {
		if k.isZero() {
			return nil, fmt.Errorf("fernet keyring: %s is the zero Key: "+
				"build keys with ParseKey, GenerateKey or KeyFromJWTSecret", position(i))
		}
		if prev, dup := r.byID[k.id]; dup {
			first := 0
			for j := range i {
				if all[j].id == k.id {
					first = j
					break
				}
			}
			if *prev == *k.k {
				return nil, fmt.Errorf("fernet keyring: duplicate key %s: %s and %s are the same key; list each key once",
					k.id, position(first), position(i))
			}
			return nil, fmt.Errorf("fernet keyring: %s and %s are different keys with the same id %s; generate a new key",
				position(first), position(i), k.id)
		}
		r.byID[k.id] = k.k
		r.all = append(r.all, k.k)
	}
	return r, nil
}

func position(i int) string {
	if i == 0 {
		return "the primary key"
	}
	return fmt.Sprintf("older key #%d", i)
}

// PrimaryKeyID is the id new ciphertexts carry.
func (r *Keyring) PrimaryKeyID() domain.KeyID { return r.keys[0].id }

// Keys lists the ring's key ids, primary first, for `tokenstore keys list`
// and for finding rows still sealed by an older key.
func (r *Keyring) Keys() []domain.KeyID {
	ids := make([]domain.KeyID, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.id
	}
	return ids
}

// Seal encrypts msg under the primary key (ports.TokenCrypter). It neither
// keeps nor clears msg.
func (r *Keyring) Seal(msg []byte) (domain.Ciphertext, error) {
	primary := r.keys[0]
	tok, err := fernetgo.EncryptAndSign(msg, primary.k)
	if err != nil {
		return domain.Ciphertext{}, fmt.Errorf("encrypt with key %s: %w", primary.id, err)
	}
	return domain.Ciphertext{KeyID: primary.id, Data: tok}, nil
}

// Decrypt opens c, a Fernet token of raw bytes (as the replaced system
// stored them), with the key c.KeyID names, so a missing key is reported as
// such instead of as a corrupt value. An empty KeyID (legacy imports) tries
// every key. Every failure wraps domain.ErrDecrypt.
func (r *Keyring) Decrypt(c domain.Ciphertext) (domain.Secret, error) {
	msg, err := r.Open(c)
	if err != nil {
		return domain.Secret{}, err
	}
	s := domain.NewSecret(string(msg))
	clear(msg)
	return s, nil
}

// Open is Decrypt's bytes (ports.TokenCrypter): the plaintext in a new
// buffer the caller owns and clears. Every failure wraps domain.ErrDecrypt
// and names the key, never the content.
func (r *Keyring) Open(c domain.Ciphertext) ([]byte, error) {
	if err := checkFormat(c.Data); err != nil {
		return nil, err
	}
	if c.KeyID == "" {
		msg := fernetgo.VerifyAndDecrypt(c.Data, noTTL, r.all)
		if msg == nil {
			return nil, fmt.Errorf("%w: ciphertext without a key id is not valid under any of the %d keys in the keyring "+
				"(tampered, truncated or encrypted with a key the ring lacks)", domain.ErrDecrypt, len(r.keys))
		}
		return msg, nil
	}
	k, ok := r.byID[c.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: unknown key id %s: add the key to the keyring", domain.ErrDecrypt, showID(c.KeyID))
	}
	msg := fernetgo.VerifyAndDecrypt(c.Data, noTTL, []*fernetgo.Key{k})
	if msg == nil {
		return nil, fmt.Errorf("%w: ciphertext is not valid under key %s "+
			"(tampered, truncated or encrypted with another key)", domain.ErrDecrypt, c.KeyID)
	}
	return msg, nil
}

// checkFormat rejects data that cannot be a Fernet token before fernet-go
// sees it: VerifyAndDecrypt says only "nil", and it indexes the payload
// without checking its length, so a short token with a valid HMAC would
// panic inside it.
func checkFormat(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: ciphertext is empty", domain.ErrDecrypt)
	}
	raw := make([]byte, base64.URLEncoding.DecodedLen(len(data)))
	n, err := base64.URLEncoding.Decode(raw, data)
	if err != nil {
		if looksWrapped(data) {
			return fmt.Errorf("%w: ciphertext is a base64-wrapped Fernet token (legacy format): "+
				"unwrap it with UnwrapLegacy", domain.ErrDecrypt)
		}
		return fmt.Errorf("%w: ciphertext is not a Fernet token: not URL-safe base64 "+
			"(truncated or not encrypted)", domain.ErrDecrypt)
	}
	raw = raw[:n]
	switch {
	case raw[0] != fernetVersion && looksWrapped(data):
		return fmt.Errorf("%w: ciphertext is a base64-wrapped Fernet token (legacy format): "+
			"unwrap it with UnwrapLegacy", domain.ErrDecrypt)
	case raw[0] != fernetVersion:
		return fmt.Errorf("%w: ciphertext is not a Fernet token (version byte 0x%02x, want 0x%02x)",
			domain.ErrDecrypt, raw[0], fernetVersion)
	case n < fernetMinLength:
		return fmt.Errorf("%w: ciphertext is %d bytes, shorter than the smallest Fernet token (%d): truncated",
			domain.ErrDecrypt, n, fernetMinLength)
	case (n-fernetOverhead)%aes.BlockSize != 0:
		return fmt.Errorf("%w: ciphertext is %d bytes, not a whole number of AES blocks: truncated or padded",
			domain.ErrDecrypt, n)
	}
	return nil
}

// String summarises the ring without material, for logs and panics.
func (r *Keyring) String() string {
	if r == nil || len(r.keys) == 0 {
		return "fernet-keyring(empty)"
	}
	return fmt.Sprintf("fernet-keyring(primary=%s, keys=%d)", r.keys[0].id, len(r.keys))
}

// GoString keeps %#v from walking into the keys.
func (r *Keyring) GoString() string { return r.String() }

// Format makes every verb print the summary.
func (r *Keyring) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LogValue keeps slog from reflecting over the ring.
func (r *Keyring) LogValue() slog.Value { return slog.StringValue(r.String()) }

// showID prints a key id from storage as is when it has the shape this
// package produces, and quoted otherwise, so a corrupt column cannot forge
// log lines.
func showID(id domain.KeyID) string {
	if len(id) == 2*keyIDBytes {
		ok := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			ok = ok && (c >= '0' && c <= '9' || c >= 'a' && c <= 'f')
		}
		if ok {
			return string(id)
		}
	}
	return fmt.Sprintf("%q", string(id))
}
