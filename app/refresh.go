package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// RefreshConfig tunes refresh coordination. The zero value uses the defaults.
//
// A refresh is leased in the database, not locked: the attempt records
// itself as the row's lease owner in a short transaction, calls the provider
// holding no lock and no connection, and stores the result only while the row
// still carries its lease at the version the lease was taken at. Callers in
// one process share one attempt (singleflight); callers elsewhere see the
// lease and poll until it is released, up to WaitTimeout.
type RefreshConfig struct {
	// Lease is how long an attempt may take before others consider it
	// interrupted. It must exceed the providers' HTTP timeout. Default 45s.
	Lease time.Duration
	// WaitTimeout bounds how long a caller waits for a refresh (its own or
	// another instance's) before answering unavailable. Default 20s.
	WaitTimeout time.Duration
	// PollInterval is how often a caller waiting for another instance's
	// refresh re-reads the row. Default 100ms.
	PollInterval time.Duration
	// RetryAfter is the back-off after a transient provider failure. Default 10s.
	RetryAfter time.Duration
	// RejectedRetryAfter is the back-off after the provider rejected the
	// request itself (invalid_client and other configuration errors). Default 5m.
	RejectedRetryAfter time.Duration
	// Instance names this process in lease owners. Default host-pid.
	Instance string
}

func (c RefreshConfig) withDefaults() RefreshConfig {
	if c.Lease <= 0 {
		c.Lease = DefaultRefreshLease
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = DefaultRefreshWaitTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultRefreshPollInterval
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRefreshRetryAfter
	}
	if c.RejectedRetryAfter <= 0 {
		c.RejectedRetryAfter = DefaultRefreshRejectedRetryAfter
	}
	if c.Instance == "" {
		c.Instance = InstanceName()
	}
	return c
}

// InstanceName is this process's default instance name, host-pid: its
// refresh lease owner and the name its keyring is recorded under.
func InstanceName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// NoRefresher is the ports.TokenRefresher of an instance with no provider
// configured for refresh: nothing is refreshable, so an expired access token
// is reported as expired (domain.ErrTokenExpired) and the worker idles.
type NoRefresher struct{}

var _ ports.TokenRefresher = NoRefresher{}

// Refresh always fails with domain.ErrProviderNotConfigured.
func (NoRefresher) Refresh(_ context.Context, provider domain.Provider, _ domain.Secret) (domain.RefreshedTokens, error) {
	return domain.RefreshedTokens{}, fmt.Errorf("%s: %w", provider, domain.ErrProviderNotConfigured)
}

// Configured is false for every provider.
func (NoRefresher) Configured(domain.Provider) bool { return false }

// Providers is empty.
func (NoRefresher) Providers() []domain.Provider { return nil }

// RevokesPreviousAccessToken is false: nothing is refreshed.
func (NoRefresher) RevokesPreviousAccessToken(domain.Provider) bool { return false }

// errLeaseLost: the row changed under an attempt (new tokens were stored,
// or the lease lapsed and was taken over); the attempt's result is dropped.
var errLeaseLost = errors.New("refresh lease lost")

// RefreshCoordinator is the refresh protocol: take a lease on the row in a
// short transaction, call the provider holding no lock, store the result
// only while the lease still stands at the version it was taken at (the
// fence), and release the lease with the outcome. The read path reaches it
// through Refresh (one shared attempt per process and row); the proactive
// worker through Providers, Margin, NewAttempt, Lease and RefreshLeased for
// the rows it claimed. Get it from TokenService.Refreshes.
type RefreshCoordinator struct {
	rows      sealer
	repo      ports.TokenRepository
	cache     ports.ReadCache // nil: no read cache
	refresher ports.TokenRefresher
	margin    time.Duration
	margins   map[domain.Provider]time.Duration
	fraction  float64 // Config.LifetimeFraction
	cfg       RefreshConfig
	log       *slog.Logger
	flight    singleflight.Group
	inflight  sync.WaitGroup   // refreshes started by reads, for Drain
	now       func() time.Time // the service's clock (clock.Service)
	clock     *Clock
	audit     *Auditor // nil: no audit trail
	obs       Observer
	tracer    trace.Tracer
}

// Providers lists the providers whose tokens can be refreshed.
func (c *RefreshCoordinator) Providers() []domain.Provider { return c.refresher.Providers() }

// Margin is the configured refresh margin for provider's tokens; each
// token's own is at most LifetimeFraction of its lifetime
// (domain.EffectiveMargin).
func (c *RefreshCoordinator) Margin(provider domain.Provider) time.Duration {
	if m, ok := c.margins[provider]; ok && m > 0 {
		return m
	}
	return c.margin
}

// LifetimeFraction caps each token's margin at this fraction of its
// lifetime (Config.LifetimeFraction).
func (c *RefreshCoordinator) LifetimeFraction() float64 { return c.fraction }

// effectiveMargin is the refresh margin of one access token of provider,
// obtained at obtained (zero: unknown) and expiring at expiry.
func (c *RefreshCoordinator) effectiveMargin(provider domain.Provider, obtained time.Time, expiry domain.Expiry) time.Duration {
	return domain.EffectiveMargin(c.Margin(provider), c.fraction, obtained, expiry)
}

// Lease is how long an attempt's lease lasts (RefreshConfig.Lease).
func (c *RefreshCoordinator) Lease() time.Duration { return c.cfg.Lease }

// NewAttempt names one refresh attempt, to own a lease; unique across
// instances and attempts, so even two attempts in one process cannot share
// a lease.
func (c *RefreshCoordinator) NewAttempt() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return c.cfg.Instance + "/" + hex.EncodeToString(b[:])
}

// RevokesPreviousAccessToken reports whether provider revokes the previous
// access token on refresh (ports.TokenRefresher).
func (c *RefreshCoordinator) RevokesPreviousAccessToken(provider domain.Provider) bool {
	return c.refresher.RevokesPreviousAccessToken(provider)
}

// view describes a stored row for the refresh rule, as the read path sees
// it: with the row's effective margin (domain.EffectiveMargin), judged by
// one clock.
func (c *RefreshCoordinator) view(row domain.ServableAuthTokens) domain.RefreshView {
	margin := c.effectiveMargin(row.Provider, row.AccessObtainedAt, row.AccessExpiry)
	v := row.RefreshView(margin, c.refresher.Configured(row.Provider))
	v.RevokesPreviousAccessToken = c.refresher.RevokesPreviousAccessToken(row.Provider)
	return v
}

// step applies domain.NextRefreshStep to a stored row at dbNow, the
// database's clock (read under the row lock, or estimated from the skew),
// with the expiries judged by the later of it and the service's clock.
func (c *RefreshCoordinator) step(row domain.ServableAuthTokens, dbNow time.Time) domain.RefreshStep {
	return domain.NextRefreshStep(c.view(row).TwoClocks(dbNow, c.clock.Service()), dbNow)
}

// serve opens the stored access token, with the expiry the refresh rule
// reports for it (domain.RefreshView.ReportedExpiry): for a provider that
// revokes the previous access token, tokenstore's next refresh of it (the
// access token's expiry minus its effective margin, or the end of a longer
// back-off); for others the access token's own expiry.
func (c *RefreshCoordinator) serve(row domain.ServableAuthTokens) (AccessToken, error) {
	tok, err := c.rows.open(row)
	if err != nil {
		return AccessToken{}, err
	}
	tok.Expiry = c.reportedExpiry(row)
	return tok, nil
}

// reportedExpiry is domain.RefreshView.ReportedExpiry on the service's
// clock, the one callers' clocks are closest to. For a provider that
// revokes the previous access token it is tokenstore's own next refresh,
// which the rule judges by the later of the two clocks: when the
// database's clock runs ahead, that refresh comes earlier on the service's
// clock by the skew, and so must the expiry reported.
func (c *RefreshCoordinator) reportedExpiry(row domain.ServableAuthTokens) domain.Expiry {
	v := c.view(row)
	e := v.ReportedExpiry()
	at, ok := e.Time()
	if !ok || !v.RevokesPreviousAccessToken {
		return e
	}
	if service := c.clock.ServiceTime(at); service.Before(at) {
		return domain.At(service)
	}
	return e
}

// expired reports whether e has passed by either clock.
func (c *RefreshCoordinator) expired(e domain.Expiry) bool { return e.Expired(c.clock.Later()) }

// Refresh returns a usable access token for the user's provider tokens,
// refreshing them under a lease when the refresh rule says so, waiting for
// another instance's attempt, or answering why not (the errors of
// TokenService.GetAccessToken). Every caller in this process that asks for
// the same tokens shares one attempt; each caller still gives up after
// RefreshConfig.WaitTimeout (domain.ErrUnavailable) or when its own context
// ends.
func (c *RefreshCoordinator) Refresh(ctx context.Context, user domain.UserID, provider domain.Provider) (AccessToken, error) {
	key := string(provider) + "\x00" + string(user)
	ch := c.flight.DoChan(key, func() (any, error) {
		// The attempt outlives any one caller: abandoning it half-way would
		// leave a lease to lapse and force the user to reconnect. Drain
		// waits for it at shutdown.
		c.inflight.Add(1)
		defer c.inflight.Done()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Lease)
		defer cancel()
		actx, span := startSpan(actx, c.tracer, "RefreshCoordinator.Refresh", provider)
		tok, err := c.refresh(actx, user, provider)
		endSpan(span, err)
		return tok, err
	})
	timer := time.NewTimer(c.cfg.WaitTimeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		if res.Err != nil {
			return AccessToken{}, res.Err
		}
		return res.Val.(AccessToken), nil
	case <-timer.C:
		return AccessToken{}, fmt.Errorf("%w: the refresh of %s tokens did not finish within %s",
			domain.ErrUnavailable, provider, c.cfg.WaitTimeout)
	case <-ctx.Done():
		return AccessToken{}, ctx.Err()
	}
}

// refresh runs the protocol for one user's provider tokens: the refresh
// rule judged again on the row as re-read under its lock and by the
// database's clock.
func (c *RefreshCoordinator) refresh(ctx context.Context, user domain.UserID, provider domain.Provider) (AccessToken, error) {
	deadline := time.Now().Add(c.cfg.WaitTimeout)
	for {
		attempt := c.NewAttempt()
		var step domain.RefreshStep
		// Marking the tokens for re-authorization is recorded with the mark.
		interrupted := c.reauthEvent(ctx, user, provider, domain.CodeRefreshInterrupted)
		row, err := c.repo.UpdateAuthTokens(ctx, user, provider,
			func(cur domain.SealedAuthTokens, now time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
				step = c.step(cur.Servable(), now)
				next := cur
				switch step {
				case domain.StepRefresh:
					next.Refresh.LeaseOwner, next.Refresh.LeaseUntil = attempt, now.Add(c.cfg.Lease)
					if cur.Refresh.LastError == domain.CodeProviderOutcomeUnknown {
						next.Refresh.AmbiguousRetries++ // the same refresh token, sent again
					}
				case domain.StepInterrupted:
					next.Refresh = domain.RefreshState{ReauthRequired: true, LastError: domain.CodeRefreshInterrupted}
					return &next, c.audit.inTx(interrupted), nil
				default:
					return nil, nil, nil
				}
				return &next, nil, nil
			})
		if step == domain.StepInterrupted {
			c.audit.committed(len(c.audit.inTx(interrupted)), err)
		}
		if err != nil {
			return AccessToken{}, err
		}
		switch step {
		case domain.StepRefresh:
			if row.Refresh.LastError == domain.CodeProviderOutcomeUnknown {
				c.log.Warn("retrying a refresh whose outcome was unknown with the same refresh token: if the provider rotated it, it rejects this one",
					"user", user, "provider", provider, "ambiguous_retries", row.Refresh.AmbiguousRetries)
			}
			return c.runRefresh(ctx, row, attempt)
		case domain.StepInterrupted:
			c.audit.afterTx(interrupted)
			c.log.Warn("refresh was interrupted after its lease lapsed; the provider may have rotated the refresh token, so the user must reconnect",
				"user", user, "provider", provider)
			c.obs.RefreshAttempt(provider, domain.CodeRefreshInterrupted)
			return AccessToken{}, reauthError(provider, domain.CodeRefreshInterrupted)
		case domain.StepWait:
			cur, err := c.waitForLease(ctx, row, deadline)
			if err != nil {
				return AccessToken{}, err
			}
			// The other attempt stored fresh tokens: serve them as read
			// (as a read that found them would), without taking the lock
			// again; any other outcome is judged again under it.
			if serving := cur.Servable(); c.step(serving, c.clock.Database()) == domain.StepServe {
				return c.serve(serving)
			}
		default:
			return c.answer(row, step)
		}
	}
}

// reauthError says the user must reconnect, with the stored failure code
// (domain.CodeRefreshTokenExpired when none is stored).
func reauthError(provider domain.Provider, code string) error {
	if code == "" {
		code = domain.CodeRefreshTokenExpired
	}
	return fmt.Errorf("%s tokens (%s): %w", provider, code, domain.ErrReauthRequired)
}

// RefreshLeased runs the protocol from the provider call on, for a row the
// caller leased itself (the worker's claim): lease is the row as leased, its
// Refresh.LeaseOwner the attempt. It runs to completion even when ctx ends
// (abandoning it would let the lease lapse and force the user to reconnect),
// bounded by the lease.
func (c *RefreshCoordinator) RefreshLeased(ctx context.Context, lease domain.SealedAuthTokens) (AccessToken, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Lease)
	defer cancel()
	rctx, span := startSpan(rctx, c.tracer, "RefreshCoordinator.RefreshLeased", lease.Provider)
	tok, err := c.runRefresh(rctx, lease, lease.Refresh.LeaseOwner)
	endSpan(span, err)
	return tok, err
}

// waitForLease polls the row, holding no lock or connection between polls,
// until the lease held on it is released, lapses or deadline passes, and
// returns the row as it last read it. With a read cache it also wakes as
// soon as a change to the row is heard (the refresh it waits for
// committed), instead of at the next poll.
func (c *RefreshCoordinator) waitForLease(ctx context.Context, row domain.SealedAuthTokens, deadline time.Time) (_ domain.SealedAuthTokens, err error) {
	ctx, span := startSpan(ctx, c.tracer, "RefreshCoordinator.waitForLease", row.Provider)
	start := time.Now()
	defer func() {
		endSpan(span, err)
		c.obs.LeaseWait(row.Provider, time.Since(start), waitOutcome(err))
	}()
	changed, stop := c.changes(row)
	defer func() { stop() }() // the wait of the last round
	for {
		wait := min(c.cfg.PollInterval, time.Until(deadline))
		if wait <= 0 {
			return domain.SealedAuthTokens{}, fmt.Errorf("%w: another instance is refreshing the %s tokens and has not finished", domain.ErrUnavailable, row.Provider)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return domain.SealedAuthTokens{}, ctx.Err()
		case <-changed:
			t.Stop()
			stop()
			changed, stop = c.changes(row) // before the read: a change after it wakes the next wait
		case <-t.C: // the wait goes on: a change after the read still closes changed
		}
		cur, err := c.repo.GetAuthTokens(ctx, row.User, row.Provider)
		if err != nil {
			return domain.SealedAuthTokens{}, err
		}
		if cur.Version != row.Version || !cur.Refresh.Leased(c.clock.Database()) {
			return cur, nil
		}
	}
}

// changes is a channel closed at the next change heard to row's tokens,
// and the stop that ends the wait on it; nil (never ready) without a read
// cache.
func (c *RefreshCoordinator) changes(row domain.SealedAuthTokens) (<-chan struct{}, func()) {
	if c.cache == nil {
		return nil, func() {}
	}
	return c.cache.AuthTokensChanged(row.User, row.Provider)
}

// waitOutcome names how a wait for a lease ended, for the Observer.
func waitOutcome(err error) string {
	switch {
	case err == nil:
		return WaitReleased
	case errors.Is(err, domain.ErrUnavailable):
		return WaitTimedOut
	}
	return WaitCanceled
}

// runRefresh calls the provider under a lease taken at lease.Version and
// stores the outcome. The new access token is returned only after it is
// committed: a caller never holds a token the database does not.
func (c *RefreshCoordinator) runRefresh(ctx context.Context, lease domain.SealedAuthTokens, attempt string) (AccessToken, error) {
	refreshToken, err := c.rows.openAt(RefreshTokenPlace(lease.User, lease.Provider),
		domain.Ciphertext{KeyID: lease.KeyID, Data: lease.RefreshToken})
	if err != nil {
		// Retrying cannot help until someone fixes the row or the keyring:
		// back off as for a configuration error, so the worker moves on.
		out := ClassifyRefresh(err)
		c.release(ctx, lease, attempt, domain.RefreshState{
			LastError: out.Code, NextAttemptAt: c.clock.Database().Add(c.cfg.RejectedRetryAfter),
		}, c.refreshEvents(ctx, lease.User, lease.Provider, out))
		c.obs.RefreshAttempt(lease.Provider, out.Code)
		return AccessToken{}, err
	}
	called := time.Now()
	res, err := c.refresher.Refresh(ctx, lease.Provider, refreshToken)
	c.obs.ProviderCall(lease.Provider, time.Since(called))
	if err != nil {
		return c.refreshFailed(ctx, lease, attempt, err)
	}
	next, err := c.sealRefreshed(lease, res, refreshToken)
	if err != nil {
		// Nothing was stored; the provider may have rotated the refresh
		// token, so the lease is left to lapse rather than released. The
		// attempt's event has no write to ride with: it is queued.
		c.audit.queue(c.refreshEvents(ctx, lease.User, lease.Provider, ClassifyRefresh(errNotStored))...)
		c.obs.RefreshAttempt(lease.Provider, domain.CodeRefreshInterrupted)
		return AccessToken{}, fmt.Errorf("%w: sealing refreshed tokens: %v", domain.ErrUnavailable, err)
	}
	next.Refresh.AmbiguousRetries = lease.Refresh.AmbiguousRetries
	// By the service's clock, as the provider adapter computed the expiry
	// from expires_in: the token's lifetime is their difference.
	next.AccessObtainedAt = c.now()
	// The provider's answer is the only copy of a rotated refresh token:
	// the fenced store is retried while the database is unavailable (see
	// commitFenced), recognising a try that committed although its answer
	// was lost by the ciphertext it wrote, which no one else can write.
	// Fail-closed, the attempt's event commits with the new tokens (neither
	// without the other).
	stored, err := c.commitFenced(ctx, lease, attempt, func(cur domain.SealedAuthTokens) bool {
		return bytes.Equal(cur.AccessToken, next.AccessToken) && cur.KeyID == next.KeyID
	}, func(domain.SealedAuthTokens) domain.SealedAuthTokens { return next },
		c.refreshEvents(ctx, lease.User, lease.Provider, ClassifyRefresh(nil)))
	switch {
	case errors.Is(err, errLeaseLost), errors.Is(err, domain.ErrNotFound):
		// The user stored new tokens (or deleted them) while the provider
		// answered: theirs win, ours are dropped. Answer from the row as it
		// is now.
		c.audit.queue(c.refreshEvents(ctx, lease.User, lease.Provider, ClassifyRefresh(errSuperseded))...)
		c.log.Info("tokens changed during a refresh; the refreshed tokens are dropped",
			"user", lease.User, "provider", lease.Provider)
		c.obs.RefreshAttempt(lease.Provider, domain.CodeRefreshSuperseded)
		cur, gerr := c.repo.GetAuthTokens(ctx, lease.User, lease.Provider) // the database's row, never a kept one
		if gerr != nil {
			return AccessToken{}, gerr
		}
		if c.step(cur.Servable(), c.clock.Database()) != domain.StepServe {
			return AccessToken{}, fmt.Errorf("%w: the %s tokens changed during a refresh; retry", domain.ErrUnavailable, lease.Provider)
		}
		return c.serve(cur.Servable())
	case err != nil:
		// The provider issued new tokens that are not stored. The lease is
		// left to lapse: whoever finds it lapsed marks the tokens for
		// re-authorization instead of sending the old refresh token again.
		c.audit.queue(c.refreshEvents(ctx, lease.User, lease.Provider, ClassifyRefresh(errNotStored))...)
		c.log.Error("refreshed tokens could not be stored", "user", lease.User, "provider", lease.Provider, "err", err)
		c.obs.RefreshAttempt(lease.Provider, domain.CodeRefreshInterrupted)
		return AccessToken{}, fmt.Errorf("%w: the refreshed %s tokens could not be stored", domain.ErrUnavailable, lease.Provider)
	}
	c.log.Info("tokens refreshed", "user", lease.User, "provider", lease.Provider,
		"rotated", !res.RefreshToken.IsZero(), "expires", stored.AccessExpiry.String())
	c.obs.RefreshAttempt(lease.Provider, RefreshRefreshed)
	return AccessToken{User: lease.User, Provider: lease.Provider, Token: res.AccessToken, Expiry: c.reportedExpiry(stored.Servable())}, nil
}

// Back-off between tries of a fenced write while the database is
// unavailable: doubling from storeRetryFirst up to storeRetryMax.
const (
	storeRetryFirst = 50 * time.Millisecond
	storeRetryMax   = time.Second
)

// commitFenced writes the outcome of the attempt that holds lease: build
// turns the row as it is (still at lease.Version, leased by attempt) into
// the row to store. When the database is unavailable (connections killed,
// a restart, a frozen server: domain.ErrStorageUnavailable or domain.ErrBusy)
// it tries again on a fresh connection, backing off, until ctx ends (the
// refresh's context is bounded by the lease, and the lease stands for as
// long, so no one else can have taken the row over meanwhile). A try whose
// outcome is unknown (domain.ErrOutcomeUnknown) may have committed: mine
// recognises the row that carries this attempt's write, which then counts
// as done. A row changed by anyone else fails with errLeaseLost.
//
// events are the audit events of the outcome: fail-closed they commit in
// the same transaction as the row (an audit store that refuses them is
// retried like the database, and the row is not written without them);
// best-effort they are queued once the row is written.
func (c *RefreshCoordinator) commitFenced(ctx context.Context, lease domain.SealedAuthTokens, attempt string,
	mine func(cur domain.SealedAuthTokens) bool, build func(cur domain.SealedAuthTokens) domain.SealedAuthTokens,
	events []domain.AuditEvent,
) (domain.SealedAuthTokens, error) {
	inTx := c.audit.inTx(events...)
	wait := storeRetryFirst
	for tries := 1; ; tries++ {
		committed := false
		stored, err := c.repo.UpdateAuthTokens(ctx, lease.User, lease.Provider,
			func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
				if cur.Version != lease.Version || cur.Refresh.LeaseOwner != attempt {
					if tries > 1 && mine(cur) {
						committed = true // with its events, if any
						return nil, nil, nil
					}
					return nil, nil, errLeaseLost
				}
				next := build(cur)
				return &next, inTx, nil
			})
		c.audit.committed(len(inTx), err)
		if err == nil {
			c.audit.afterTx(events...)
		}
		if err == nil || !(errors.Is(err, domain.ErrStorageUnavailable) || errors.Is(err, domain.ErrBusy)) {
			if committed {
				c.log.Info("a refresh's write whose answer was lost had committed", "user", lease.User, "provider", lease.Provider, "tries", tries)
			}
			return stored, err
		}
		c.log.Warn("the database failed while a refresh stored its outcome; retrying on a fresh connection",
			"user", lease.User, "provider", lease.Provider, "tries", tries, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return domain.SealedAuthTokens{}, fmt.Errorf("%w (gave up after %d tries when the lease ran out)", err, tries)
		case <-t.C:
		}
		wait = min(2*wait, storeRetryMax)
	}
}

// sealRefreshed builds the row to store: the provider's new access token,
// its new refresh token if it rotated it (else the old one), and their
// expiries, all sealed under the current primary key.
func (c *RefreshCoordinator) sealRefreshed(lease domain.SealedAuthTokens, res domain.RefreshedTokens, oldRefresh domain.Secret) (domain.SealedAuthTokens, error) {
	t := domain.AuthTokens{
		User: lease.User, Provider: lease.Provider,
		AccessToken: res.AccessToken, AccessExpiry: res.AccessExpiry,
		RefreshToken: oldRefresh, RefreshExpiry: lease.RefreshExpiry,
	}
	if t.AccessExpiry.IsNever() && !lease.AccessExpiry.IsNever() {
		// expires_in is only recommended (RFC 6749 5.1). A token that expired
		// before does not stop expiring because the answer omits it: assume
		// it lives twice the refresh margin, so it is refreshed again in time
		// rather than handed out after it died.
		t.AccessExpiry = domain.At(c.now().Add(2 * c.Margin(lease.Provider)))
	}
	if !res.RefreshToken.IsZero() {
		t.RefreshToken, t.RefreshExpiry = res.RefreshToken, res.RefreshExpiry
	}
	if t.AccessToken.IsZero() {
		return domain.SealedAuthTokens{}, errors.New("provider returned no access token")
	}
	return c.rows.seal(t)
}

// refreshFailed records a provider failure (classified by
// ClassifyRefresh, whose code it stores). Permanent failures mark the
// tokens for re-authorization (no provider call until new tokens are
// stored); transient ones back off and keep the old token while it lasts.
// A back-off ends on the database's clock, by which every instance and the
// worker's claim judge it; Retry-After is counted on the service's. The
// attempt's audit events ride with the release.
func (c *RefreshCoordinator) refreshFailed(ctx context.Context, lease domain.SealedAuthTokens, attempt string, cause error) (AccessToken, error) {
	log := c.log.With("user", lease.User, "provider", lease.Provider, "err", cause)
	out := ClassifyRefresh(cause)
	events := c.refreshEvents(ctx, lease.User, lease.Provider, out)
	switch {
	case out.Reauth:
		log.Warn("refresh token rejected by the provider; the user must reconnect")
		c.obs.RefreshAttempt(lease.Provider, out.Code)
		c.release(ctx, lease, attempt, domain.RefreshState{ReauthRequired: true, LastError: out.Code}, events)
		return AccessToken{}, fmt.Errorf("%w: %w", reauthError(lease.Provider, out.Code), cause)
	case errors.Is(cause, domain.ErrProviderRejected):
		// invalid_client, a wrong token URL...: tokenstore's configuration,
		// not the user's grant. Marking every user of the provider for
		// re-authorization would outlive the fix, so back off for longer
		// instead; refreshes resume once the configuration is corrected.
		log.Error("the provider rejected the refresh request: check the provider configuration",
			"retry_after", c.cfg.RejectedRetryAfter)
		dbAt, _ := c.clock.after(c.cfg.RejectedRetryAfter)
		st := domain.RefreshState{LastError: out.Code, NextAttemptAt: dbAt}
		c.obs.RefreshAttempt(lease.Provider, out.Code)
		return c.released(ctx, lease, attempt, st, cause, events)
	case errors.Is(cause, domain.ErrProviderNotConfigured):
		st := domain.RefreshState{LastError: out.Code, NextAttemptAt: c.clock.Database().Add(c.cfg.RejectedRetryAfter)}
		c.obs.RefreshAttempt(lease.Provider, out.Code)
		c.release(ctx, lease, attempt, st, events)
		if c.expired(lease.AccessExpiry) {
			return AccessToken{}, fmt.Errorf("%s tokens: %w", lease.Provider, domain.ErrTokenExpired)
		}
		lease.Refresh = st
		return c.serve(lease.Servable())
	case errors.Is(cause, domain.ErrProviderOutcomeUnknown):
		// The request was sent and no answer came back (timeout, 5xx, a
		// lost connection): the provider may have refreshed. Today's choice,
		// kept on purpose (README, "The ambiguous case"): retry the same
		// refresh token after the back-off. If the provider did rotate, the
		// grant is lost either way; if it did not, the retry saves it. For a
		// provider that revokes the previous access token, the stored one
		// may be dead: it is not handed out until a refresh succeeds.
		log.Warn("refresh failed after the request was sent: the provider may have refreshed; retrying with the same refresh token after the back-off",
			"retry_after", c.cfg.RetryAfter, "revokes_previous_access_token", c.RevokesPreviousAccessToken(lease.Provider))
		dbAt, _ := c.clock.after(c.cfg.RetryAfter)
		st := domain.RefreshState{LastError: out.Code, NextAttemptAt: dbAt}
		c.obs.RefreshAttempt(lease.Provider, out.Code)
		return c.released(ctx, lease, attempt, st, cause, events)
	default:
		log.Warn("refresh failed transiently; backing off", "retry_after", c.cfg.RetryAfter)
		dbAt, _ := c.clock.after(c.cfg.RetryAfter)
		st := domain.RefreshState{LastError: out.Code, NextAttemptAt: dbAt}
		c.obs.RefreshAttempt(lease.Provider, out.Code)
		return c.released(ctx, lease, attempt, st, cause, events)
	}
}

// released releases the lease with st after a transient failure and
// answers the caller by the refresh rule on the row as released: the stored
// access token when the rule serves it, else unavailable until the back-off
// ends (Retry-After on the service's clock, st's back-off being on the
// database's).
func (c *RefreshCoordinator) released(ctx context.Context, lease domain.SealedAuthTokens, attempt string, st domain.RefreshState, cause error, events []domain.AuditEvent) (AccessToken, error) {
	c.release(ctx, lease, attempt, st, events)
	row := lease
	row.Refresh = st
	row.Refresh.AmbiguousRetries = lease.Refresh.AmbiguousRetries
	if serving := row.Servable(); c.step(serving, c.clock.Database()) == domain.StepServe {
		return c.serve(serving)
	}
	return AccessToken{}, &domain.RetryAtError{At: c.clock.ServiceTime(st.NextAttemptAt), Err: fmt.Errorf("%w: %w", domain.ErrUnavailable, cause)}
}

// release ends a lease without new tokens, setting the refresh state to st
// (keeping the row's count of ambiguous retries). Like the store of new
// tokens it is retried while the database is unavailable (commitFenced): a
// lease left to lapse makes the user reconnect. A row that is someone
// else's now is left alone. events, the attempt's audit events, ride with
// the release (commitFenced).
func (c *RefreshCoordinator) release(ctx context.Context, lease domain.SealedAuthTokens, attempt string, st domain.RefreshState, events []domain.AuditEvent) {
	// A try that committed although its answer was lost needs no
	// recognising: the row is someone else's or already released, and
	// either way nothing is left to do (errLeaseLost).
	_, err := c.commitFenced(ctx, lease, attempt, func(domain.SealedAuthTokens) bool { return false }, func(cur domain.SealedAuthTokens) domain.SealedAuthTokens {
		next := cur
		next.Refresh = st
		next.Refresh.AmbiguousRetries = cur.Refresh.AmbiguousRetries
		return next
	}, events)
	if err != nil && !errors.Is(err, errLeaseLost) {
		c.log.Error("could not release a refresh lease", "user", lease.User, "provider", lease.Provider, "err", err)
	}
}

// Drain waits for refreshes started by reads to finish (their provider calls and
// commits are bounded by the lease) or for ctx to end. Shutdown calls it
// before the pool closes: a refresh cut off after the provider rotated the
// refresh token would force the user to reconnect. (The worker's refreshes
// are waited for by RefreshWorker.Stop.)
func (c *RefreshCoordinator) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		c.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("refreshes still in flight at shutdown: %w", ctx.Err())
	}
}
