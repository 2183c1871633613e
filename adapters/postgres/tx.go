package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// withTx runs fn in a transaction on a pooled connection. It commits when fn
// returns nil and rolls back when fn returns an error or panics (the panic is
// re-raised after the rollback), so no code path can leave a transaction, and
// the row locks it holds, open.
func withTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}
