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
func (r *Repository) InsertAuthTokensBatch(ctx context.Context, rows []domain.SealedAuthTokens, audit ...domain.AuditEvent) ([]bool, error) {
	params := make([]db.ImportAuthTokensParams, len(rows))
	for i, t := range rows {
		params[i] = upsertParams(t)
	}
	return r.insertBatch(ctx, "auth tokens", len(rows), audit, func(ctx context.Context, tx pgx.Tx, each func(int, error)) {
		r.q.ImportAuthTokens(ctx, tx, params).QueryRow(func(i int, _ int64, err error) { each(i, err) })
	})
}

// InsertOfflineTokensBatch implements ports.ImportRepository.
func (r *Repository) InsertOfflineTokensBatch(ctx context.Context, rows []domain.SealedOfflineToken, audit ...domain.AuditEvent) ([]bool, error) {
	params := make([]db.ImportOfflineTokenParams, len(rows))
	for i, t := range rows {
		params[i] = db.ImportOfflineTokenParams{UserID: string(t.User), KeyID: string(t.KeyID), Token: t.Token}
	}
	return r.insertBatch(ctx, "offline tokens", len(rows), audit, func(ctx context.Context, tx pgx.Tx, each func(int, error)) {
		r.q.ImportOfflineToken(ctx, tx, params).QueryRow(func(i int, _ int64, err error) { each(i, err) })
	})
}

// insertBatch runs send, which queues n inserts as one batch in tx and
// hands each statement's error to each, in one transaction with the
// batch's audit events (Count: the rows inserted). A row returned means
// inserted, no row means the target already held that key; any other
// error rolls the whole batch back.
func (r *Repository) insertBatch(ctx context.Context, what string, n int, audit []domain.AuditEvent, send func(ctx context.Context, tx pgx.Tx, each func(i int, err error))) ([]bool, error) {
	if n == 0 {
		return nil, nil
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	inserted := make([]bool, n)
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		var firstErr error
		send(ctx, tx, func(i int, err error) {
			inserted[i], err = importResult(err)
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("row %d of %d: %w", i+1, n, err)
			}
		})
		if firstErr != nil {
			return firstErr
		}
		return r.recordInTx(ctx, tx, counted(audit, inserted))
	})
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", what, err)
	}
	return inserted, nil
}

// importResult reads one statement of an import batch.
func importResult(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	default:
		return false, interpretError(err, noEffect)
	}
}
