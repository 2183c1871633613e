package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// DefaultLockTimeout bounds how long UpdateAuthTokens waits for a row another
// transaction has locked. The replaced system had no bound: one hung holder
// froze every request for that user.
const DefaultLockTimeout = 5 * time.Second

// DefaultTimeout bounds every database call (Config.Timeout): a call that
// has not finished by then fails with domain.ErrStorageUnavailable, well
// before an HTTP write timeout could cut the answer off.
const DefaultTimeout = 6 * time.Second

// ClientGrace is how much longer than the server's statement_timeout the
// client waits for an answer: a live server reports its own timeout first
// (the statement is known to have failed), and only a server that does not
// answer at all is cut off by the client (its outcome is then unknown).
const ClientGrace = time.Second

// Options tune a Repository. The zero value uses the defaults.
type Options struct {
	// LockTimeout: how long a unit of work waits for a locked row before
	// failing with domain.ErrBusy. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Timeout: the server's statement timeout; each call, from acquiring a
	// connection to COMMIT, has Timeout+ClientGrace. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Events chooses the outbox events the writes insert, each in its
	// write's transaction (domain.EventPolicy; the zero value: every kind
	// but tokens.refreshed).
	Events domain.EventPolicy
	// PutsAlone turns the group commit of PutAuthTokens off: each PUT is a
	// statement of its own, as before group commit. For comparisons
	// (tests/storage BenchmarkCoalescedPuts); no setting sets it.
	PutsAlone bool
}

// Repository stores sealed tokens in PostgreSQL: it is both the
// ports.TokenRepository and the worker's ports.RefreshQueue.
type Repository struct {
	pool *pgxpool.Pool
	q    *db.Queries
	// lockedTx begins a transaction whose lock waits end after the lock
	// timeout (SQLSTATE 55P03, domain.ErrBusy) instead of hanging the
	// caller: BEGIN and SET LOCAL lock_timeout in one round trip (the
	// simple query protocol takes both; SET LOCAL ends with the
	// transaction, so nothing leaks into the pooled session, and it holds
	// through PgBouncer in transaction mode).
	lockedTx  pgx.TxOptions
	timeout   time.Duration
	events    domain.EventPolicy
	putsAlone bool
	puts      putGroup // PutAuthTokens' group commit
}

var (
	_ ports.TokenRepository = (*Repository)(nil)
	_ ports.RefreshQueue    = (*Repository)(nil)
	_ ports.DatabaseClock   = (*Repository)(nil)
)

// New returns a Repository on pool. The caller owns the pool.
func New(pool *pgxpool.Pool, opts Options) *Repository {
	lt := opts.LockTimeout
	if lt <= 0 {
		lt = DefaultLockTimeout
	}
	return &Repository{
		pool:      pool,
		q:         db.New(),
		lockedTx:  pgx.TxOptions{BeginQuery: "BEGIN; " + SetLockTimeoutSQL(lt)},
		timeout:   cmp.Or(max(opts.Timeout, 0), DefaultTimeout),
		events:    opts.Events,
		putsAlone: opts.PutsAlone,
	}
}

// SetLockTimeoutSQL is the statement that bounds a transaction's lock
// waits to d (whole milliseconds, at least 1): a wait longer than that
// fails with SQLSTATE 55P03 instead of hanging the caller. The repository
// sends it with BEGIN, in one round trip.
func SetLockTimeoutSQL(d time.Duration) string {
	return fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", max(d.Milliseconds(), 1))
}

// bound gives one call its deadline. The client-side deadline also covers a
// frozen server, where the server's statement_timeout never fires.
func (r *Repository) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout+ClientGrace)
}

// PutAuthTokens implements ports.TokenRepository. Concurrent calls are
// committed together (group commit, coalesce.go): alone, a PUT is one
// statement that upserts the row and inserts its event (UpsertAuthTokens),
// in a transaction only when audit events must commit with it; with
// company, it is a row of one UpsertAuthTokensBatch that writes the rows,
// their events and their audit events and commits by itself. Either way the
// call returns once its row committed (or failed), with its own version
// and timestamps, and a row the database refuses fails only its own call.
func (r *Repository) PutAuthTokens(ctx context.Context, t domain.SealedAuthTokens, audit ...domain.AuditEvent) (domain.SealedAuthTokens, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var out putOutcome
	if r.putsAlone {
		out = r.putAlone(ctx, t, audit)
	} else {
		out = r.put(ctx, t, audit)
	}
	if out.err != nil {
		return domain.SealedAuthTokens{}, fmt.Errorf("store auth tokens: %w", out.err)
	}
	t.Version, t.CreatedAt, t.UpdatedAt = out.version, out.created, out.updated
	return t, nil
}

// upsertWithEvent is p with the event kinds the policy writes for a PUT.
func upsertWithEvent(p db.ImportAuthTokensParams, policy domain.EventPolicy) db.UpsertAuthTokensParams {
	u := db.UpsertAuthTokensParams{
		UserID: p.UserID, Provider: p.Provider, KeyID: p.KeyID, AccessToken: p.AccessToken, RefreshToken: p.RefreshToken,
		AccessTokenExpiresAt: p.AccessTokenExpiresAt, RefreshTokenExpiresAt: p.RefreshTokenExpiresAt, AccessTokenObtainedAt: p.AccessTokenObtainedAt,
	}
	u.RecoveredKind, u.StoredKind, u.RecordRecovered, u.RecordStored = putEvents(policy)
	return u
}

// putEvents are the event parameters of both PUT statements (UpsertAuthTokens,
// UpsertAuthTokensBatch): the kinds of a PUT's event, and whether policy
// writes each.
func putEvents(policy domain.EventPolicy) (recoveredKind, storedKind string, recordRecovered, recordStored bool) {
	return string(domain.EventTokensRecovered), string(domain.EventTokensStored),
		policy.Allows(domain.EventTokensRecovered), policy.Allows(domain.EventTokensStored)
}

// GetAuthTokens implements ports.TokenRepository.
func (r *Repository) GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	row, err := r.q.GetAuthTokens(ctx, r.pool, db.GetAuthTokensParams{UserID: string(user), Provider: string(provider)})
	if err != nil {
		return domain.SealedAuthTokens{}, fmt.Errorf("load auth tokens: %w", interpretError(err, noEffect))
	}
	return authTokensFromDB(row), nil
}

// UpdateAuthTokens implements ports.TokenRepository. The row lock is held
// only while fn runs; fn must not wait on anything slow. fn's audit events
// are inserted after the row, in its transaction.
func (r *Repository) UpdateAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider,
	fn func(current domain.SealedAuthTokens, now time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error),
) (domain.SealedAuthTokens, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var result domain.SealedAuthTokens
	err := withTxOptions(ctx, r.pool, r.lockedTx, func(tx pgx.Tx) error {
		row, err := r.q.GetAuthTokensForUpdate(ctx, tx, db.GetAuthTokensForUpdateParams{
			UserID: string(user), Provider: string(provider),
		})
		if err != nil {
			return fmt.Errorf("lock auth tokens: %w", interpretError(err, noEffect))
		}
		current := authTokensFromDB(row.AuthToken)
		next, events, err := fn(current, row.DbNow)
		if err != nil {
			return err
		}
		if next == nil {
			result = current
			return r.recordInTx(ctx, tx, events)
		}
		updated, err := r.q.UpdateAuthTokens(ctx, tx, db.UpdateAuthTokensParams{
			UserID:                string(user),
			Provider:              string(provider),
			ExpectedVersion:       current.Version,
			KeyID:                 string(next.KeyID),
			AccessToken:           next.AccessToken,
			RefreshToken:          next.RefreshToken,
			AccessTokenExpiresAt:  expiryToDB(next.AccessExpiry),
			RefreshTokenExpiresAt: expiryToDB(next.RefreshExpiry),
			AccessTokenObtainedAt: optTime(next.AccessObtainedAt),
			RefreshLeaseOwner:     optString(next.Refresh.LeaseOwner),
			RefreshLeaseUntil:     optTime(next.Refresh.LeaseUntil),
			ReauthRequired:        next.Refresh.ReauthRequired,
			RefreshError:          optString(next.Refresh.LastError),
			NextRefreshAt:         optTime(next.Refresh.NextAttemptAt),
			AmbiguousRetries:      int32(min(max(next.Refresh.AmbiguousRetries, 0), math.MaxInt32)),
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("update auth tokens: %w", domain.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("update auth tokens: %w", interpretError(err, noEffect))
		}
		result = *next
		result.User, result.Provider = current.User, current.Provider
		result.Version, result.CreatedAt, result.UpdatedAt = updated.Version, updated.CreatedAt, updated.UpdatedAt
		changes := domain.UpdateEvents(current, result)
		for i := range changes {
			changes[i].User, changes[i].Provider = user, provider
		}
		if err := r.insertEvents(ctx, tx, changes); err != nil {
			return err
		}
		return r.recordInTx(ctx, tx, events)
	})
	if err != nil {
		return domain.SealedAuthTokens{}, err
	}
	return result, nil
}

// ClaimDueRefreshes implements ports.RefreshQueue.
func (r *Repository) ClaimDueRefreshes(ctx context.Context, c ports.RefreshClaim) ([]domain.SealedAuthTokens, error) {
	names := make([]string, len(c.Providers))
	for i, p := range c.Providers {
		names[i] = string(p)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var rows []db.AuthToken
	err := withConn(ctx, r.pool, func(conn db.DBTX) (err error) {
		rows, err = r.q.ClaimDueRefreshes(ctx, conn, db.ClaimDueRefreshesParams{
			Providers:        names,
			Owner:            c.Owner,
			LeaseSeconds:     c.Lease.Seconds(),
			HorizonSeconds:   c.Horizon.Seconds(),
			LifetimeFraction: c.LifetimeFraction,
			MaxRows:          int32(min(max(c.Limit, 0), 10_000)),
			// With the code passed in, it has one spelling.
			RevokesPreviousAccessToken: c.RevokesPreviousAccessToken,
			OutcomeUnknown:             domain.CodeProviderOutcomeUnknown,
		})
		return interpretError(err, mayHaveApplied)
	})
	if err != nil {
		return nil, fmt.Errorf("claim due refreshes: %w", err)
	}
	out := make([]domain.SealedAuthTokens, len(rows))
	for i, row := range rows {
		out[i] = authTokensFromDB(row)
	}
	return out, nil
}

// MarkLapsedLeases implements ports.RefreshQueue: one statement marks the
// rows and, with record, inserts their events from the UPDATE's RETURNING
// (a data-modifying CTE), so both commit or neither does.
func (r *Repository) MarkLapsedLeases(ctx context.Context, event domain.AuditEvent, record bool) ([]domain.AuditEvent, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var rows []db.MarkLapsedLeasesRow
	err := withConn(ctx, r.pool, func(conn db.DBTX) (err error) {
		rows, err = r.q.MarkLapsedLeases(ctx, conn, db.MarkLapsedLeasesParams{
			RefreshError: domain.CodeRefreshInterrupted, RecordAudit: record,
			AuditInstance: event.Instance, AuditCaller: event.Caller, AuditAction: string(event.Action),
			AuditStatus: int32(event.Status), AuditCode: event.Code, AuditRequestID: event.RequestID,
			RecordEvent: r.events.Allows(domain.EventTokensReauthRequired), EventKind: string(domain.EventTokensReauthRequired),
		})
		if err != nil && record {
			return auditStoreError(err, mayHaveApplied)
		}
		return interpretError(err, mayHaveApplied)
	})
	if err != nil {
		return nil, fmt.Errorf("mark lapsed leases: %w", err)
	}
	out := make([]domain.AuditEvent, len(rows))
	for i, row := range rows {
		out[i] = event
		out[i].User, out[i].Provider = domain.UserID(row.UserID), domain.Provider(row.Provider)
	}
	return out, nil
}

// DatabaseNow implements ports.DatabaseClock.
func (r *Repository) DatabaseNow(ctx context.Context) (time.Time, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	now, err := r.q.DatabaseNow(ctx, r.pool)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", interpretError(err, noEffect))
	}
	return now, nil
}

// DeleteAuthTokens implements ports.TokenRepository.
func (r *Repository) DeleteAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	err := r.writeWithEvents(ctx, audit, func(conn db.DBTX, e effect) ([]domain.Event, error) {
		n, err := r.q.DeleteAuthTokens(ctx, conn, db.DeleteAuthTokensParams{UserID: string(user), Provider: string(provider)})
		return []domain.Event{{Kind: domain.EventTokensDeleted, User: user, Provider: provider}}, deleted(n, err, e)
	})
	if err != nil {
		return fmt.Errorf("delete auth tokens: %w", err)
	}
	return nil
}

// DeleteAuthTokensRevoking implements ports.TokenRepository: the DELETE
// returns the ciphertexts, which go into the tokens.deleted event with the
// revocation's delivery, all in one transaction.
func (r *Repository) DeleteAuthTokensRevoking(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		row, err := r.q.DeleteAuthTokensReturning(ctx, tx, db.DeleteAuthTokensReturningParams{UserID: string(user), Provider: string(provider)})
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.ErrNotFound
		}
		if err != nil {
			return interpretError(err, noEffect)
		}
		if err := r.q.InsertRevocationDelivery(ctx, tx, db.InsertRevocationDeliveryParams{
			Kind: string(domain.EventTokensDeleted), UserID: string(user), Provider: string(provider),
			KeyID: row.KeyID, AccessToken: row.AccessToken, RefreshToken: row.RefreshToken,
		}); err != nil {
			return fmt.Errorf("queue the upstream revocation: %w", interpretError(err, noEffect))
		}
		return r.recordInTx(ctx, tx, audit)
	})
	if err != nil {
		return fmt.Errorf("delete auth tokens: %w", err)
	}
	return nil
}

// ListProviders implements ports.TokenRepository.
func (r *Repository) ListProviders(ctx context.Context, user domain.UserID) ([]domain.ProviderTokenInfo, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.ListAuthTokenProviders(ctx, r.pool, string(user))
	if err != nil {
		return nil, fmt.Errorf("list providers: %w", interpretError(err, noEffect))
	}
	out := make([]domain.ProviderTokenInfo, 0, len(rows))
	for _, row := range rows {
		out = append(out, domain.ProviderTokenInfo{
			Provider:         domain.Provider(row.Provider),
			AccessExpiry:     expiryFromDB(row.AccessTokenExpiresAt),
			RefreshExpiry:    expiryFromDB(row.RefreshTokenExpiresAt),
			AccessObtainedAt: deref(row.AccessTokenObtainedAt),
			HasRefreshToken:  row.HasRefreshToken,
			ReauthRequired:   row.ReauthRequired,
			LastError:        deref(row.RefreshError),
			AmbiguousRetries: int(row.AmbiguousRetries),
			UpdatedAt:        row.UpdatedAt,
		})
	}
	return out, nil
}

// PutOfflineToken implements ports.TokenRepository.
func (r *Repository) PutOfflineToken(ctx context.Context, t domain.SealedOfflineToken, audit ...domain.AuditEvent) (domain.SealedOfflineToken, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var row db.UpsertOfflineTokenRow
	err := r.writeWithEvents(ctx, audit, func(conn db.DBTX, e effect) ([]domain.Event, error) {
		var err error
		row, err = r.q.UpsertOfflineToken(ctx, conn, db.UpsertOfflineTokenParams{
			UserID: string(t.User), KeyID: string(t.KeyID), Token: t.Token,
		})
		return []domain.Event{{Kind: domain.EventOfflineTokenStored, User: t.User}}, interpretError(err, e)
	})
	if err != nil {
		return domain.SealedOfflineToken{}, fmt.Errorf("store offline token: %w", err)
	}
	t.Version, t.CreatedAt, t.UpdatedAt = row.Version, row.CreatedAt, row.UpdatedAt
	return t, nil
}

// GetOfflineToken implements ports.TokenRepository.
func (r *Repository) GetOfflineToken(ctx context.Context, user domain.UserID) (domain.SealedOfflineToken, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	row, err := r.q.GetOfflineToken(ctx, r.pool, string(user))
	if err != nil {
		return domain.SealedOfflineToken{}, fmt.Errorf("load offline token: %w", interpretError(err, noEffect))
	}
	return offlineTokenFromDB(row), nil
}

// DeleteOfflineToken implements ports.TokenRepository.
func (r *Repository) DeleteOfflineToken(ctx context.Context, user domain.UserID, audit ...domain.AuditEvent) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	err := r.writeWithEvents(ctx, audit, func(conn db.DBTX, e effect) ([]domain.Event, error) {
		n, err := r.q.DeleteOfflineToken(ctx, conn, string(user))
		return []domain.Event{{Kind: domain.EventOfflineTokenDeleted, User: user}}, deleted(n, err, e)
	})
	if err != nil {
		return fmt.Errorf("delete offline token: %w", err)
	}
	return nil
}

// deleted interprets a DELETE's outcome: no row is domain.ErrNotFound (and
// rolls back a transaction holding the delete's audit event).
func deleted(n int64, err error, e effect) error {
	if err != nil {
		return interpretError(err, e)
	}
	if n == 0 {
		return domain.ErrNotFound
	}
	return nil
}

// upsertParams are the columns a PUT (or an import) writes.
func upsertParams(t domain.SealedAuthTokens) db.ImportAuthTokensParams {
	return db.ImportAuthTokensParams{
		UserID:                string(t.User),
		Provider:              string(t.Provider),
		KeyID:                 string(t.KeyID),
		AccessToken:           t.AccessToken,
		RefreshToken:          t.RefreshToken,
		AccessTokenExpiresAt:  expiryToDB(t.AccessExpiry),
		RefreshTokenExpiresAt: expiryToDB(t.RefreshExpiry),
		AccessTokenObtainedAt: optTime(t.AccessObtainedAt),
	}
}

func authTokensFromDB(row db.AuthToken) domain.SealedAuthTokens {
	return domain.SealedAuthTokens{
		User:             domain.UserID(row.UserID),
		Provider:         domain.Provider(row.Provider),
		KeyID:            domain.KeyID(row.KeyID),
		AccessToken:      row.AccessToken,
		RefreshToken:     row.RefreshToken,
		AccessExpiry:     expiryFromDB(row.AccessTokenExpiresAt),
		RefreshExpiry:    expiryFromDB(row.RefreshTokenExpiresAt),
		AccessObtainedAt: deref(row.AccessTokenObtainedAt),
		Refresh: domain.RefreshState{
			LeaseOwner:       deref(row.RefreshLeaseOwner),
			LeaseUntil:       deref(row.RefreshLeaseUntil),
			ReauthRequired:   row.ReauthRequired,
			LastError:        deref(row.RefreshError),
			NextAttemptAt:    deref(row.NextRefreshAt),
			AmbiguousRetries: int(row.AmbiguousRetries),
		},
		ID:        row.ID,
		Version:   row.Version,
		CreatedAt: row.CreatedAt,
		UpdatedAt: row.UpdatedAt,
	}
}

func offlineTokenFromDB(row db.OfflineToken) domain.SealedOfflineToken {
	return domain.SealedOfflineToken{
		User:      domain.UserID(row.UserID),
		KeyID:     domain.KeyID(row.KeyID),
		Token:     row.Token,
		Version:   row.Version,
		CreatedAt: row.CreatedAt,
		UpdatedAt: row.UpdatedAt,
	}
}

// expiryToDB maps "never" to NULL; the database has no magic zero either.
func expiryToDB(e domain.Expiry) *time.Time {
	t, ok := e.Time()
	if !ok {
		return nil
	}
	return &t
}

func expiryFromDB(t *time.Time) domain.Expiry {
	if t == nil {
		return domain.Never()
	}
	return domain.At(*t)
}

// optString and optTime map Go zero values to NULL.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
