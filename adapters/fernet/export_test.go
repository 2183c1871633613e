package fernet

import (
	"fmt"

	fernetgo "github.com/fernet/fernet-go"

	"github.com/tokenstore/tokenstore/domain"
)

// Encrypt seals raw plaintext under the primary key: the counterpart of
// Decrypt, which production only needs for reading the replaced system's
// values, so it exists for the tests alone.
func (r *Keyring) Encrypt(plaintext domain.Secret) (domain.Ciphertext, error) {
	return r.Seal([]byte(plaintext.Reveal()))
}

// KeyOf reports which key of the ring sealed data, verifying the whole
// token, so tests can check what Decrypt without a key id relies on.
func (r *Keyring) KeyOf(data []byte) (domain.KeyID, error) {
	if err := checkFormat(data); err != nil {
		return "", err
	}
	for _, k := range r.keys {
		if fernetgo.VerifyAndDecrypt(data, noTTL, []*fernetgo.Key{k.k}) != nil {
			return k.id, nil
		}
	}
	return "", fmt.Errorf("%w: ciphertext is not valid under any of the %d keys in the keyring", domain.ErrDecrypt, len(r.keys))
}
