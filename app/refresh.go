package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tokenstore/tokenstore/domain"
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

// DefaultRefreshLease is RefreshConfig.Lease's default.
const DefaultRefreshLease = 45 * time.Second

func (c RefreshConfig) withDefaults() RefreshConfig {
	if c.Lease <= 0 {
		c.Lease = DefaultRefreshLease
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = 20 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 10 * time.Second
	}
	if c.RejectedRetryAfter <= 0 {
		c.RejectedRetryAfter = 5 * time.Minute
	}
	if c.Instance == "" {
		host, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c
}

// Refresh failure codes stored with the tokens and shown in listings.
const (
	ErrCodeGrantRevoked        = "invalid_grant"
	ErrCodeProviderRejected    = "provider_rejected"
	ErrCodeProviderUnavailable = "provider_unavailable"
	ErrCodeInterrupted         = "refresh_interrupted"
	ErrCodeUndecryptable       = "refresh_token_undecryptable"
)

// errLeaseLost: the row changed under an attempt (new tokens were stored,
// or the lease lapsed and was taken over); the attempt's result is dropped.
var errLeaseLost = errors.New("refresh lease lost")

// newAttempt names one refresh attempt; unique across instances and
// attempts, so even two attempts in one process cannot share a lease.
func (s *TokenService) newAttempt() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return s.refreshCfg.Instance + "/" + hex.EncodeToString(b[:])
}

// refreshShared makes every caller in this process that asks for the same
// tokens share one attempt; each caller still gives up after WaitTimeout or
// when its own context ends.
func (s *TokenService) refreshShared(ctx context.Context, user domain.UserID, provider domain.Provider) (AccessToken, error) {
	key := string(provider) + "\x00" + string(user)
	ch := s.flight.DoChan(key, func() (any, error) {
		// The attempt outlives any one caller: abandoning it half-way would
		// leave a lease to lapse and force the user to reconnect. Drain
		// waits for it at shutdown.
		s.inflight.Add(1)
		defer s.inflight.Done()
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.refreshCfg.Lease)
		defer cancel()
		return s.refresh(actx, user, provider)
	})
	timer := time.NewTimer(s.refreshCfg.WaitTimeout)
	defer timer.Stop()
	select {
	case res := <-ch:
		if res.Err != nil {
			return AccessToken{}, res.Err
		}
		return res.Val.(AccessToken), nil
	case <-timer.C:
		return AccessToken{}, fmt.Errorf("%w: the refresh of %s tokens did not finish within %s",
			domain.ErrUnavailable, provider, s.refreshCfg.WaitTimeout)
	case <-ctx.Done():
		return AccessToken{}, ctx.Err()
	}
}

type decision int

const (
	decideFresh       decision = iota // no refresh needed (any more)
	decideTake                        // take the lease and refresh
	decideWait                        // another attempt holds the lease
	decideInterrupted                 // a lease lapsed: mark for re-authorization
	decideReauth                      // re-authorization required
	decideNoRefresh                   // nothing to refresh with
	decideBackoff                     // transient failure recently: not yet
)

// decide is the double-checked decision, made on the row as re-read under
// its lock and by the database's clock.
func (s *TokenService) decide(t domain.SealedAuthTokens, now time.Time) decision {
	switch {
	case t.Refresh.ReauthRequired:
		return decideReauth
	case t.Refresh.Leased(now):
		return decideWait
	case t.Refresh.LeaseLapsed(now):
		return decideInterrupted
	case !s.policyFor(t.Provider).NeedsRefresh(t.AccessExpiry, now):
		return decideFresh
	case !s.policyFor(t.Provider).CanRefresh(t.RefreshToken != nil, t.RefreshExpiry, now):
		return decideNoRefresh
	case !t.Refresh.NextAttemptAt.IsZero() && now.Before(t.Refresh.NextAttemptAt):
		return decideBackoff
	}
	return decideTake
}

// refresh runs the refresh protocol for one user's provider tokens.
func (s *TokenService) refresh(ctx context.Context, user domain.UserID, provider domain.Provider) (AccessToken, error) {
	deadline := time.Now().Add(s.refreshCfg.WaitTimeout)
	for {
		attempt := s.newAttempt()
		var d decision
		row, err := s.repo.UpdateAuthTokens(ctx, user, provider,
			func(cur domain.SealedAuthTokens, now time.Time) (*domain.SealedAuthTokens, error) {
				d = s.decide(cur, now)
				next := cur
				switch d {
				case decideTake:
					next.Refresh.LeaseOwner, next.Refresh.LeaseUntil = attempt, now.Add(s.refreshCfg.Lease)
				case decideInterrupted:
					next.Refresh = domain.RefreshState{ReauthRequired: true, LastError: ErrCodeInterrupted}
				default:
					return nil, nil
				}
				return &next, nil
			})
		if err != nil {
			return AccessToken{}, err
		}
		switch d {
		case decideFresh:
			return s.open(row)
		case decideTake:
			return s.runRefresh(ctx, row, attempt)
		case decideInterrupted:
			s.log.Warn("refresh was interrupted after its lease lapsed; the provider may have rotated the refresh token, so the user must reconnect",
				"user", user, "provider", provider)
			return AccessToken{}, s.reauthError(provider, ErrCodeInterrupted)
		case decideReauth:
			return AccessToken{}, s.reauthError(provider, row.Refresh.LastError)
		case decideNoRefresh, decideBackoff:
			if !row.AccessExpiry.Expired(s.now()) {
				return s.open(row)
			}
			if d == decideNoRefresh {
				return AccessToken{}, s.reauthError(provider, "refresh_token_expired")
			}
			return AccessToken{}, &domain.RetryAtError{At: row.Refresh.NextAttemptAt, Err: fmt.Errorf("%w: %s failed recently (%s); retry after %s",
				domain.ErrUnavailable, provider, row.Refresh.LastError, row.Refresh.NextAttemptAt.Format(time.RFC3339))}
		case decideWait:
			if !row.AccessExpiry.Expired(s.now()) {
				return s.open(row) // still valid: no reason to wait
			}
			if err := s.waitForLease(ctx, row, deadline); err != nil {
				return AccessToken{}, err
			}
		}
	}
}

func (s *TokenService) reauthError(provider domain.Provider, code string) error {
	if code == "" {
		code = "refresh_token_expired"
	}
	return fmt.Errorf("%s tokens (%s): %w", provider, code, domain.ErrReauthRequired)
}

// waitForLease polls the row, holding no lock or connection between polls,
// until the lease held on it is released, lapses or deadline passes.
func (s *TokenService) waitForLease(ctx context.Context, row domain.SealedAuthTokens, deadline time.Time) error {
	for {
		wait := min(s.refreshCfg.PollInterval, time.Until(deadline))
		if wait <= 0 {
			return fmt.Errorf("%w: another instance is refreshing the %s tokens and has not finished", domain.ErrUnavailable, row.Provider)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		cur, err := s.repo.GetAuthTokens(ctx, row.User, row.Provider)
		if err != nil {
			return err
		}
		if cur.Version != row.Version || !cur.Refresh.Leased(s.now()) {
			return nil
		}
	}
}

// runRefresh calls the provider under a lease taken at lease.Version and
// stores the outcome. The new access token is returned only after it is
// committed: a caller never holds a token the database does not.
func (s *TokenService) runRefresh(ctx context.Context, lease domain.SealedAuthTokens, attempt string) (AccessToken, error) {
	refreshToken, err := s.openAt(RefreshTokenPlace(lease.User, lease.Provider),
		domain.Ciphertext{KeyID: lease.KeyID, Data: lease.RefreshToken})
	if err != nil {
		// Retrying cannot help until someone fixes the row or the keyring:
		// back off as for a configuration error, so the worker moves on.
		s.release(ctx, lease, attempt, domain.RefreshState{
			LastError: ErrCodeUndecryptable, NextAttemptAt: s.now().Add(s.refreshCfg.RejectedRetryAfter),
		})
		return AccessToken{}, err
	}
	res, err := s.refresher.Refresh(ctx, lease.Provider, refreshToken)
	if err != nil {
		return s.refreshFailed(ctx, lease, attempt, err)
	}
	next, err := s.sealRefreshed(lease, res, refreshToken)
	if err != nil {
		// Nothing was stored; the provider may have rotated the refresh
		// token, so the lease is left to lapse rather than released.
		return AccessToken{}, fmt.Errorf("%w: sealing refreshed tokens: %v", domain.ErrUnavailable, err)
	}
	stored, err := s.repo.UpdateAuthTokens(ctx, lease.User, lease.Provider,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, error) {
			if cur.Version != lease.Version || cur.Refresh.LeaseOwner != attempt {
				return nil, errLeaseLost
			}
			return &next, nil
		})
	switch {
	case errors.Is(err, errLeaseLost), errors.Is(err, domain.ErrNotFound):
		// The user stored new tokens (or deleted them) while the provider
		// answered: theirs win, ours are dropped. Answer from the row as it
		// is now.
		s.log.Info("tokens changed during a refresh; the refreshed tokens are dropped",
			"user", lease.User, "provider", lease.Provider)
		cur, gerr := s.repo.GetAuthTokens(ctx, lease.User, lease.Provider)
		if gerr != nil {
			return AccessToken{}, gerr
		}
		if cur.Refresh.ReauthRequired || cur.AccessExpiry.Expired(s.now()) {
			return AccessToken{}, fmt.Errorf("%w: the %s tokens changed during a refresh; retry", domain.ErrUnavailable, lease.Provider)
		}
		return s.open(cur)
	case err != nil:
		// The provider issued new tokens that are not stored. The lease is
		// left to lapse: whoever finds it lapsed marks the tokens for
		// re-authorization instead of sending the old refresh token again.
		s.log.Error("refreshed tokens could not be stored", "user", lease.User, "provider", lease.Provider, "err", err)
		return AccessToken{}, fmt.Errorf("%w: the refreshed %s tokens could not be stored", domain.ErrUnavailable, lease.Provider)
	}
	if at, ok := stored.AccessExpiry.Time(); ok {
		if life, margin := at.Sub(s.now()), s.marginFor(lease.Provider); life <= margin {
			s.log.Warn("the provider's access tokens live no longer than the refresh margin, so every read refreshes them: "+
				"set refresh_margin in this provider's entry below their lifetime",
				"provider", lease.Provider, "lifetime", life.Round(time.Second), "margin", margin)
		}
	}
	s.log.Info("tokens refreshed", "user", lease.User, "provider", lease.Provider,
		"rotated", !res.RefreshToken.IsZero(), "expires", stored.AccessExpiry.String())
	return AccessToken{User: lease.User, Provider: lease.Provider, Token: res.AccessToken, Expiry: stored.AccessExpiry}, nil
}

// sealRefreshed builds the row to store: the provider's new access token,
// its new refresh token if it rotated it (else the old one), and their
// expiries, all sealed under the current primary key.
func (s *TokenService) sealRefreshed(lease domain.SealedAuthTokens, res domain.RefreshedTokens, oldRefresh domain.Secret) (domain.SealedAuthTokens, error) {
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
		t.AccessExpiry = domain.At(s.now().Add(2 * s.marginFor(lease.Provider)))
	}
	if !res.RefreshToken.IsZero() {
		t.RefreshToken, t.RefreshExpiry = res.RefreshToken, res.RefreshExpiry
	}
	if t.AccessToken.IsZero() {
		return domain.SealedAuthTokens{}, errors.New("provider returned no access token")
	}
	return s.seal(t)
}

// refreshFailed records a provider failure. Permanent failures mark the
// tokens for re-authorization (no provider call until new tokens are
// stored); transient ones back off and keep the old token while it lasts.
func (s *TokenService) refreshFailed(ctx context.Context, lease domain.SealedAuthTokens, attempt string, cause error) (AccessToken, error) {
	log := s.log.With("user", lease.User, "provider", lease.Provider, "err", cause)
	switch {
	case errors.Is(cause, domain.ErrGrantRevoked):
		log.Warn("refresh token rejected by the provider; the user must reconnect")
		s.release(ctx, lease, attempt, domain.RefreshState{ReauthRequired: true, LastError: ErrCodeGrantRevoked})
		return AccessToken{}, fmt.Errorf("%w: %w", s.reauthError(lease.Provider, ErrCodeGrantRevoked), cause)
	case errors.Is(cause, domain.ErrProviderRejected):
		// invalid_client, a wrong token URL...: tokenstore's configuration,
		// not the user's grant. Marking every user of the provider for
		// re-authorization would outlive the fix, so back off for longer
		// instead; refreshes resume once the configuration is corrected.
		log.Error("the provider rejected the refresh request: check the provider configuration",
			"retry_after", s.refreshCfg.RejectedRetryAfter)
		next := s.now().Add(s.refreshCfg.RejectedRetryAfter)
		s.release(ctx, lease, attempt, domain.RefreshState{LastError: ErrCodeProviderRejected, NextAttemptAt: next})
		if !lease.AccessExpiry.Expired(s.now()) {
			return s.open(lease)
		}
		return AccessToken{}, &domain.RetryAtError{At: next, Err: fmt.Errorf("%w: %w", domain.ErrUnavailable, cause)}
	case errors.Is(cause, domain.ErrProviderNotConfigured):
		s.release(ctx, lease, attempt, domain.RefreshState{
			LastError: ErrCodeProviderRejected, NextAttemptAt: s.now().Add(s.refreshCfg.RejectedRetryAfter),
		})
		if lease.AccessExpiry.Expired(s.now()) {
			return AccessToken{}, fmt.Errorf("%s tokens: %w", lease.Provider, domain.ErrTokenExpired)
		}
		return s.open(lease)
	default:
		log.Warn("refresh failed transiently; backing off", "retry_after", s.refreshCfg.RetryAfter)
		next := s.now().Add(s.refreshCfg.RetryAfter)
		s.release(ctx, lease, attempt, domain.RefreshState{LastError: ErrCodeProviderUnavailable, NextAttemptAt: next})
		if !lease.AccessExpiry.Expired(s.now()) {
			return s.open(lease)
		}
		return AccessToken{}, &domain.RetryAtError{At: next, Err: fmt.Errorf("%w: %w", domain.ErrUnavailable, cause)}
	}
}

// release ends a lease without new tokens, setting the refresh state to st.
// A failure here leaves the lease to lapse, which is the safe outcome.
func (s *TokenService) release(ctx context.Context, lease domain.SealedAuthTokens, attempt string, st domain.RefreshState) {
	_, err := s.repo.UpdateAuthTokens(ctx, lease.User, lease.Provider,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, error) {
			if cur.Version != lease.Version || cur.Refresh.LeaseOwner != attempt {
				return nil, nil // someone else's row now
			}
			next := cur
			next.Refresh = st
			return &next, nil
		})
	if err != nil {
		s.log.Error("could not release a refresh lease", "user", lease.User, "provider", lease.Provider, "err", err)
	}
}

// Drain waits for refreshes in flight to finish (their provider calls and
// commits are bounded by the lease) or for ctx to end. Shutdown calls it
// before the pool closes: a refresh cut off after the provider rotated the
// refresh token would force the user to reconnect.
func (s *TokenService) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("refreshes still in flight at shutdown: %w", ctx.Err())
	}
}

// open decrypts a row's access token for a caller.
func (s *TokenService) open(t domain.SealedAuthTokens) (AccessToken, error) {
	token, err := s.openAt(AccessTokenPlace(t.User, t.Provider), domain.Ciphertext{KeyID: t.KeyID, Data: t.AccessToken})
	if err != nil {
		return AccessToken{}, err
	}
	return AccessToken{User: t.User, Provider: t.Provider, Token: token, Expiry: t.AccessExpiry}, nil
}
