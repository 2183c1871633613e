package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.KeyringRegistry = (*Repository)(nil)

// RecordKeyring implements ports.KeyringRegistry: the instance's row is
// upserted, then expired rows are deleted (two statements: a failure of
// the second leaves only rows LiveKeyrings already ignores).
func (r *Repository) RecordKeyring(ctx context.Context, k domain.InstanceKeyring, ttl time.Duration) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	ids := make([]string, len(k.Keys))
	for i, id := range k.Keys {
		ids[i] = string(id)
	}
	err := r.q.RecordKeyring(ctx, r.pool, db.RecordKeyringParams{
		Instance: k.Instance, PrimaryKeyID: string(k.Primary), KeyIds: ids, TtlMs: max(ttl.Milliseconds(), 1),
	})
	if err != nil {
		return fmt.Errorf("record the keyring of instance %q: %w", k.Instance, interpretError(err, mayHaveApplied))
	}
	if _, err := r.q.DeleteExpiredKeyrings(ctx, r.pool); err != nil {
		return fmt.Errorf("delete expired instance keyrings: %w", interpretError(err, mayHaveApplied))
	}
	return nil
}

// ForgetKeyring implements ports.KeyringRegistry.
func (r *Repository) ForgetKeyring(ctx context.Context, instance string) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if err := r.q.ForgetKeyring(ctx, r.pool, instance); err != nil {
		return fmt.Errorf("forget the keyring of instance %q: %w", instance, interpretError(err, mayHaveApplied))
	}
	return nil
}

// LiveKeyrings implements ports.KeyringRegistry.
func (r *Repository) LiveKeyrings(ctx context.Context) ([]domain.InstanceKeyring, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.LiveKeyrings(ctx, r.pool)
	if err != nil {
		return nil, fmt.Errorf("live instance keyrings: %w", interpretError(err, noEffect))
	}
	out := make([]domain.InstanceKeyring, len(rows))
	for i, row := range rows {
		keys := make([]domain.KeyID, len(row.KeyIds))
		for j, id := range row.KeyIds {
			keys[j] = domain.KeyID(id)
		}
		out[i] = domain.InstanceKeyring{Instance: row.Instance, Primary: domain.KeyID(row.PrimaryKeyID), Keys: keys,
			HeartbeatAt: row.HeartbeatAt, ExpiresAt: row.ExpiresAt}
	}
	return out, nil
}
