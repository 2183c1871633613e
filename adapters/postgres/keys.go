package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.KeyRepository = (*Repository)(nil)

// CountValuesByKey implements ports.KeyRepository.
func (r *Repository) CountValuesByKey(ctx context.Context) ([]domain.KeyUsage, error) {
	rows, err := r.q.CountValuesByKey(ctx, r.pool)
	if err != nil {
		return nil, fmt.Errorf("count values by key: %w", interpretError(err))
	}
	out := make([]domain.KeyUsage, len(rows))
	for i, row := range rows {
		out[i] = domain.KeyUsage{KeyID: domain.KeyID(row.KeyID), Values: row.ValueCount}
	}
	return out, nil
}

// AuthTokensByKey implements ports.KeyRepository.
func (r *Repository) AuthTokensByKey(ctx context.Context, key domain.KeyID, afterID int64, limit int) ([]domain.SealedAuthTokens, error) {
	rows, err := r.q.AuthTokensByKey(ctx, r.pool, db.AuthTokensByKeyParams{
		KeyID: string(key), AfterID: afterID, MaxRows: int32(min(limit, 10_000)),
	})
	if err != nil {
		return nil, fmt.Errorf("auth tokens by key: %w", interpretError(err))
	}
	out := make([]domain.SealedAuthTokens, len(rows))
	for i, row := range rows {
		out[i] = authTokensFromDB(row)
	}
	return out, nil
}

// OfflineTokensByKey implements ports.KeyRepository.
func (r *Repository) OfflineTokensByKey(ctx context.Context, key domain.KeyID, afterUser domain.UserID, limit int) ([]domain.SealedOfflineToken, error) {
	rows, err := r.q.OfflineTokensByKey(ctx, r.pool, db.OfflineTokensByKeyParams{
		KeyID: string(key), AfterUser: string(afterUser), MaxRows: int32(min(limit, 10_000)),
	})
	if err != nil {
		return nil, fmt.Errorf("offline tokens by key: %w", interpretError(err))
	}
	out := make([]domain.SealedOfflineToken, len(rows))
	for i, row := range rows {
		out[i] = offlineTokenFromDB(row)
	}
	return out, nil
}

// Rekey implements ports.KeyRepository.
func (r *Repository) Rekey(ctx context.Context, auth []domain.SealedAuthTokens, offline []domain.SealedOfflineToken) ([]bool, []bool, error) {
	authDone := make([]bool, len(auth))
	offlineDone := make([]bool, len(offline))
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		if err := r.q.SetLockTimeout(ctx, tx, r.lockTimeout); err != nil {
			return interpretError(err)
		}
		for i, t := range auth {
			n, err := r.q.RekeyAuthTokens(ctx, tx, db.RekeyAuthTokensParams{
				ID: t.ID, ExpectedVersion: t.Version, KeyID: string(t.KeyID),
				AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
			})
			if err != nil {
				return fmt.Errorf("rekey auth tokens of user %q, provider %s: %w", t.User, t.Provider, interpretError(err))
			}
			authDone[i] = n == 1
		}
		for i, t := range offline {
			n, err := r.q.RekeyOfflineToken(ctx, tx, db.RekeyOfflineTokenParams{
				UserID: string(t.User), ExpectedVersion: t.Version, CreatedAt: t.CreatedAt,
				KeyID: string(t.KeyID), Token: t.Token,
			})
			if err != nil {
				return fmt.Errorf("rekey offline token of user %q: %w", t.User, interpretError(err))
			}
			offlineDone[i] = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("rekey: %w", err)
	}
	return authDone, offlineDone, nil
}
