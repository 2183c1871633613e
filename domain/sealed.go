package domain

import "time"

// KeyID names an encryption key. It is derived from the key material by a
// one-way function, so every instance computes the same id for the same key
// and the id reveals nothing about the key.
type KeyID string

// Ciphertext is token material sealed by one key.
type Ciphertext struct {
	KeyID KeyID
	Data  []byte
}

// SealedAuthTokens is AuthTokens as stored: both tokens encrypted under the
// same key (KeyID). Storage sees only this type, never plaintext.
type SealedAuthTokens struct {
	User          UserID
	Provider      Provider
	KeyID         KeyID
	AccessToken   []byte
	RefreshToken  []byte // nil: no refresh token
	AccessExpiry  Expiry
	RefreshExpiry Expiry

	// Set by storage.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// SealedOfflineToken is an OfflineToken as stored.
type SealedOfflineToken struct {
	User  UserID
	KeyID KeyID
	Token []byte

	// Set by storage.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ProviderTokenInfo describes stored tokens without any token material, for
// listing a user's providers.
type ProviderTokenInfo struct {
	Provider        Provider
	AccessExpiry    Expiry
	RefreshExpiry   Expiry
	HasRefreshToken bool
	UpdatedAt       time.Time
}
