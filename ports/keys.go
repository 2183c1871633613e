package ports

import (
	"context"

	"github.com/tokenstore/tokenstore/domain"
)

// Keyring is the TokenCrypter as re-encryption sees it: it also names its
// keys, so the job knows which values are not yet under the primary key and
// which stored key ids the ring lacks.
type Keyring interface {
	TokenCrypter
	// PrimaryKeyID is the id of the key new values are encrypted with.
	PrimaryKeyID() domain.KeyID
	// Keys lists the ids of every key in the ring, primary first.
	Keys() []domain.KeyID
}

// ReencryptionRepository is what re-encryption (`tokenstore keys rotate`)
// needs from storage: find the values one key seals, a batch at a time, and
// swap in their re-encrypted form without overwriting anything written
// since they were read.
type ReencryptionRepository interface {
	// CountValuesByKey reports how many stored values each key id seals.
	CountValuesByKey(ctx context.Context) ([]domain.KeyUsage, error)
	// AuthTokensByKey returns up to limit rows sealed by key with ID > afterID,
	// in ID order (keyset pagination).
	AuthTokensByKey(ctx context.Context, key domain.KeyID, afterID int64, limit int) ([]domain.SealedAuthTokens, error)
	// OfflineTokensByKey returns up to limit offline tokens sealed by key for
	// users after afterUser, in user order.
	OfflineTokensByKey(ctx context.Context, key domain.KeyID, afterUser domain.UserID, limit int) ([]domain.SealedOfflineToken, error)
	// StoreReencryptedAuthTokens replaces the key id and ciphertexts of rows
	// in one short transaction. Each row is written only if its Version is
	// still the stored one and no refresh holds a lease on it; the result
	// says, row by row, which were. The audit events given (the batch's)
	// are stored in the same transaction, each with Count set to the
	// number of rows written; an audit store that refuses them fails the
	// call with domain.ErrAuditUnavailable and nothing is written.
	StoreReencryptedAuthTokens(ctx context.Context, rows []domain.SealedAuthTokens, audit ...domain.AuditEvent) ([]bool, error)
	// StoreReencryptedOfflineTokens is StoreReencryptedAuthTokens for
	// offline tokens: a row is written only if its Version and CreatedAt are
	// still the stored ones (a token deleted and stored anew restarts at
	// version 1).
	StoreReencryptedOfflineTokens(ctx context.Context, rows []domain.SealedOfflineToken, audit ...domain.AuditEvent) ([]bool, error)
}
