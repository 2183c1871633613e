// Package ports declares the interfaces tokenstore's use cases need from the
// outside world. Adapters implement them; app depends only on them. They are
// shaped around the use cases, not around tables or libraries: no driver,
// sqlc or crypto type appears here.
package ports

import (
	"context"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// TokenCrypter seals token material before it reaches storage. Implementations
// hold a keyring: one primary key that encrypts and older keys that still
// decrypt, each known by a deterministic KeyID. It seals and opens bytes:
// what the bytes say (app's envelope, which binds each value to its row and
// field) is the use cases' business, not the crypter's.
type TokenCrypter interface {
	// Seal encrypts plaintext under the primary key. It neither keeps nor
	// clears plaintext: the caller owns it (and clears it once sealed).
	Seal(plaintext []byte) (domain.Ciphertext, error)
	// Open decrypts c with the key c.KeyID names (an empty KeyID, from a
	// system that did not record one, tries every key). The plaintext is a
	// new buffer the caller owns: it clears it once done. Failures wrap
	// domain.ErrDecrypt and never quote c's content.
	Open(c domain.Ciphertext) ([]byte, error)
}

// TokenRepository stores sealed tokens. It never sees plaintext.
//
// Its four writes take optional audit events: given any, the write and its
// events commit in one transaction (neither without the other: a write the
// audit trail cannot record fails with domain.ErrAuditUnavailable and
// changes nothing); given none, the write is one statement, as before.
type TokenRepository interface {
	// PutAuthTokens inserts or replaces a user's tokens for a provider in one
	// statement and returns the row as stored (version and timestamps set).
	PutAuthTokens(ctx context.Context, t domain.SealedAuthTokens, audit ...domain.AuditEvent) (domain.SealedAuthTokens, error)
	// GetAuthTokens returns domain.ErrNotFound when nothing is stored.
	GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error)
	// UpdateAuthTokens is a unit of work: it locks the row, passes it and the
	// storage's clock to fn, and stores what fn returns (tokens and refresh
	// state, and the audit events of that change), all in one transaction:
	// the row and its events commit together or not at all (an audit store
	// that refuses the events fails the call with
	// domain.ErrAuditUnavailable and leaves the row as it was). fn returning
	// a nil row leaves the row as it is (its events, if any, are still
	// stored); an error or panic in fn rolls back. A row locked by someone
	// else for longer than the lock timeout fails with domain.ErrBusy; a
	// missing row with domain.ErrNotFound. fn must be quick: the row stays
	// locked while it runs.
	UpdateAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider,
		fn func(current domain.SealedAuthTokens, now time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error)) (domain.SealedAuthTokens, error)
	// DeleteAuthTokens returns domain.ErrNotFound when nothing was stored.
	DeleteAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error
	// DeleteAuthTokensRevoking is DeleteAuthTokens that also queues the
	// upstream revocation of the deleted tokens, in the same transaction:
	// the tokens.deleted event keeps their ciphertexts
	// (domain.SealedRevocation) and a delivery to domain.RevocationTarget
	// is queued (DeliveryQueue). Both are written whatever the event policy
	// (revocation needs them); the feed lists the event as any other.
	DeleteAuthTokensRevoking(ctx context.Context, user domain.UserID, provider domain.Provider, audit ...domain.AuditEvent) error
	// ListProviders lists the providers a user has tokens for, by name.
	ListProviders(ctx context.Context, user domain.UserID) ([]domain.ProviderTokenInfo, error)

	// PutOfflineToken inserts or replaces the user's offline token.
	PutOfflineToken(ctx context.Context, t domain.SealedOfflineToken, audit ...domain.AuditEvent) (domain.SealedOfflineToken, error)
	// GetOfflineToken returns domain.ErrNotFound when nothing is stored.
	GetOfflineToken(ctx context.Context, user domain.UserID) (domain.SealedOfflineToken, error)
	// DeleteOfflineToken returns domain.ErrNotFound when nothing was stored.
	DeleteOfflineToken(ctx context.Context, user domain.UserID, audit ...domain.AuditEvent) error
}

// RefreshQueue is storage seen as the proactive refresh worker's queue: it
// hands out rows due for refresh, leased, and sweeps leases whose refresh
// died. Its rule for "due" is domain.NextRefreshStep's StepRefresh.
type RefreshQueue interface {
	// ClaimDueRefreshes leases up to c.Limit rows for which
	// domain.NextRefreshStep says StepRefresh, judged with each row's
	// domain.EffectiveMargin(c.Horizon, c.LifetimeFraction, ...) as the
	// margin, only c.Providers as refreshable, and the storage's clock:
	// refresh token present and unexpired, no lease (live or lapsed), not
	// in back-off, not needing re-authorization. Each claimed row carries
	// the lease (owner c.Owner, until now + c.Lease) at the version it was
	// taken at. Concurrent claimers get disjoint rows. The soonest-expiring
	// rows are claimed first; the result is in no particular order.
	ClaimDueRefreshes(ctx context.Context, c RefreshClaim) ([]domain.SealedAuthTokens, error)
	// MarkLapsedLeases marks every row whose refresh lease ran out
	// (domain.RefreshState.LeaseLapsed by the storage's clock) as needing
	// re-authorization (domain.CodeRefreshInterrupted), releases the lease,
	// and returns one audit event per row it marked: event with the row's
	// User and Provider. With record, those events are stored with the
	// marks, in the same transaction (an audit store that refuses them
	// fails the call with domain.ErrAuditUnavailable and marks nothing);
	// without, they are only returned.
	MarkLapsedLeases(ctx context.Context, event domain.AuditEvent, record bool) ([]domain.AuditEvent, error)
}

// RefreshClaim is one ClaimDueRefreshes request.
type RefreshClaim struct {
	// Owner names the attempt the rows are leased to.
	Owner string
	// Providers are the providers whose tokens may be claimed (those the
	// worker can refresh); none claims nothing.
	Providers []domain.Provider
	// Lease is how long the claimed rows stay leased.
	Lease time.Duration
	// Horizon: rows whose access token expires within it are due
	// (domain.RefreshHorizon of the margin and the worker's lookahead),
	// capped per row at LifetimeFraction of the token's lifetime
	// (domain.EffectiveMargin).
	Horizon time.Duration
	// RevokesPreviousAccessToken: the providers revoke the previous access
	// token on refresh, so a row whose last refresh had an unknown outcome
	// (domain.CodeProviderOutcomeUnknown) is due once its back-off ends,
	// whatever its expiry (domain.NextRefreshStep).
	RevokesPreviousAccessToken bool
	// LifetimeFraction caps Horizon per row (domain.EffectiveMargin); outside
	// (0, 1), including 0, it caps nothing.
	LifetimeFraction float64
	// Limit is the most rows to claim.
	Limit int
}

// TokenRefresher exchanges a refresh token for new tokens at the provider's
// token endpoint. The service refreshes only through this port; with no
// refresher configured (app.NoRefresher), an expired access token is
// reported as expired, never returned.
type TokenRefresher interface {
	// Refresh returns the provider's new tokens. A provider that does not
	// rotate refresh tokens returns a zero RefreshToken; the caller keeps the
	// old one. Failures wrap domain.ErrGrantRevoked, ErrProviderRejected,
	// ErrProviderUnavailable or ErrProviderNotConfigured.
	Refresh(ctx context.Context, provider domain.Provider, refreshToken domain.Secret) (domain.RefreshedTokens, error)
	// Configured reports whether tokens of provider can be refreshed (false
	// for unknown providers and for providers whose tokens never expire).
	Configured(provider domain.Provider) bool
	// Providers lists the providers Configured is true for.
	Providers() []domain.Provider
	// RevokesPreviousAccessToken reports whether provider revokes the
	// previous access token when it refreshes (so a refresh in flight or of
	// unknown outcome may have killed the stored one).
	RevokesPreviousAccessToken(provider domain.Provider) bool
}

// TokenRevoker revokes a user's tokens at their provider once tokenstore
// has deleted them (upstream revocation on delete), so that a disconnected
// provider's tokens stop working there too. Revoking is idempotent: a
// caller may repeat it after any error.
type TokenRevoker interface {
	// Revoke revokes tokens at provider: the refresh token first (revoking
	// it revokes the whole grant at most servers, RFC 7009 §2.1), then the
	// access token. A token the provider already considers invalid counts
	// as revoked (nil). Failures wrap domain.ErrProviderUnavailable
	// (transient: retry; a *domain.RetryAtError says when, if the provider
	// did), domain.ErrRevocationRejected (permanent until the configuration
	// is fixed), domain.ErrRevocationNotSupported (permanent: nothing to do
	// at this provider) or domain.ErrInvalid (no token given). Errors never
	// carry token material.
	Revoke(ctx context.Context, provider domain.Provider, tokens RevocationRequest) error
	// RevokesOnDelete reports whether provider's tokens are to be revoked
	// upstream when they are deleted (its revoke_on_delete setting); Revoke
	// fails with domain.ErrRevocationNotSupported for the others.
	RevokesOnDelete(provider domain.Provider) bool
	// RevokesGrant reports whether Revoke at provider ends every token of
	// the user's grant, also tokens the user obtained after the delete
	// (GitHub's grant deletion), so it must not run once the user has
	// stored tokens for provider again.
	RevokesGrant(provider domain.Provider) bool
}

// RevocationRequest is what a TokenRevoker revokes: the tokens tokenstore
// stored for one user and provider. Either may be zero, not both.
type RevocationRequest struct {
	RefreshToken domain.Secret
	AccessToken  domain.Secret
}

// StoreCensus counts what the store holds, for the metrics
// (app.Census): aggregate queries that return no token material and no
// user id.
type StoreCensus interface {
	// CountRefreshBacklog counts, per provider in margins, the tokens
	// due for refresh and not yet refreshed: a refresh token that has not
	// expired, not reauth_required, and an access token expiring within
	// its effective margin (domain.EffectiveMargin of the provider's
	// margin and lifetimeFraction). Providers with no such token are
	// absent.
	CountRefreshBacklog(ctx context.Context, margins map[domain.Provider]time.Duration, lifetimeFraction float64) (map[domain.Provider]int64, error)
	// CountReauthRequired counts, per provider, the tokens whose user
	// must reconnect. Providers with none are absent.
	CountReauthRequired(ctx context.Context) (map[domain.Provider]int64, error)
	// CountValuesByKey counts the stored values each key seals
	// (ReencryptionRepository.CountValuesByKey).
	CountValuesByKey(ctx context.Context) ([]domain.KeyUsage, error)
	// CountDeliveries counts the deliveries pending or failed, per target
	// and state, with the age of each group's oldest event. Groups with
	// none are absent.
	CountDeliveries(ctx context.Context) ([]domain.DeliveryCount, error)
}
