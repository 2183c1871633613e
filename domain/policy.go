package domain

import "time"

// DefaultRefreshMargin is how long before its expiry an access token is
// refreshed: long enough that a caller never receives a token that dies
// during its request.
const DefaultRefreshMargin = 15 * time.Minute

// RefreshView is everything the refresh rule reads from a stored row, and
// nothing else: no token material, so storage (the worker's claim query),
// the read path and listings judge the same facts.
type RefreshView struct {
	AccessExpiry    Expiry
	RefreshExpiry   Expiry
	HasRefreshToken bool
	// Refresh is the row's lease, back-off and re-authorization flag
	// (LastError is not read).
	Refresh RefreshState
	// Refreshable: this instance can refresh the provider's tokens (a
	// refresher is configured for it).
	Refreshable bool
	// Margin: an access token expiring within Margin needs a refresh. A
	// negative Margin counts as zero.
	Margin time.Duration
	// Lookahead (the worker's): an access token entering the margin within
	// Lookahead is refreshed now. It does not apply when
	// RevokesPreviousAccessToken: see RefreshHorizon. Negative counts as zero.
	Lookahead time.Duration
	// RevokesPreviousAccessToken: the provider revokes the previous access
	// token when it refreshes (GitLab, Hydra): a refresh in flight or whose
	// outcome is unknown may already have killed the stored access token.
	RevokesPreviousAccessToken bool
	// OutcomeUnknown: the last refresh failed after its request was sent
	// (RefreshState.LastError is CodeProviderOutcomeUnknown), so the
	// provider may have refreshed.
	OutcomeUnknown bool
}

// RefreshHorizon is how long before its expiry an access token is due for
// refresh: the margin, plus the worker's lookahead unless the provider
// revokes the previous access token on refresh. For such a provider a
// refresh kills the token handed out before it, so no refresh may come
// before the expiry reported with that token (ReportedExpiry), which is its
// access expiry minus this horizon: the read path and the worker then agree
// on one instant. The worker's claim passes this as its horizon.
func RefreshHorizon(margin, lookahead time.Duration, revokesPreviousAccessToken bool) time.Duration {
	if revokesPreviousAccessToken {
		return max(margin, 0)
	}
	return max(margin, 0) + max(lookahead, 0)
}

// Horizon is RefreshHorizon for v.
func (v RefreshView) Horizon() time.Duration {
	return RefreshHorizon(v.Margin, v.Lookahead, v.RevokesPreviousAccessToken)
}

// ReportedExpiry is the expiry handed out with the stored access token when
// NextRefreshStep says StepServe at now: the instant until which tokenstore
// guarantees not to revoke it by its own refresh. For a provider that does
// not revoke the previous access token it is the access token's own expiry.
// For one that does, it is the earliest instant NextRefreshStep can say
// StepRefresh for the row (by the read path's view or the worker's, which
// share Horizon): the start of the horizon, or the end of a back-off that
// outlasts it, and never after the access token's own expiry.
func (v RefreshView) ReportedExpiry() Expiry {
	at, ok := v.AccessExpiry.Time()
	if !ok || !v.RevokesPreviousAccessToken {
		return v.AccessExpiry
	}
	first := at.Add(-v.Horizon())
	if next := v.Refresh.NextAttemptAt; next.After(first) {
		first = next
	}
	if first.After(at) {
		first = at
	}
	return At(first)
}

// RefreshStep is what to do next with stored tokens.
type RefreshStep int

const (
	// StepServe: hand out the stored access token.
	StepServe RefreshStep = iota
	// StepRefresh: take the lease and call the provider.
	StepRefresh
	// StepWait: the access token has expired and another attempt holds a
	// live lease: wait for it to finish.
	StepWait
	// StepInterrupted: a lease lapsed without its holder finishing; the
	// provider may have rotated the refresh token, so mark the tokens for
	// re-authorization rather than present the old refresh token again.
	StepInterrupted
	// StepReauth: the user must connect again: the tokens are marked so, or
	// the access token has expired with no usable refresh token.
	StepReauth
	// StepExpired: the access token has expired and this instance cannot
	// refresh the provider's tokens.
	StepExpired
	// StepBackOff: the access token has expired and a recent failure's
	// back-off has not ended.
	StepBackOff
)

var stepNames = [...]string{"serve", "refresh", "wait", "interrupted", "reauth", "expired", "back-off"}

func (s RefreshStep) String() string {
	if s < 0 || int(s) >= len(stepNames) {
		return "RefreshStep(?)"
	}
	return stepNames[s]
}

// NextRefreshStep is the refresh rule: the one place that says whether
// stored tokens are served, refreshed, waited for or given up on at now.
// Every judge uses it: the read path (first without a lock, then again under
// the row lock by the database's clock), the worker's claim (the SQL
// ClaimDueRefreshes must claim exactly the rows for which it returns
// StepRefresh; tests/storage checks they agree) and listings (State). A
// token is usable up to, not including, its expiry instant; a lease is live
// up to, not including, its LeaseUntil; a back-off ends at NextAttemptAt.
//
// For a provider that revokes the previous access token on refresh, the
// stored access token is not served while a refresh of it is in flight (a
// live lease) or after a refresh whose outcome is unknown: either may have
// revoked it. Then callers wait, and an unknown outcome is retried (the same
// refresh token, once its back-off ends) whatever the margin says.
func NextRefreshStep(v RefreshView, now time.Time) RefreshStep {
	expired := v.AccessExpiry.Expired(now)
	// mayBeRevoked: the stored access token may be dead although unexpired.
	mayBeRevoked := v.RevokesPreviousAccessToken && (v.Refresh.Leased(now) || v.OutcomeUnknown)
	serveUnless := func(s RefreshStep) RefreshStep {
		if expired || mayBeRevoked {
			return s
		}
		return StepServe // still usable: no reason to wait or fail
	}
	switch {
	case v.Refresh.ReauthRequired:
		return StepReauth
	case !v.Refreshable:
		return serveUnless(StepExpired)
	case v.Refresh.Leased(now):
		return serveUnless(StepWait)
	case v.Refresh.LeaseLapsed(now):
		return StepInterrupted
	case !v.AccessExpiry.Within(now, v.Horizon()) && !mayBeRevoked:
		return StepServe
	case !v.HasRefreshToken || v.RefreshExpiry.Expired(now):
		return serveUnless(StepReauth)
	case !v.Refresh.NextAttemptAt.IsZero() && now.Before(v.Refresh.NextAttemptAt):
		return serveUnless(StepBackOff)
	}
	return StepRefresh
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
	// StateReauthRequired: expired and no usable refresh token, or marked
	// for re-authorization: the user must reconnect.
	StateReauthRequired TokenState = "reauth_required"
)

// State classifies the stored tokens at now for a listing. A listing
// describes what is stored, not this instance's configuration or a refresh
// in flight: it judges the tokens as refreshable, without lease or back-off,
// by NextRefreshStep.
func (v RefreshView) State(now time.Time) TokenState {
	stored := v
	stored.Refresh = RefreshState{ReauthRequired: v.Refresh.ReauthRequired}
	stored.Refreshable = true
	switch {
	case NextRefreshStep(stored, now) == StepReauth:
		return StateReauthRequired
	case !v.AccessExpiry.Within(now, v.Margin):
		return StateValid
	case !v.AccessExpiry.Expired(now):
		return StateExpiring
	default:
		return StateExpired
	}
}

// RefreshView describes t for the refresh rule.
func (t AuthTokens) RefreshView(margin time.Duration) RefreshView {
	return RefreshView{
		AccessExpiry: t.AccessExpiry, RefreshExpiry: t.RefreshExpiry, HasRefreshToken: t.HasRefreshToken(),
		Refreshable: true, Margin: margin,
	}
}

// RefreshView describes t for the refresh rule; refreshable says whether
// this instance can refresh t's provider. It is the view of t's servable
// part: a row and the part a read cache keeps of it are judged alike.
func (t SealedAuthTokens) RefreshView(margin time.Duration, refreshable bool) RefreshView {
	return t.Servable().RefreshView(margin, refreshable)
}

// RefreshView describes t for the refresh rule (RefreshState.LastError
// and AmbiguousRetries, which the rule does not read, are left out).
func (t ServableAuthTokens) RefreshView(margin time.Duration, refreshable bool) RefreshView {
	return RefreshView{
		AccessExpiry: t.AccessExpiry, RefreshExpiry: t.RefreshExpiry, HasRefreshToken: t.HasRefreshToken,
		Refresh: RefreshState{LeaseOwner: t.LeaseOwner, LeaseUntil: t.LeaseUntil,
			ReauthRequired: t.ReauthRequired, NextAttemptAt: t.NextAttemptAt},
		Refreshable: refreshable, Margin: margin, OutcomeUnknown: t.OutcomeUnknown,
	}
}

// RefreshView describes i for the refresh rule (for listings: i carries no
// lease or back-off).
func (i ProviderTokenInfo) RefreshView(margin time.Duration) RefreshView {
	return RefreshView{
		AccessExpiry: i.AccessExpiry, RefreshExpiry: i.RefreshExpiry, HasRefreshToken: i.HasRefreshToken,
		Refresh: RefreshState{ReauthRequired: i.ReauthRequired}, Refreshable: true, Margin: margin,
		OutcomeUnknown: i.LastError == CodeProviderOutcomeUnknown,
	}
}
