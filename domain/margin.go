package domain

import (
	"math"
	"time"
)

// DefaultLifetimeFraction caps the refresh margin at this fraction of an
// access token's lifetime (EffectiveMargin): with the default 15-minute
// margin, a Keycloak token living 5 minutes is refreshed about 2.5 minutes
// after it was obtained, not on every read.
const DefaultLifetimeFraction = 0.5

// EffectiveMargin is the refresh margin of one access token: the configured
// margin, but never more than fraction of the token's lifetime (expiry −
// obtained). A margin as long as the lifetime would put the token inside it
// from the moment it is issued, and every read would refresh it.
//
// The configured margin alone applies when the lifetime is unknown
// (obtained is zero: rows stored before access_token_obtained_at existed),
// when the token never expires, and when fraction is outside (0, 1) (the
// zero value: no cap). A token stored after its expiry has no lifetime and
// gets margin 0 (it is expired anyway). A negative configured margin counts
// as zero. The result is in whole microseconds, rounded half to even, as
// PostgreSQL computes it in ClaimDueRefreshes (make_interval(secs => ...)),
// which must agree with this function row by row.
func EffectiveMargin(configured time.Duration, fraction float64, obtained time.Time, expiry Expiry) time.Duration {
	configured = max(configured, 0)
	at, ok := expiry.Time()
	if !ok || obtained.IsZero() || !(fraction > 0 && fraction < 1) {
		return configured
	}
	secs := fraction * at.Sub(obtained).Seconds()
	capped := time.Duration(math.RoundToEven(secs*1e6)) * time.Microsecond
	return max(min(configured, capped), 0)
}

// TwoClocks prepares v for NextRefreshStep judged at db, the database's
// clock, when the service's clock also judges the tokens: a token must not
// be served if EITHER clock says it has expired or is inside its margin. It
// moves the expiries earlier by how far service is ahead of db, so that
// judging the result at db judges every expiry at the later of the two
// clocks. Leases and back-offs stay on the database's clock, which every
// instance shares: judging a lease by a clock ahead of the one that set it
// would take a live refresh for an interrupted one and force the user to
// reconnect.
func (v RefreshView) TwoClocks(db, service time.Time) RefreshView {
	ahead := service.Sub(db)
	if ahead <= 0 {
		return v
	}
	v.AccessExpiry = v.AccessExpiry.earlier(ahead)
	v.RefreshExpiry = v.RefreshExpiry.earlier(ahead)
	return v
}

// earlier is e moved d earlier (Never stays Never).
func (e Expiry) earlier(d time.Duration) Expiry {
	if !e.set {
		return e
	}
	return At(e.at.Add(-d))
}

// Later is the later of two instants: the time by which a token is judged
// when two clocks may disagree.
func Later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ClockSkew estimates how far another clock (the database's) is ahead of
// the local one from one exchange: the local clock read at sent, the other
// clock's answer remote, and the local clock at received. The answer was
// read somewhere in the round trip; assuming the middle (as NTP does), the
// skew is remote − (sent + rtt/2), wrong by at most rtt/2 (uncertainty).
// A negative skew means the other clock is behind.
func ClockSkew(sent, remote, received time.Time) (skew, uncertainty time.Duration) {
	rtt := max(received.Sub(sent), 0)
	return remote.Sub(sent.Add(rtt / 2)), rtt / 2
}
