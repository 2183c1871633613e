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
	// Margin: an access token expiring within Margin needs a refresh. The
	// worker passes the margin plus its lookahead. A negative Margin counts
	// as zero.
	Margin time.Duration
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
func NextRefreshStep(v RefreshView, now time.Time) RefreshStep {
	expired := v.AccessExpiry.Expired(now)
	serveUnless := func(s RefreshStep) RefreshStep {
		if expired {
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
	case !v.AccessExpiry.Within(now, v.Margin):
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
// this instance can refresh t's provider.
func (t SealedAuthTokens) RefreshView(margin time.Duration, refreshable bool) RefreshView {
	return RefreshView{
		AccessExpiry: t.AccessExpiry, RefreshExpiry: t.RefreshExpiry, HasRefreshToken: t.RefreshToken != nil,
		Refresh: t.Refresh, Refreshable: refreshable, Margin: margin,
	}
}

// RefreshView describes i for the refresh rule (for listings: i carries no
// lease or back-off).
func (i ProviderTokenInfo) RefreshView(margin time.Duration) RefreshView {
	return RefreshView{
		AccessExpiry: i.AccessExpiry, RefreshExpiry: i.RefreshExpiry, HasRefreshToken: i.HasRefreshToken,
		Refresh: RefreshState{ReauthRequired: i.ReauthRequired}, Refreshable: true, Margin: margin,
	}
}
