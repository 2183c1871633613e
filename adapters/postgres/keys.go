package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.ReencryptionRepository = (*Repository)(nil)

// CountValuesByKey implements ports.ReencryptionRepository.
func (r *Repository) CountValuesByKey(ctx context.Context) ([]domain.KeyUsage, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.CountValuesByKey(ctx, r.pool)
	if err != nil {
		return nil, fmt.Errorf("count values by key: %w", interpretError(err, noEffect))
	}
	out := make([]domain.KeyUsage, len(rows))
	for i, row := range rows {
		out[i] = domain.KeyUsage{KeyID: domain.KeyID(row.KeyID), Values: row.ValueCount}
	}
	return out, nil
}

// AuthTokensByKey implements ports.ReencryptionRepository.
func (r *Repository) AuthTokensByKey(ctx context.Context, key domain.KeyID, afterID int64, limit int) ([]domain.SealedAuthTokens, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.AuthTokensByKey(ctx, r.pool, db.AuthTokensByKeyParams{
		KeyID: string(key), AfterID: afterID, MaxRows: int32(min(limit, 10_000)),
	})
	if err != nil {
		return nil, fmt.Errorf("auth tokens by key: %w", interpretError(err, noEffect))
	}
	out := make([]domain.SealedAuthTokens, len(rows))
	for i, row := range rows {
		out[i] = authTokensFromDB(row)
	}
	return out, nil
}

// OfflineTokensByKey implements ports.ReencryptionRepository.
func (r *Repository) OfflineTokensByKey(ctx context.Context, key domain.KeyID, afterUser domain.UserID, limit int) ([]domain.SealedOfflineToken, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.OfflineTokensByKey(ctx, r.pool, db.OfflineTokensByKeyParams{
		KeyID: string(key), AfterUser: string(afterUser), MaxRows: int32(min(limit, 10_000)),
	})
	if err != nil {
		return nil, fmt.Errorf("offline tokens by key: %w", interpretError(err, noEffect))
	}
	out := make([]domain.SealedOfflineToken, len(rows))
	for i, row := range rows {
		out[i] = offlineTokenFromDB(row)
	}
	return out, nil
}

// StoreReencryptedAuthTokens implements ports.ReencryptionRepository.
func (r *Repository) StoreReencryptedAuthTokens(ctx context.Context, rows []domain.SealedAuthTokens, audit ...domain.AuditEvent) ([]bool, error) {
	return storeEach(ctx, r, rows, audit, func(ctx context.Context, tx pgx.Tx, t domain.SealedAuthTokens) (int64, error) {
		n, err := r.q.StoreReencryptedAuthTokens(ctx, tx, db.StoreReencryptedAuthTokensParams{
			ID: t.ID, ExpectedVersion: t.Version, KeyID: string(t.KeyID),
			AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
		})
		if err != nil {
			return 0, fmt.Errorf("store re-encrypted auth tokens of user %q, provider %s: %w", t.User, t.Provider, interpretError(err, noEffect))
		}
		return n, nil
	})
}

// StoreReencryptedOfflineTokens implements ports.ReencryptionRepository.
func (r *Repository) StoreReencryptedOfflineTokens(ctx context.Context, rows []domain.SealedOfflineToken, audit ...domain.AuditEvent) ([]bool, error) {
	return storeEach(ctx, r, rows, audit, func(ctx context.Context, tx pgx.Tx, t domain.SealedOfflineToken) (int64, error) {
		n, err := r.q.StoreReencryptedOfflineToken(ctx, tx, db.StoreReencryptedOfflineTokenParams{
			UserID: string(t.User), ExpectedVersion: t.Version, CreatedAt: t.CreatedAt,
			KeyID: string(t.KeyID), Token: t.Token,
		})
		if err != nil {
			return 0, fmt.Errorf("store re-encrypted offline token of user %q: %w", t.User, interpretError(err, noEffect))
		}
		return n, nil
	})
}

// KeptTokensByKey implements ports.ReencryptionRepository.
func (r *Repository) KeptTokensByKey(ctx context.Context, key domain.KeyID, afterEvent int64, limit int) ([]domain.KeptTokens, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.KeptTokensByKey(ctx, r.pool, db.KeptTokensByKeyParams{
		KeyID: string(key), AfterID: afterEvent, MaxRows: int32(min(limit, 10_000)),
	})
	if err != nil {
		return nil, fmt.Errorf("kept tokens by key: %w", interpretError(err, noEffect))
	}
	out := make([]domain.KeptTokens, len(rows))
	for i, row := range rows {
		tokens := domain.SealedRevocation{KeyID: domain.KeyID(row.KeyID), AccessToken: row.AccessToken, RefreshToken: row.RefreshToken}
		out[i] = domain.KeptTokens{Event: row.ID, User: domain.UserID(row.UserID), Provider: domain.Provider(row.Provider), Tokens: tokens, Read: tokens}
	}
	return out, nil
}

// StoreReencryptedKeptTokens implements ports.ReencryptionRepository.
func (r *Repository) StoreReencryptedKeptTokens(ctx context.Context, rows []domain.KeptTokens, audit ...domain.AuditEvent) ([]bool, error) {
	return storeEach(ctx, r, rows, audit, func(ctx context.Context, tx pgx.Tx, t domain.KeptTokens) (int64, error) {
		n, err := r.q.StoreReencryptedKeptTokens(ctx, tx, db.StoreReencryptedKeptTokensParams{
			ID: t.Event, KeyID: string(t.Tokens.KeyID), AccessToken: t.Tokens.AccessToken, RefreshToken: t.Tokens.RefreshToken,
			ReadKeyID: string(t.Read.KeyID), ReadAccessToken: t.Read.AccessToken, ReadRefreshToken: t.Read.RefreshToken,
		})
		if err != nil {
			return 0, fmt.Errorf("store re-encrypted tokens kept by event %d (user %q, provider %s): %w", t.Event, t.User, t.Provider, interpretError(err, noEffect))
		}
		return n, nil
	})
}

// storeEach runs update once per row in one transaction under the lock
// timeout, with the batch's audit events (Count: the rows changed), and
// reports per row whether it changed one row (false: the row changed
// since it was read, a refresh holds it, or the event no longer keeps
// those tokens).
func storeEach[T any](ctx context.Context, r *Repository, rows []T, audit []domain.AuditEvent, update func(context.Context, pgx.Tx, T) (int64, error)) ([]bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	done := make([]bool, len(rows))
	err := withTxOptions(ctx, r.pool, r.lockedTx, func(tx pgx.Tx) error {
		for i, row := range rows {
			n, err := update(ctx, tx, row)
			if err != nil {
				return err
			}
			done[i] = n == 1
		}
		return r.recordInTx(ctx, tx, counted(audit, done))
	})
	if err != nil {
		return nil, fmt.Errorf("store re-encrypted values: %w", err)
	}
	return done, nil
}

// counted returns events with Count set to how many of done are true (the
// rows a batch wrote).
func counted(events []domain.AuditEvent, done []bool) []domain.AuditEvent {
	var n int64
	for _, ok := range done {
		if ok {
			n++
		}
	}
	out := make([]domain.AuditEvent, len(events))
	for i, e := range events {
		out[i] = e
		out[i].Count = n
	}
	return out
}

var _ ports.KeyInventory = (*Repository)(nil)

// KeyIDsInUse implements ports.KeyInventory with a loose index scan: one
// index probe per distinct key id and table (auth_tokens, offline_tokens,
// and events through its partial index events_by_key), not a read of
// every row.
func (r *Repository) KeyIDsInUse(ctx context.Context) ([]domain.KeyID, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	ids, err := r.q.KeyIDsInUse(ctx, r.pool)
	if err != nil {
		return nil, fmt.Errorf("key ids in use: %w", interpretError(err, noEffect))
	}
	out := make([]domain.KeyID, len(ids))
	for i, id := range ids {
		out[i] = domain.KeyID(id)
	}
	return out, nil
}

// CountValuesOfKeys implements ports.KeyInventory.
func (r *Repository) CountValuesOfKeys(ctx context.Context, ids []domain.KeyID) ([]domain.KeyUsage, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = string(id)
	}
	rows, err := r.q.CountValuesOfKeys(ctx, r.pool, keys)
	if err != nil {
		return nil, fmt.Errorf("count values of keys: %w", interpretError(err, noEffect))
	}
	out := make([]domain.KeyUsage, len(rows))
	for i, row := range rows {
		out[i] = domain.KeyUsage{KeyID: domain.KeyID(row.KeyID), Values: row.ValueCount}
	}
	return out, nil
}
