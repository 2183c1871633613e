package domain

import (
	"math"
	"time"
)

// Expiry is when a token stops working. "Never" is an explicit state, not a
// zero time or a magic 0: the zero Expiry is Never, and At(t) is a point in time.
type Expiry struct {
	at  time.Time
	set bool
}

// Never is the expiry of a token that does not expire.
func Never() Expiry { return Expiry{} }

// At is an expiry at t.
func At(t time.Time) Expiry { return Expiry{at: t, set: true} }

// maxSeconds is the longest lifetime a time.Duration can hold (about 292 years).
const maxSeconds = int64(math.MaxInt64 / int64(time.Second))

// AfterSeconds is the expiry of a token issued at now that lives for seconds
// (an OAuth "expires_in"). Zero or negative seconds mean the token is already
// expired, not that it never expires; use Never for that. Absurdly long
// lifetimes saturate at about 292 years instead of wrapping into the past.
func AfterSeconds(now time.Time, seconds int64) Expiry {
	seconds = min(seconds, maxSeconds)
	return At(now.Add(time.Duration(seconds) * time.Second))
}

// IsNever reports whether the token never expires.
func (e Expiry) IsNever() bool { return !e.set }

// Time returns the expiry time, and false for Never.
func (e Expiry) Time() (time.Time, bool) { return e.at, e.set }

// Expired reports whether the token is no longer usable at now. A token is
// usable up to, not including, its expiry instant.
func (e Expiry) Expired(now time.Time) bool { return e.set && !now.Before(e.at) }

// Within reports whether the token expires within d of now (or already has).
// A negative d counts as zero.
func (e Expiry) Within(now time.Time, d time.Duration) bool {
	return e.set && !now.Add(max(d, 0)).Before(e.at)
}

// Equal reports whether both expiries are Never or the same instant.
func (e Expiry) Equal(o Expiry) bool {
	return e.set == o.set && (!e.set || e.at.Equal(o.at))
}

func (e Expiry) String() string {
	if !e.set {
		return "never"
	}
	return e.at.UTC().Format(time.RFC3339)
}
