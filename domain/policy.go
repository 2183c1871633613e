package domain

import "time"

// DefaultRefreshMargin is how long before its expiry an access token is
// refreshed: long enough that a caller never receives a token that dies
// during its request.
const DefaultRefreshMargin = 15 * time.Minute

// RefreshPolicy is the expiry rule. Its methods take the clock as an argument
// so they are pure.
type RefreshPolicy struct {
	// Margin: an access token expiring within Margin needs a refresh.
	Margin time.Duration
}

// DefaultRefreshPolicy uses DefaultRefreshMargin.
func DefaultRefreshPolicy() RefreshPolicy { return RefreshPolicy{Margin: DefaultRefreshMargin} }

// NeedsRefresh reports whether an access token expiring at access expires
// within the margin (or has expired). A token that never expires never
// needs a refresh. It takes expiries, not tokens, so that stored (sealed)
// tokens are judged by the same rule as plaintext ones.
func (p RefreshPolicy) NeedsRefresh(access Expiry, now time.Time) bool {
	return access.Within(now, p.Margin)
}

// CanRefresh reports whether a refresh could succeed: a refresh token is
// stored and it has not expired.
func (p RefreshPolicy) CanRefresh(hasRefreshToken bool, refresh Expiry, now time.Time) bool {
	return hasRefreshToken && !refresh.Expired(now)
}

// TokenState summarises a stored token for listings, without any secret.
type TokenState string

const (
	// StateValid: the access token is usable and outside the refresh margin.
	StateValid TokenState = "valid"
	// StateExpiring: usable, but inside the refresh margin.
	StateExpiring TokenState = "expiring"
	// StateExpired: the access token has expired but can be refreshed.
	StateExpired TokenState = "expired"
	// StateReauthRequired: expired and no usable refresh token: the user must reconnect.
	StateReauthRequired TokenState = "reauth_required"
)

// State classifies t at now.
func (p RefreshPolicy) State(t AuthTokens, now time.Time) TokenState {
	return p.StateOf(ProviderTokenInfo{
		Provider: t.Provider, AccessExpiry: t.AccessExpiry, RefreshExpiry: t.RefreshExpiry,
		HasRefreshToken: t.HasRefreshToken(),
	}, now)
}

// StateOf classifies stored tokens described without their material.
func (p RefreshPolicy) StateOf(info ProviderTokenInfo, now time.Time) TokenState {
	switch {
	case info.ReauthRequired:
		return StateReauthRequired
	case !p.NeedsRefresh(info.AccessExpiry, now):
		return StateValid
	case !info.AccessExpiry.Expired(now):
		return StateExpiring
	case p.CanRefresh(info.HasRefreshToken, info.RefreshExpiry, now):
		return StateExpired
	default:
		return StateReauthRequired
	}
}
