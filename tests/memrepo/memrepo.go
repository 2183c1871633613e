// Package memrepo is an in-memory ports.TokenRepository and
// ports.RefreshQueue (with the outbox's ports.EventFeed and DeliveryQueue,
// and the key job's ports.ReencryptionRepository and KeyInventory) for
// fast tests of the use cases in app. It passes the
// same contract suite as the PostgreSQL adapter (tests/repotest) and judges
// rows due for refresh by domain.NextRefreshStep, the rule the adapter's SQL
// is checked against, so a test on it exercises the real protocol without a
// database. It is test support, not a product storage: nothing persists.
package memrepo

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// LockTimeout bounds how long a unit of work waits for a row another one
// holds before failing with domain.ErrBusy, as the PostgreSQL adapter's
// default does.
const LockTimeout = 5 * time.Second

type key struct {
	user     domain.UserID
	provider domain.Provider
}

// Repository keeps sealed tokens in maps. Writers of one (user, provider)
// row take that row's lock, as PostgreSQL's row locks make them; readers do
// not wait for it. Safe for concurrent use.
type Repository struct {
	mu      sync.Mutex // guards everything below; never held while fn runs
	auth    map[key]domain.SealedAuthTokens
	offline map[domain.UserID]domain.SealedOfflineToken
	locks   map[key]chan struct{} // a row lock: a one-slot semaphore per key
	nextID  int64
	last    time.Time // the last timestamp handed out, to keep them increasing
	clock   func() time.Time
	audit   *AuditLog             // where writes' audit events go
	outbox  outbox                // the writes' outbox events
	sink    ports.TokenChangeSink // told of every change, as PostgreSQL's triggers notify; nil: nobody
}

// NotifyChanges makes the repository tell sink of every change to a stored
// row as it happens (in order, with the row's version), as the PostgreSQL
// adapter's triggers notify a listener, so a read cache in front of it can
// be tested: sink hears each change before the write returns.
func (r *Repository) NotifyChanges(sink ports.TokenChangeSink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sink = sink
}

// setAuth, deleteAuth, setOffline and deleteOffline change a row and tell
// the sink; the caller holds r.mu.
func (r *Repository) setAuth(k key, row domain.SealedAuthTokens) {
	r.auth[k] = row
	if r.sink != nil {
		r.sink.TokensChanged(k.user, k.provider, row.Version)
	}
}

func (r *Repository) deleteAuth(k key) {
	row := r.auth[k]
	delete(r.auth, k)
	if r.sink != nil {
		r.sink.TokensChanged(k.user, k.provider, row.Version)
	}
}

func (r *Repository) setOffline(user domain.UserID, row domain.SealedOfflineToken) {
	r.offline[user] = row
	if r.sink != nil {
		r.sink.TokensChanged(user, "", row.Version)
	}
}

func (r *Repository) deleteOffline(user domain.UserID) {
	row := r.offline[user]
	delete(r.offline, user)
	if r.sink != nil {
		r.sink.TokensChanged(user, "", row.Version)
	}
}

var (
	_ ports.TokenRepository = (*Repository)(nil)
	_ ports.RefreshQueue    = (*Repository)(nil)
)

// New returns an empty repository on the system clock.
func New() *Repository {
	return &Repository{
		auth:    map[key]domain.SealedAuthTokens{},
		offline: map[domain.UserID]domain.SealedOfflineToken{},
		locks:   map[key]chan struct{}{},
		clock:   time.Now,
		audit:   NewAuditLog(),
	}
}

// Audit is the log the repository's writes record their audit events in
// (in the same step as the write: when the log fails, the write fails and
// changes nothing).
func (r *Repository) Audit() *AuditLog { return r.audit }

// ListAuditEvents implements ports.AuditReader on the repository's log.
func (r *Repository) ListAuditEvents(ctx context.Context, f domain.AuditFilter, after ports.AuditCursor, limit int) ([]domain.AuditEvent, ports.AuditCursor, error) {
	return r.audit.ListAuditEvents(ctx, f, after, limit)
}

// now is the storage's clock (the caller holds mu). Successive values
// strictly increase, as updated_at does in PostgreSQL.
func (r *Repository) now() time.Time {
	t := r.clock()
	if !t.After(r.last) {
		t = r.last.Add(time.Microsecond)
	}
	r.last = t
	return t
}

// stamp is the version and timestamps of a row written now: over a stored
// row (existed) with curVersion and curCreated, or a new one.
func (r *Repository) stamp(existed bool, curVersion int64, curCreated time.Time) (version int64, created, updated time.Time) {
	now := r.now()
	if !existed {
		return 1, now, now
	}
	return curVersion + 1, curCreated, now
}

// lock takes k's row lock, waiting up to LockTimeout.
func (r *Repository) lock(ctx context.Context, k key) (unlock func(), err error) {
	r.mu.Lock()
	l, ok := r.locks[k]
	if !ok {
		l = make(chan struct{}, 1)
		r.locks[k] = l
	}
	r.mu.Unlock()
	timer := time.NewTimer(LockTimeout)
	defer timer.Stop()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("lock auth tokens: %w", domain.ErrBusy)
	}
}

// tryLock takes k's row lock if it is free (FOR UPDATE SKIP LOCKED).
func (r *Repository) tryLock(k key) (unlock func(), ok bool) {
	r.mu.Lock()
	l, found := r.locks[k]
	if !found {
		l = make(chan struct{}, 1)
		r.locks[k] = l
	}
	r.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, true
	default:
		return nil, false
	}
}

func clone(t domain.SealedAuthTokens) domain.SealedAuthTokens {
	t.AccessToken, t.RefreshToken = bytes.Clone(t.AccessToken), bytes.Clone(t.RefreshToken)
	return t
}

// PutAuthTokens implements ports.TokenRepository.
func (r *Repository) PutAuthTokens(ctx context.Context, t domain.SealedAuthTokens, audit ...domain.AuditEvent) (domain.SealedAuthTokens, error) {
	if err := ctx.Err(); err != nil {
		return domain.SealedAuthTokens{}, err
	}
	k := key{t.User, t.Provider}
	unlock, err := r.lock(ctx, k)
	if err != nil {
		return domain.SealedAuthTokens{}, fmt.Errorf("store auth tokens: %w", err)
	}
	defer unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.audit.record(audit); err != nil {
		return domain.SealedAuthTokens{}, fmt.Errorf("store auth tokens: %w", err)
	}
	row := clone(t)
	row.Refresh = domain.RefreshState{} // new tokens start a clean refresh history
	cur, ok := r.auth[k]
	r.write(r.now(), domain.Event{Kind: domain.StoredEvent(cur.Refresh.ReauthRequired), User: t.User, Provider: t.Provider})
	row.ID = cur.ID
	if !ok {
		r.nextID++
		row.ID = r.nextID
	}
	row.Version, row.CreatedAt, row.UpdatedAt = r.stamp(ok, cur.Version, cur.CreatedAt)
	r.setAuth(k, row)
	t.Version, t.CreatedAt, t.UpdatedAt = row.Version, row.CreatedAt, row.UpdatedAt
	return t, nil
}

// GetAuthTokens implements ports.TokenRepository.
func (r *Repository) GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error) {
	if err := ctx.Err(); err != nil {
		return domain.SealedAuthTokens{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	row, ok := r.auth[key{user, provider}]
	if !ok {
		return domain.SealedAuthTokens{}, fmt.Errorf("load auth tokens: %w", domain.ErrNotFound)
	}
	return clone(row), nil
}

// UpdateAuthTokens implements ports.TokenRepository: fn runs holding the
// row's lock, not the repository's, so readers are not blocked by it. The
// row and fn's audit events are stored in one step under the repository's
// lock: a failing audit log stores neither.
func (r *Repository) UpdateAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider,
	fn func(current domain.SealedAuthTokens, now time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error),
) (domain.SealedAuthTokens, error) {
	if err := ctx.Err(); err != nil {
		return domain.SealedAuthTokens{}, err
	}
	k := key{user, provider}
	unlock, err := r.lock(ctx, k)
	if err != nil {
		return domain.SealedAuthTokens{}, err
	}
	defer unlock()
	r.mu.Lock()
	current, ok := r.auth[k]
	now := r.now()
	r.mu.Unlock()
	if !ok {
		return domain.SealedAuthTokens{}, fmt.Errorf("lock auth tokens: %w", domain.ErrNotFound)
	}
	current = clone(current)
	next, events, err := fn(clone(current), now)
	if err != nil {
		return domain.SealedAuthTokens{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.audit.record(events); err != nil {
		return domain.SealedAuthTokens{}, fmt.Errorf("update auth tokens: %w", err)
	}
	if next == nil {
		return current, nil
	}
	row := clone(*next)
	row.User, row.Provider, row.ID = current.User, current.Provider, current.ID
	changes := domain.UpdateEvents(current, row)
	for i := range changes {
		changes[i].User, changes[i].Provider = user, provider
	}
	r.write(r.now(), changes...)
	row.Version, row.CreatedAt, row.UpdatedAt = r.stamp(true, current.Version, current.CreatedAt)
	r.setAuth(k, row)
	result := *next
	result.User, result.Provider = current.User, current.Provider
	result.Version, result.CreatedAt, result.UpdatedAt = row.Version, row.CreatedAt, row.UpdatedAt
	return result, nil
}

// ClaimDueRefreshes implements ports.RefreshQueue: the rows for which
// domain.NextRefreshStep says StepRefresh with the row's effective margin
// (domain.EffectiveMargin of c.Horizon and c.LifetimeFraction), no
// lookahead (c.Horizon has it) and c.RevokesPreviousAccessToken, as the SQL
// ClaimDueRefreshes computes it; soonest expiry first, skipping rows another
// unit of work holds.
func (r *Repository) ClaimDueRefreshes(ctx context.Context, c ports.RefreshClaim) ([]domain.SealedAuthTokens, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	now := r.clock()
	var due []domain.SealedAuthTokens
	for _, row := range r.auth {
		margin := domain.EffectiveMargin(c.Horizon, c.LifetimeFraction, row.AccessObtainedAt, row.AccessExpiry)
		v := row.RefreshView(margin, slices.Contains(c.Providers, row.Provider))
		v.RevokesPreviousAccessToken = c.RevokesPreviousAccessToken
		if domain.NextRefreshStep(v, now) == domain.StepRefresh {
			due = append(due, row)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(due, func(a, b domain.SealedAuthTokens) int {
		at, _ := a.AccessExpiry.Time()
		bt, _ := b.AccessExpiry.Time()
		return cmp.Or(at.Compare(bt), cmp.Compare(a.ID, b.ID))
	})
	out := []domain.SealedAuthTokens{}
	for _, cand := range due {
		if len(out) >= c.Limit {
			break
		}
		k := key{cand.User, cand.Provider}
		unlock, ok := r.tryLock(k)
		if !ok {
			continue
		}
		r.mu.Lock()
		row, found := r.auth[k]
		if found && row.Version == cand.Version {
			row.Version, row.CreatedAt, row.UpdatedAt = r.stamp(true, row.Version, row.CreatedAt)
			row.Refresh.LeaseOwner, row.Refresh.LeaseUntil = c.Owner, row.UpdatedAt.Add(c.Lease)
			if row.Refresh.LastError == domain.CodeProviderOutcomeUnknown {
				row.Refresh.AmbiguousRetries++ // the same refresh token, sent again
			}
			r.setAuth(k, row)
			out = append(out, clone(row))
		}
		r.mu.Unlock()
		unlock()
	}
	return out, nil
}

// MarkLapsedLeases implements ports.RefreshQueue: it holds every lapsed
// row's lock (taken in key order, so two sweeps cannot deadlock), then
// records the events and marks the rows in one step, as the PostgreSQL
// adapter's one statement does.
func (r *Repository) MarkLapsedLeases(ctx context.Context, event domain.AuditEvent, record bool) ([]domain.AuditEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	now := r.clock()
	var lapsed []key
	for k, row := range r.auth {
		if row.Refresh.LeaseLapsed(now) {
			lapsed = append(lapsed, k)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(lapsed, func(a, b key) int { return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.provider, b.provider)) })
	for _, k := range lapsed {
		unlock, err := r.lock(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("mark lapsed leases: %w", err)
		}
		defer unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	events := []domain.AuditEvent{}
	for _, k := range lapsed {
		if row, ok := r.auth[k]; ok && row.Refresh.LeaseLapsed(now) {
			e := event
			e.User, e.Provider = k.user, k.provider
			events = append(events, e)
		}
	}
	if record {
		if err := r.audit.record(events); err != nil {
			return nil, fmt.Errorf("mark lapsed leases: %w", err)
		}
	}
	var changes []domain.Event
	for _, e := range events {
		changes = append(changes, domain.Event{Kind: domain.EventTokensReauthRequired, User: e.User, Provider: e.Provider, Reason: domain.CodeRefreshInterrupted})
	}
	r.write(now, changes...)
	for _, e := range events {
		k := key{e.User, e.Provider}
		row := r.auth[k]
		row.Refresh.LeaseOwner, row.Refresh.LeaseUntil = "", time.Time{}
		row.Refresh.ReauthRequired, row.Refresh.LastError = true, domain.CodeRefreshInterrupted
		row.Version, row.CreatedAt, row.UpdatedAt = r.stamp(true, row.Version, row.CreatedAt)
		r.setAuth(k, row)
	}
	return events, nil
}

// DeleteAuthTokens implements ports.TokenRepository.
func (r *Repository) DeleteAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error {
	return r.deleteAuthTokens(ctx, user, provider, false, audit)
}

// DeleteAuthTokensRevoking implements ports.TokenRepository.
func (r *Repository) DeleteAuthTokensRevoking(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error {
	return r.deleteAuthTokens(ctx, user, provider, true, audit)
}

func (r *Repository) deleteAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider, revoke bool, audit []domain.AuditEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k := key{user, provider}
	unlock, err := r.lock(ctx, k)
	if err != nil {
		return fmt.Errorf("delete auth tokens: %w", err)
	}
	defer unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	row, ok := r.auth[k]
	if !ok {
		return fmt.Errorf("delete auth tokens: %w", domain.ErrNotFound)
	}
	if err := r.audit.record(audit); err != nil {
		return fmt.Errorf("delete auth tokens: %w", err)
	}
	e := domain.Event{Kind: domain.EventTokensDeleted, User: user, Provider: provider}
	if revoke {
		r.writeRevocation(r.now(), e, domain.SealedRevocation{
			KeyID: row.KeyID, AccessToken: bytes.Clone(row.AccessToken), RefreshToken: bytes.Clone(row.RefreshToken),
		})
	} else {
		r.write(r.now(), e)
	}
	r.deleteAuth(k)
	return nil
}

// ListProviders implements ports.TokenRepository.
func (r *Repository) ListProviders(ctx context.Context, user domain.UserID) ([]domain.ProviderTokenInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []domain.ProviderTokenInfo{}
	for k, row := range r.auth {
		if k.user != user {
			continue
		}
		out = append(out, domain.ProviderTokenInfo{
			Provider:         row.Provider,
			AccessExpiry:     row.AccessExpiry,
			RefreshExpiry:    row.RefreshExpiry,
			AccessObtainedAt: row.AccessObtainedAt,
			HasRefreshToken:  row.RefreshToken != nil,
			ReauthRequired:   row.Refresh.ReauthRequired,
			LastError:        row.Refresh.LastError,
			AmbiguousRetries: row.Refresh.AmbiguousRetries,
			UpdatedAt:        row.UpdatedAt,
		})
	}
	slices.SortFunc(out, func(a, b domain.ProviderTokenInfo) int { return cmp.Compare(a.Provider, b.Provider) })
	return out, nil
}

// PutOfflineToken implements ports.TokenRepository.
func (r *Repository) PutOfflineToken(ctx context.Context, t domain.SealedOfflineToken, audit ...domain.AuditEvent) (domain.SealedOfflineToken, error) {
	if err := ctx.Err(); err != nil {
		return domain.SealedOfflineToken{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.audit.record(audit); err != nil {
		return domain.SealedOfflineToken{}, fmt.Errorf("store offline token: %w", err)
	}
	r.write(r.now(), domain.Event{Kind: domain.EventOfflineTokenStored, User: t.User})
	row := t
	row.Token = bytes.Clone(t.Token)
	cur, ok := r.offline[t.User]
	row.Version, row.CreatedAt, row.UpdatedAt = r.stamp(ok, cur.Version, cur.CreatedAt)
	r.setOffline(t.User, row)
	t.Version, t.CreatedAt, t.UpdatedAt = row.Version, row.CreatedAt, row.UpdatedAt
	return t, nil
}

// GetOfflineToken implements ports.TokenRepository.
func (r *Repository) GetOfflineToken(ctx context.Context, user domain.UserID) (domain.SealedOfflineToken, error) {
	if err := ctx.Err(); err != nil {
		return domain.SealedOfflineToken{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	row, ok := r.offline[user]
	if !ok {
		return domain.SealedOfflineToken{}, fmt.Errorf("load offline token: %w", domain.ErrNotFound)
	}
	row.Token = bytes.Clone(row.Token)
	return row, nil
}

// DeleteOfflineToken implements ports.TokenRepository.
func (r *Repository) DeleteOfflineToken(ctx context.Context, user domain.UserID, audit ...domain.AuditEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.offline[user]; !ok {
		return fmt.Errorf("delete offline token: %w", domain.ErrNotFound)
	}
	if err := r.audit.record(audit); err != nil {
		return fmt.Errorf("delete offline token: %w", err)
	}
	r.write(r.now(), domain.Event{Kind: domain.EventOfflineTokenDeleted, User: user})
	r.deleteOffline(user)
	return nil
}
