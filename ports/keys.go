package ports

import (
	"context"
	"time"

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
// needs from storage: find the values one key seals (auth tokens, offline
// tokens, and deleted tokens events keep for upstream revocation), a batch
// at a time, and swap in their re-encrypted form without overwriting
// anything written since they were read.
type ReencryptionRepository interface {
	// CountValuesByKey reports how many stored values each key id seals:
	// an auth tokens row's one or two, an offline token, and an event's
	// one or two kept tokens.
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
	// KeptTokensByKey returns up to limit events' kept tokens (deleted
	// tokens awaiting upstream revocation) sealed by key, of events with
	// id > afterEvent, in id order; Read equals Tokens.
	KeptTokensByKey(ctx context.Context, key domain.KeyID, afterEvent int64, limit int) ([]domain.KeptTokens, error)
	// StoreReencryptedKeptTokens replaces events' kept tokens with their
	// Tokens in one short transaction, each only if the event still holds
	// Read: the delivery worker may have revoked and cleared them, or
	// retention removed the event, since they were read. The result and
	// the audit events are as for StoreReencryptedAuthTokens.
	StoreReencryptedKeptTokens(ctx context.Context, rows []domain.KeptTokens, audit ...domain.AuditEvent) ([]bool, error)
}

// KeyInventory is what the keyring check (start-up, /readyz, a SIGHUP
// reload) needs from storage: every key id that seals a stored value, cheap
// enough to ask on each readiness probe, and, for the ids a keyring lacks,
// how many values each seals.
type KeyInventory interface {
	// KeyIDsInUse lists the distinct key ids of stored values (kept
	// tokens included, see ReencryptionRepository.CountValuesByKey),
	// sorted.
	KeyIDsInUse(ctx context.Context) ([]domain.KeyID, error)
	// CountValuesOfKeys reports how many stored values each of ids seals
	// (ids that seal nothing are left out).
	CountValuesOfKeys(ctx context.Context, ids []domain.KeyID) ([]domain.KeyUsage, error)
}

// KeyringRegistry records which keyring each running instance holds, so
// that `keys retire` and `keys rotate` can see the whole fleet.
type KeyringRegistry interface {
	// RecordKeyring is a heartbeat: it stores k (Instance, Primary, Keys)
	// as live for ttl from now by the database's clock, and deletes the
	// rows of instances whose ttl ran out.
	RecordKeyring(ctx context.Context, k domain.InstanceKeyring, ttl time.Duration) error
	// ForgetKeyring deletes instance's row (it is stopping).
	ForgetKeyring(ctx context.Context, instance string) error
	// LiveKeyrings lists the instances whose ttl has not run out, by name.
	LiveKeyrings(ctx context.Context) ([]domain.InstanceKeyring, error)
}
