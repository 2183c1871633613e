package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Config tunes the TokenService. The zero value uses the defaults.
type Config struct {
	// RefreshMargin: an access token expiring within this margin needs a
	// refresh. Zero means domain.DefaultRefreshMargin.
	RefreshMargin time.Duration
	// ProviderMargins overrides RefreshMargin per provider.
	ProviderMargins map[domain.Provider]time.Duration
	// LifetimeFraction caps every margin (RefreshMargin, ProviderMargins) at
	// this fraction of each access token's lifetime (domain.EffectiveMargin),
	// so a token living less than the margin (Keycloak's 5 minutes against
	// the default 15) is not refreshed on every read. Zero means
	// domain.DefaultLifetimeFraction; otherwise it must be in (0, 1).
	LifetimeFraction float64
	// Refresh tunes how refreshes are coordinated.
	Refresh RefreshConfig
	// Now is the service's clock; nil: time.Now. A test hook, to run the
	// service with a clock ahead of or behind the database's.
	Now func() time.Time
	// Providers are the declared providers (the providers setting, refreshed
	// or store-only): PutAuthTokens stores tokens only for these, so a
	// misspelt name is refused instead of stored where nothing refreshes or
	// reads it. Empty declares none: nothing can be stored. Tokens stored
	// before a provider left the list stay readable, listable and deletable.
	Providers []domain.Provider
	// Observer is told of refresh attempts, provider calls and waits for
	// another instance's refresh (metrics); nil: NopObserver.
	Observer Observer
	// TracerProvider makes the use cases' spans (one per TokenService
	// call, refresh and wait for a lease); nil: none.
	TracerProvider trace.TracerProvider
	// Envelope is the envelope format new values are sealed in (the
	// envelope setting): "" or EnvelopeBinary, or EnvelopeJSON for
	// releases before the binary envelope to read them. Values in either
	// format are read.
	Envelope EnvelopeFormat
	// Revoker revokes deleted tokens at their provider when the provider
	// asks for it (ports.TokenRevoker.RevokesOnDelete): DeleteAuthTokens
	// then queues the revocation with the delete, and the DeliveryWorker
	// sends it. nil: no upstream revocation.
	Revoker ports.TokenRevoker
}

// TokenService is the token store's use cases.
type TokenService struct {
	rows      sealer
	declared  []domain.Provider
	repo      ports.TokenRepository
	refreshes *RefreshCoordinator
	log       *slog.Logger
	now       func() time.Time // the service's clock (clock.Service)
	clock     *Clock
	audit     *Auditor // nil: no audit trail
	tracer    trace.Tracer
	revoker   ports.TokenRevoker // nil: no upstream revocation
	cache     ports.ReadCache    // nil: reads always reach the database
}

// NewTokenService returns the service. refresher must not be nil: pass
// NoRefresher{} when no provider is configured for refresh; then an expired
// access token is reported with domain.ErrTokenExpired. log may be nil
// (discard). audit keeps the audit trail of handed-out tokens and writes;
// nil keeps none.
func NewTokenService(cfg Config, log *slog.Logger, crypter ports.TokenCrypter, repo ports.TokenRepository, refresher ports.TokenRefresher, audit *Auditor) *TokenService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	margin := domain.DefaultRefreshMargin
	if cfg.RefreshMargin > 0 {
		margin = cfg.RefreshMargin
	}
	fraction := domain.DefaultLifetimeFraction
	if cfg.LifetimeFraction > 0 && cfg.LifetimeFraction < 1 {
		fraction = cfg.LifetimeFraction
	}
	rows := sealer{crypter: crypter, format: cfg.Envelope, log: log}
	clock := newClock(cfg.Now)
	obs := cfg.Observer
	if obs == nil {
		obs = NopObserver{}
	}
	tracer := newTracer(cfg.TracerProvider)
	// A repository that may answer reads from memory says so by being a
	// ports.ReadCache too.
	cache, _ := repo.(ports.ReadCache)
	s := &TokenService{rows: rows, declared: cfg.Providers, repo: repo, log: log, now: clock.Service, clock: clock, audit: audit, tracer: tracer, revoker: cfg.Revoker, cache: cache}
	s.refreshes = &RefreshCoordinator{
		rows: rows, repo: repo, cache: cache, refresher: refresher, margin: margin, margins: cfg.ProviderMargins, fraction: fraction,
		cfg: cfg.Refresh.withDefaults(), log: log, now: clock.Service, clock: clock, audit: audit, obs: obs, tracer: tracer,
	}
	return s
}

// Clock is the service's two clocks, for the SkewMonitor that measures
// their skew.
func (s *TokenService) Clock() *Clock { return s.clock }

// RecordUnserved records a request the API refused before it reached the
// service (401, 403) or that failed (404, 409, 503...): see
// Auditor.RecordUnserved.
func (s *TokenService) RecordUnserved(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int, code string) {
	s.audit.RecordUnserved(ctx, action, user, provider, status, code)
}

// Refreshes is the service's refresh protocol, for the proactive worker and
// for draining refreshes in flight at shutdown.
func (s *TokenService) Refreshes() *RefreshCoordinator { return s.refreshes }

// ProviderStatus describes a user's stored tokens for one provider, without
// any token material.
type ProviderStatus struct {
	Provider        domain.Provider
	State           domain.TokenState
	AccessExpiry    domain.Expiry
	RefreshExpiry   domain.Expiry
	HasRefreshToken bool
	// LastError is the code of the last failed refresh, "" if none.
	LastError string
	// AmbiguousRetries counts the refreshes that sent the stored refresh
	// token again after a failure of unknown outcome (domain.RefreshState).
	AmbiguousRetries int
	UpdatedAt        time.Time
}

// AccessToken is a usable access token.
type AccessToken struct {
	User     domain.UserID
	Provider domain.Provider
	Token    domain.Secret
	Expiry   domain.Expiry
}

// PutAuthTokens stores (or replaces) a user's tokens for a declared
// provider (Config.Providers); an undeclared one is a *domain.ValidationError
// for field provider that lists the declared names.
func (s *TokenService) PutAuthTokens(ctx context.Context, t domain.AuthTokens) (_ ProviderStatus, err error) {
	ctx, span := startSpan(ctx, s.tracer, "TokenService.PutAuthTokens", t.Provider)
	defer func() { endSpan(span, err) }()
	if err := validateDeclared(t, s.declared); err != nil {
		return ProviderStatus{}, err
	}
	sealed, err := s.rows.seal(t)
	if err != nil {
		return ProviderStatus{}, err
	}
	sealed.AccessObtainedAt = s.now()
	var stored domain.SealedAuthTokens
	err = s.audit.write(ctx, domain.AuditPutTokens, t.User, t.Provider, 200, func(events []domain.AuditEvent) (err error) {
		stored, err = s.repo.PutAuthTokens(ctx, sealed, events...)
		return err
	})
	if err != nil {
		return ProviderStatus{}, err
	}
	return s.status(t, stored), nil
}

// GetAccessToken returns a usable access token for the user's provider,
// refreshing it first when it expires within the refresh margin. A token
// that has expired is never returned: it is refreshed, or the error says why
// not (domain.ErrTokenExpired with no refresher for the provider,
// domain.ErrReauthRequired when the user must reconnect,
// domain.ErrUnavailable when the provider or another instance's refresh does
// not answer in time). The token is returned only once the audit trail
// recorded it (fail-closed; see Auditor).
func (s *TokenService) GetAccessToken(ctx context.Context, user domain.UserID, provider domain.Provider) (_ AccessToken, err error) {
	ctx, span := startSpan(ctx, s.tracer, "TokenService.GetAccessToken", provider)
	defer func() { endSpan(span, err) }()
	token, err := s.accessToken(ctx, user, provider)
	if err != nil {
		return AccessToken{}, err
	}
	if err := s.audit.handout(ctx, domain.AuditReadAccessToken, user, provider); err != nil {
		s.log.ErrorContext(ctx, "access token withheld: the audit trail did not record it", "err", err)
		return AccessToken{}, err
	}
	return token, nil
}

func (s *TokenService) accessToken(ctx context.Context, user domain.UserID, provider domain.Provider) (AccessToken, error) {
	if s.cache != nil {
		// The read cache keeps only what serving reads: a kept row is acted
		// on only when it is served as it is. Every other answer
		// (refresh, wait, re-authorize, back off, expired) is decided by
		// the protocol on the row as the database has it, under its lock,
		// one attempt for every concurrent caller of this instance.
		row, err := s.cache.ServableAuthTokens(ctx, user, provider)
		if err != nil {
			return AccessToken{}, err
		}
		if s.refreshes.step(row, s.clock.Database()) == domain.StepServe {
			return s.refreshes.serve(row)
		}
		return s.refreshes.Refresh(ctx, user, provider)
	}
	sealed, err := s.repo.GetAuthTokens(ctx, user, provider)
	if err != nil {
		return AccessToken{}, err
	}
	// Without the row lock: the database's clock as estimated from the
	// measured skew (the re-check under the lock reads it).
	switch step := s.refreshes.step(sealed.Servable(), s.clock.Database()); step {
	case domain.StepRefresh, domain.StepWait, domain.StepInterrupted:
		// The protocol decides again on the row as the database has it,
		// under its lock, one attempt for every concurrent caller of this
		// instance.
		return s.refreshes.Refresh(ctx, user, provider)
	default:
		return s.refreshes.answer(sealed, step)
	}
}

// answer is the outcome of the refresh rule's steps that need no lease:
// the stored access token, or why it cannot be had.
func (c *RefreshCoordinator) answer(row domain.SealedAuthTokens, step domain.RefreshStep) (AccessToken, error) {
	switch step {
	case domain.StepServe:
		return c.serve(row.Servable())
	case domain.StepReauth:
		code := domain.CodeRefreshTokenExpired
		if row.Refresh.ReauthRequired {
			code = row.Refresh.LastError
		}
		return AccessToken{}, reauthError(row.Provider, code)
	case domain.StepBackOff:
		at := c.clock.ServiceTime(row.Refresh.NextAttemptAt) // for Retry-After
		return AccessToken{}, &domain.RetryAtError{At: at, Err: fmt.Errorf("%w: %s failed recently (%s); retry after %s",
			domain.ErrUnavailable, row.Provider, row.Refresh.LastError, at.Format(time.RFC3339))}
	default: // domain.StepExpired
		return AccessToken{}, fmt.Errorf("%s tokens of user %q: %w", row.Provider, row.User, domain.ErrTokenExpired)
	}
}

// DeleteAuthTokens forgets a user's tokens for a provider. When the
// provider revokes on delete (Config.Revoker), the same transaction
// queues their upstream revocation, which the DeliveryWorker sends: a
// provider outage never delays or fails the delete.
func (s *TokenService) DeleteAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (err error) {
	ctx, span := startSpan(ctx, s.tracer, "TokenService.DeleteAuthTokens", provider)
	defer func() { endSpan(span, err) }()
	del := s.repo.DeleteAuthTokens
	if s.revoker != nil && s.revoker.RevokesOnDelete(provider) {
		del = s.repo.DeleteAuthTokensRevoking
	}
	return s.audit.write(ctx, domain.AuditDeleteTokens, user, provider, 204, func(events []domain.AuditEvent) error {
		return del(ctx, user, provider, events...)
	})
}

// ListProviders lists the providers the user has tokens for, by name, with
// the state of each at the current time.
func (s *TokenService) ListProviders(ctx context.Context, user domain.UserID) (_ []ProviderStatus, err error) {
	ctx, span := startSpan(ctx, s.tracer, "TokenService.ListProviders", "")
	defer func() { endSpan(span, err) }()
	infos, err := s.repo.ListProviders(ctx, user)
	if err != nil {
		return nil, err
	}
	db, service := s.clock.Database(), s.clock.Service()
	out := make([]ProviderStatus, 0, len(infos))
	for _, info := range infos {
		margin := s.refreshes.effectiveMargin(info.Provider, info.AccessObtainedAt, info.AccessExpiry)
		out = append(out, ProviderStatus{
			Provider:         info.Provider,
			State:            info.RefreshView(margin).TwoClocks(db, service).State(db),
			AccessExpiry:     info.AccessExpiry,
			RefreshExpiry:    info.RefreshExpiry,
			HasRefreshToken:  info.HasRefreshToken,
			LastError:        info.LastError,
			AmbiguousRetries: info.AmbiguousRetries,
			UpdatedAt:        info.UpdatedAt,
		})
	}
	return out, nil
}

// PutOfflineToken stores (or replaces) the user's offline token.
func (s *TokenService) PutOfflineToken(ctx context.Context, t domain.OfflineToken) (_ domain.OfflineToken, err error) {
	ctx, span := startSpan(ctx, s.tracer, "TokenService.PutOfflineToken", "")
	defer func() { endSpan(span, err) }()
	if err := t.Validate(); err != nil {
		return domain.OfflineToken{}, err
	}
	sealed, err := s.rows.sealOffline(t)
	if err != nil {
		return domain.OfflineToken{}, err
	}
	var stored domain.SealedOfflineToken
	err = s.audit.write(ctx, domain.AuditPutOfflineToken, t.User, "", 200, func(events []domain.AuditEvent) (err error) {
		stored, err = s.repo.PutOfflineToken(ctx, sealed, events...)
		return err
	})
	if err != nil {
		return domain.OfflineToken{}, err
	}
	t.CreatedAt, t.UpdatedAt = stored.CreatedAt, stored.UpdatedAt
	return t, nil
}

// GetOfflineToken returns the user's offline token.
func (s *TokenService) GetOfflineToken(ctx context.Context, user domain.UserID) (_ domain.OfflineToken, err error) {
	ctx, span := startSpan(ctx, s.tracer, "TokenService.GetOfflineToken", "")
	defer func() { endSpan(span, err) }()
	sealed, err := s.repo.GetOfflineToken(ctx, user)
	if err != nil {
		return domain.OfflineToken{}, err
	}
	token, err := s.rows.openAt(OfflineTokenPlace(user), domain.Ciphertext{KeyID: sealed.KeyID, Data: sealed.Token})
	if err != nil {
		return domain.OfflineToken{}, err
	}
	if err := s.audit.handout(ctx, domain.AuditReadOfflineToken, user, ""); err != nil {
		s.log.ErrorContext(ctx, "offline token withheld: the audit trail did not record it", "err", err)
		return domain.OfflineToken{}, err
	}
	return domain.OfflineToken{User: user, Token: token, CreatedAt: sealed.CreatedAt, UpdatedAt: sealed.UpdatedAt}, nil
}

// DeleteOfflineToken forgets the user's offline token.
func (s *TokenService) DeleteOfflineToken(ctx context.Context, user domain.UserID) (err error) {
	ctx, span := startSpan(ctx, s.tracer, "TokenService.DeleteOfflineToken", "")
	defer func() { endSpan(span, err) }()
	return s.audit.write(ctx, domain.AuditDeleteOfflineToken, user, "", 204, func(events []domain.AuditEvent) error {
		return s.repo.DeleteOfflineToken(ctx, user, events...)
	})
}

func (s *TokenService) status(t domain.AuthTokens, stored domain.SealedAuthTokens) ProviderStatus {
	margin := s.refreshes.effectiveMargin(t.Provider, stored.AccessObtainedAt, t.AccessExpiry)
	return ProviderStatus{
		Provider:        t.Provider,
		State:           t.RefreshView(margin).TwoClocks(s.clock.Database(), s.clock.Service()).State(s.clock.Database()),
		AccessExpiry:    t.AccessExpiry,
		RefreshExpiry:   t.RefreshExpiry,
		HasRefreshToken: t.HasRefreshToken(),
		UpdatedAt:       stored.UpdatedAt,
	}
}
