package domain

import "time"

// KeyID names an encryption key. It is derived from the key material by a
// one-way function, so every instance computes the same id for the same key
// and the id reveals nothing about the key.
type KeyID string

// Ciphertext is token material sealed by one key.
type Ciphertext struct {
	KeyID KeyID
	Data  []byte
}

// SealedAuthTokens is AuthTokens as stored: both tokens encrypted under the
// same key (KeyID). Storage sees only this type, never plaintext.
type SealedAuthTokens struct {
	User          UserID
	Provider      Provider
	KeyID         KeyID
	AccessToken   []byte
	RefreshToken  []byte // nil: no refresh token
	AccessExpiry  Expiry
	RefreshExpiry Expiry
	// AccessObtainedAt is when tokenstore obtained the access token (stored
	// or refreshed; by the service's clock, like the expiry it computes from
	// expires_in), so its lifetime is AccessExpiry − AccessObtainedAt (see
	// EffectiveMargin). Zero: unknown (rows stored before it was recorded,
	// imported rows).
	AccessObtainedAt time.Time

	// Refresh is the refresh coordination state; storing new tokens from the
	// user (PutAuthTokens) resets it.
	Refresh RefreshState

	// Set by storage. ID orders rows for batch walks (key rotation).
	ID        int64
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ServableAuthTokens is the part of a stored auth tokens row that serving
// its access token reads, and nothing more: the access token's ciphertext
// and the facts the refresh rule (NextRefreshStep) and the expiry it
// reports (RefreshView.ReportedExpiry) read. It has no refresh token, so
// only a StepServe decision can be acted on from it; any other step needs
// the whole row (the refresh protocol reads it under the row lock). The
// read cache keeps rows in a compact form of this (ports.ReadCache).
type ServableAuthTokens struct {
	User        UserID
	Provider    Provider
	KeyID       KeyID
	AccessToken []byte // the access token's ciphertext, as SealedAuthTokens.AccessToken
	// AccessExpiry, RefreshExpiry, AccessObtainedAt: SealedAuthTokens'.
	AccessExpiry     Expiry
	RefreshExpiry    Expiry
	AccessObtainedAt time.Time
	// HasRefreshToken: the row stores a refresh token (SealedAuthTokens.RefreshToken is not nil).
	HasRefreshToken bool
	// LeaseOwner, LeaseUntil, ReauthRequired, NextAttemptAt: the row's
	// RefreshState fields of those names.
	LeaseOwner     string
	LeaseUntil     time.Time
	ReauthRequired bool
	NextAttemptAt  time.Time
	// OutcomeUnknown: the row's RefreshState.LastError is
	// CodeProviderOutcomeUnknown (the only thing the rule reads of it).
	OutcomeUnknown bool
	// Version is SealedAuthTokens.Version.
	Version int64
}

// Servable is the part of t that serving its access token reads.
func (t SealedAuthTokens) Servable() ServableAuthTokens {
	return ServableAuthTokens{
		User: t.User, Provider: t.Provider, KeyID: t.KeyID, AccessToken: t.AccessToken,
		AccessExpiry: t.AccessExpiry, RefreshExpiry: t.RefreshExpiry, AccessObtainedAt: t.AccessObtainedAt,
		HasRefreshToken: t.RefreshToken != nil,
		LeaseOwner:      t.Refresh.LeaseOwner, LeaseUntil: t.Refresh.LeaseUntil,
		ReauthRequired: t.Refresh.ReauthRequired, NextAttemptAt: t.Refresh.NextAttemptAt,
		OutcomeUnknown: t.Refresh.LastError == CodeProviderOutcomeUnknown,
		Version:        t.Version,
	}
}

// RefreshState is the stored state of refreshing one user's tokens for one
// provider.
type RefreshState struct {
	// LeaseOwner is the refresh attempt that holds the lease ("" for none);
	// LeaseUntil when the lease lapses. An attempt commits its result only
	// while it still holds the lease at the version it took it at.
	LeaseOwner string
	LeaseUntil time.Time
	// ReauthRequired: refreshing failed for good; the user must connect again.
	ReauthRequired bool
	// LastError is the machine code of the last failed refresh ("" if
	// none): one of the Code* constants.
	LastError string
	// NextAttemptAt is the earliest time to try again after a transient
	// failure (zero: any time).
	NextAttemptAt time.Time
	// AmbiguousRetries counts how often the stored refresh token was sent
	// again after a failure that left unknown whether the provider rotated
	// it (CodeProviderOutcomeUnknown); new tokens from the user reset it.
	AmbiguousRetries int
}

// Machine codes of failed refreshes (RefreshState.LastError): stored with the
// tokens, shown in listings and in errors. Storage writes CodeRefreshInterrupted
// itself when it sweeps lapsed leases, so these are the one spelling of each.
const (
	// CodeGrantRevoked: the provider rejected the refresh token (invalid_grant).
	CodeGrantRevoked = "invalid_grant"
	// CodeProviderRejected: the provider refused the request itself
	// (invalid_client, a wrong token URL) or is not configured.
	CodeProviderRejected = "provider_rejected"
	// CodeProviderUnavailable: a transient failure the provider certainly
	// did not act on (429, a connection that failed before the request was
	// sent, a broken 2xx answer).
	CodeProviderUnavailable = "provider_unavailable"
	// CodeProviderOutcomeUnknown: a transient failure after the request was
	// sent (timeout, 5xx, connection lost): the provider may have refreshed,
	// and so may have rotated the refresh token and revoked the access token.
	CodeProviderOutcomeUnknown = "provider_outcome_unknown"
	// CodeRefreshInterrupted: a lease lapsed without its holder finishing.
	CodeRefreshInterrupted = "refresh_interrupted"
	// CodeRefreshUndecryptable: the stored refresh token could not be opened.
	CodeRefreshUndecryptable = "refresh_token_undecryptable"
	// CodeRefreshTokenExpired: no usable refresh token is stored (never
	// stored, or expired). It is reported, not stored.
	CodeRefreshTokenExpired = "refresh_token_expired"
	// CodeRefreshSuperseded: new tokens were stored (or the tokens
	// deleted) while the provider answered, so the refreshed ones were
	// dropped. Recorded in the audit trail only, never stored.
	CodeRefreshSuperseded = "refresh_superseded"
)

// Leased reports whether a lease is held at now.
func (r RefreshState) Leased(now time.Time) bool {
	return r.LeaseOwner != "" && now.Before(r.LeaseUntil)
}

// LeaseLapsed reports whether a lease was taken and ran out without its
// holder finishing: the refresh was interrupted, possibly after the provider
// rotated the refresh token.
func (r RefreshState) LeaseLapsed(now time.Time) bool {
	return r.LeaseOwner != "" && !now.Before(r.LeaseUntil)
}

// SealedOfflineToken is an OfflineToken as stored.
type SealedOfflineToken struct {
	User  UserID
	KeyID KeyID
	Token []byte

	// Set by storage.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ProviderTokenInfo describes stored tokens without any token material, for
// listing a user's providers.
type ProviderTokenInfo struct {
	Provider      Provider
	AccessExpiry  Expiry
	RefreshExpiry Expiry
	// AccessObtainedAt: see SealedAuthTokens.AccessObtainedAt.
	AccessObtainedAt time.Time
	HasRefreshToken  bool
	ReauthRequired   bool
	LastError        string
	// AmbiguousRetries is RefreshState.AmbiguousRetries.
	AmbiguousRetries int
	UpdatedAt        time.Time
}

// KeyUsage is how many stored values one key seals.
type KeyUsage struct {
	KeyID  KeyID
	Values int64
}

// KeptTokens are the deleted tokens one event keeps sealed for upstream
// revocation (a tokens.deleted event with a revocation delivery; storage
// clears them once revoked), as re-encryption reads and rewrites them.
// They are the auth_tokens row's ciphertexts, moved verbatim by the
// delete: still bound to that row's places (User and Provider).
type KeptTokens struct {
	Event    int64 // the event's id (EventCursor.Seq)
	User     UserID
	Provider Provider
	Tokens   SealedRevocation
	// Read is Tokens as storage returned them; a rewrite of Tokens applies
	// only while the event still holds Read (what Version is to
	// SealedAuthTokens).
	Read SealedRevocation
}

// InstanceKeyring is the keyring a running instance holds, as its last
// heartbeat recorded it: key ids only, never key material.
type InstanceKeyring struct {
	// Instance names the instance (its refresh lease owner name).
	Instance string
	// Primary seals every value the instance writes; Keys are all of its
	// key ids, Primary first.
	Primary KeyID
	Keys    []KeyID
	// HeartbeatAt is the last heartbeat; the instance counts as live until
	// ExpiresAt. Both are the database's clock.
	HeartbeatAt, ExpiresAt time.Time
}

// Holds reports whether the instance's keyring includes key.
func (k InstanceKeyring) Holds(key KeyID) bool {
	for _, id := range k.Keys {
		if id == key {
			return true
		}
	}
	return false
}
