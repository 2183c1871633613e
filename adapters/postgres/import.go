package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.ImportRepository = (*Repository)(nil)

// InsertAuthTokensBatch implements ports.ImportRepository: one transaction,
// one round trip for the whole batch.
func (r *Repository) InsertAuthTokensBatch(ctx context.Context, rows []domain.SealedAuthTokens) ([]bool, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	params := make([]db.ImportAuthTokensParams, len(rows))
	for i, t := range rows {
		params[i] = db.ImportAuthTokensParams{
			UserID:                string(t.User),
			Provider:              string(t.Provider),
			KeyID:                 string(t.KeyID),
			AccessToken:           t.AccessToken,
			RefreshToken:          t.RefreshToken,
			AccessTokenExpiresAt:  expiryToDB(t.AccessExpiry),
			RefreshTokenExpiresAt: expiryToDB(t.RefreshExpiry),
		}
	}
	inserted := make([]bool, len(rows))
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		var firstErr error
		r.q.ImportAuthTokens(ctx, tx, params).QueryRow(func(i int, _ int64, err error) {
			inserted[i], err = importResult(err)
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("row %d of %d: %w", i+1, len(rows), err)
			}
		})
		return firstErr
	})
	if err != nil {
		return nil, fmt.Errorf("import auth tokens: %w", err)
	}
	return inserted, nil
}

// InsertOfflineTokensBatch implements ports.ImportRepository.
func (r *Repository) InsertOfflineTokensBatch(ctx context.Context, rows []domain.SealedOfflineToken) ([]bool, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	params := make([]db.ImportOfflineTokenParams, len(rows))
	for i, t := range rows {
		params[i] = db.ImportOfflineTokenParams{UserID: string(t.User), KeyID: string(t.KeyID), Token: t.Token}
	}
	inserted := make([]bool, len(rows))
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		var firstErr error
		r.q.ImportOfflineToken(ctx, tx, params).QueryRow(func(i int, _ int64, err error) {
			inserted[i], err = importResult(err)
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("row %d of %d: %w", i+1, len(rows), err)
			}
		})
		return firstErr
	})
	if err != nil {
		return nil, fmt.Errorf("import offline tokens: %w", err)
	}
	return inserted, nil
}

// importResult reads one statement of an import batch: a returned row means
// inserted, no row means the target already held that key. Anything else
// fails the batch (the transaction is rolled back by withTx).
func importResult(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	default:
		return false, interpretError(err)
	}
}
