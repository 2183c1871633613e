package openhands

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// The queries are plain SQL rather than sqlc: sqlc compiles queries against
// tokenstore's own migrations (sqlc.yaml's schema), and declaring OpenHands'
// tables there would make them part of tokenstore's schema. These are two
// read-only SELECTs over a foreign schema that tokenstore does not own.
//
// Both walk the table by its primary key (keyset pagination): each batch is
// an index range scan, however deep into the table it starts, and a row
// deleted or added behind the cursor shifts nothing (OFFSET would skip or
// repeat rows).
const (
	// OpenHands: enterprise/storage/auth_tokens.py (id is an identity column).
	selectAuthTokens = `
SELECT id, keycloak_user_id, identity_provider, access_token, refresh_token,
       access_token_expires_at, refresh_token_expires_at
FROM auth_tokens
WHERE id > $1::bigint
ORDER BY id
LIMIT $2`

	// OpenHands: enterprise/storage/stored_offline_token.py (user_id is the
	// primary key). The first page has no lower bound, so that no user id,
	// not even an empty one, sorts before the cursor's start.
	selectOfflineTokensFirst = `
SELECT user_id, offline_token
FROM offline_tokens
ORDER BY user_id
LIMIT $1`
	selectOfflineTokensAfter = `
SELECT user_id, offline_token
FROM offline_tokens
WHERE user_id > $1
ORDER BY user_id
LIMIT $2`

	// checkSchema fails unless both tables have every column read above.
	checkSchema = `
SELECT (SELECT count(*) FROM (
            SELECT id, keycloak_user_id, identity_provider, access_token, refresh_token,
                   access_token_expires_at, refresh_token_expires_at
            FROM auth_tokens LIMIT 0) a),
       (SELECT count(*) FROM (
            SELECT user_id, offline_token FROM offline_tokens LIMIT 0) o)`
)

var _ ports.ImportSource = (*Source)(nil)

// Source reads an OpenHands database for an import (ports.ImportSource).
type Source struct {
	pool *pgxpool.Pool
	dec  *decoder
}

// NewSource reads from pool, decrypting with the key OpenHands derived from
// jwtSecret. The caller owns the pool; Connect makes a suitable one.
func NewSource(pool *pgxpool.Pool, jwtSecret domain.Secret) (*Source, error) {
	dec, err := newDecoder(jwtSecret)
	if err != nil {
		return nil, err
	}
	return &Source{pool: pool, dec: dec}, nil
}

// Connect opens a small pool on the OpenHands database and checks it
// answers. Its sessions are read-only (default_transaction_read_only), so
// an import cannot change the source even by mistake. Errors name the
// server, never the connection string (it may hold a password).
func Connect(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("the OpenHands database URL is not a valid PostgreSQL connection string " +
			"(expected postgres://user:password@host:5432/dbname)")
	}
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("OpenHands database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		cc := cfg.ConnConfig
		return nil, fmt.Errorf("connect to the OpenHands database at %s:%d database %q: %w", cc.Host, cc.Port, cc.Database, err)
	}
	return pool, nil
}

// Check verifies the database has OpenHands' auth_tokens and offline_tokens
// tables with the columns an import reads, so a wrong database fails before
// anything is imported.
func (s *Source) Check(ctx context.Context) error {
	var a, o int64
	if err := s.pool.QueryRow(ctx, checkSchema).Scan(&a, &o); err != nil {
		return sourceError("check the OpenHands schema", err)
	}
	return nil
}

// AuthTokenBatches yields the auth_tokens rows in id order, at most size at
// a time, each decrypted or carrying the reason it could not be. A read
// error ends the sequence with that error.
func (s *Source) AuthTokenBatches(ctx context.Context, size int) iter.Seq2[[]ports.ImportedAuthTokens, error] {
	size = max(size, 1)
	return func(yield func([]ports.ImportedAuthTokens, error) bool) {
		after := int64(math.MinInt64)
		for {
			rows, err := s.readAuthTokens(ctx, after, size)
			if err != nil {
				yield(nil, err)
				return
			}
			if len(rows) == 0 {
				return
			}
			after = rows[len(rows)-1].ID
			batch := make([]ports.ImportedAuthTokens, len(rows))
			for i, row := range rows {
				batch[i] = s.dec.authTokens(row)
			}
			if !yield(batch, nil) || len(rows) < size {
				return
			}
		}
	}
}

// OfflineTokenBatches yields the offline_tokens rows in user_id order, at
// most size at a time; see AuthTokenBatches.
func (s *Source) OfflineTokenBatches(ctx context.Context, size int) iter.Seq2[[]ports.ImportedOfflineToken, error] {
	size = max(size, 1)
	return func(yield func([]ports.ImportedOfflineToken, error) bool) {
		var after *string
		for {
			rows, err := s.readOfflineTokens(ctx, after, size)
			if err != nil {
				yield(nil, err)
				return
			}
			if len(rows) == 0 {
				return
			}
			last := rows[len(rows)-1].User
			after = &last
			batch := make([]ports.ImportedOfflineToken, len(rows))
			for i, row := range rows {
				batch[i] = s.dec.offlineToken(row)
			}
			if !yield(batch, nil) || len(rows) < size {
				return
			}
		}
	}
}

func (s *Source) readAuthTokens(ctx context.Context, after int64, limit int) ([]authRow, error) {
	rows, err := s.pool.Query(ctx, selectAuthTokens, after, limit)
	if err != nil {
		return nil, sourceError("read OpenHands auth_tokens", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (authRow, error) {
		var a authRow
		err := r.Scan(&a.ID, &a.User, &a.Provider, &a.AccessToken, &a.RefreshToken, &a.AccessExpires, &a.RefreshExpires)
		return a, err
	})
	if err != nil {
		return nil, sourceError("read OpenHands auth_tokens", err)
	}
	return out, nil
}

func (s *Source) readOfflineTokens(ctx context.Context, after *string, limit int) ([]offlineRow, error) {
	var rows pgx.Rows
	var err error
	if after == nil {
		rows, err = s.pool.Query(ctx, selectOfflineTokensFirst, limit)
	} else {
		rows, err = s.pool.Query(ctx, selectOfflineTokensAfter, *after, limit)
	}
	if err != nil {
		return nil, sourceError("read OpenHands offline_tokens", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (offlineRow, error) {
		var o offlineRow
		err := r.Scan(&o.User, &o.Token)
		return o, err
	})
	if err != nil {
		return nil, sourceError("read OpenHands offline_tokens", err)
	}
	return out, nil
}

// PostgreSQL error codes that mean "this is not an OpenHands database".
const (
	codeUndefinedTable  = "42P01"
	codeUndefinedColumn = "42703"
)

// sourceError adds a hint when the database lacks OpenHands' tables. Driver
// errors name tables and columns, never row values.
func sourceError(what string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == codeUndefinedTable || pgErr.Code == codeUndefinedColumn) {
		return fmt.Errorf("%s: %w (is this an OpenHands enterprise database?)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
