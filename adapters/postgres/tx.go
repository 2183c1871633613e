package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/db"
)

// withTx runs fn in a transaction on a pooled connection. It commits when fn
// returns nil and rolls back when fn returns an error or panics (the panic is
// re-raised after the rollback), so no code path can leave a transaction, and
// the row locks it holds, open.
//
// Errors from fn are returned as they are (its statements interpret their
// own, with noEffect: an uncommitted transaction changes nothing); a failed
// BEGIN changed nothing; a failed COMMIT may have committed unless the
// server said otherwise, and says so (domain.ErrOutcomeUnknown).
func withTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) (err error) {
	return withTxOptions(ctx, pool, pgx.TxOptions{}, fn)
}

// withTxOptions is withTx beginning the transaction with opts (such as
// Repository.lockedTx's BEGIN that also sets the lock timeout).
func withTxOptions(ctx context.Context, pool *pgxpool.Pool, opts pgx.TxOptions, fn func(tx pgx.Tx) error) (err error) {
	tx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", interpretError(err, noEffect))
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(ctx)
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback(ctx) // with ctx done, pgx closes the connection instead
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", interpretError(err, mayHaveApplied))
	}
	return nil
}

// withConn runs fn on a connection of its own, so that failing to get one
// (the pool exhausted until the deadline, the database refusing
// connections) is known to have sent nothing, whatever fn would have done.
func withConn(ctx context.Context, pool *pgxpool.Pool, fn func(conn db.DBTX) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection: %w", interpretError(err, noEffect))
	}
	defer conn.Release()
	return fn(conn)
}
