package ports

import (
	"context"

	"github.com/tokenstore/tokenstore/domain"
)

// KeyRepository is what key rotation needs from storage: find the values one
// key seals, a batch at a time, and swap in their re-encrypted form without
// overwriting anything written since they were read.
type KeyRepository interface {
	// CountValuesByKey reports how many stored values each key id seals.
	CountValuesByKey(ctx context.Context) ([]domain.KeyUsage, error)
	// AuthTokensByKey returns up to limit rows sealed by key with ID > afterID,
	// in ID order (keyset pagination).
	AuthTokensByKey(ctx context.Context, key domain.KeyID, afterID int64, limit int) ([]domain.SealedAuthTokens, error)
	// OfflineTokensByKey returns up to limit offline tokens sealed by key for
	// users after afterUser, in user order.
	OfflineTokensByKey(ctx context.Context, key domain.KeyID, afterUser domain.UserID, limit int) ([]domain.SealedOfflineToken, error)
	// Rekey stores re-encrypted rows in one short transaction. Each row is
	// written only if its Version is still the stored one (and, for auth
	// tokens, no refresh holds a lease on it); the results say which were.
	Rekey(ctx context.Context, auth []domain.SealedAuthTokens, offline []domain.SealedOfflineToken) (authDone, offlineDone []bool, err error)
}
