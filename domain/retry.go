package domain

import (
	"fmt"
	"time"
)

// Default retry schedule of a delivery that failed (a webhook that was not
// answered 2xx): the Standard Webhooks specification recommends "a retry
// schedule spanning multiple days, with an exponential backoff" and "some
// level of random jitter" (its example waits 5 seconds, then grows to 24
// hours, over about 3 days). A cap of 6 hours keeps a receiver that comes
// back after a long outage from waiting most of a day for its next attempt.
const (
	DefaultRetryFirst  = 5 * time.Second
	DefaultRetryCap    = 6 * time.Hour
	DefaultRetryMaxAge = 72 * time.Hour
)

// RetrySchedule says when a failed delivery is tried again: exponential
// back-off with full jitter (a delay drawn uniformly from zero to a ceiling
// that doubles at every failure, from First up to Cap; AWS Architecture
// Blog, "Exponential Backoff And Jitter"), until MaxAge after the retry
// window's start (Delivery.RetryFrom), after which the delivery is given
// up. The zero value is not
// valid: use DefaultRetrySchedule or fill every field.
type RetrySchedule struct {
	First  time.Duration // ceiling of the delay after the first failure
	Cap    time.Duration // longest delay between two attempts
	MaxAge time.Duration // no attempt starts later than this after the window's start
}

// DefaultRetrySchedule is DefaultRetryFirst, DefaultRetryCap and
// DefaultRetryMaxAge.
func DefaultRetrySchedule() RetrySchedule {
	return RetrySchedule{First: DefaultRetryFirst, Cap: DefaultRetryCap, MaxAge: DefaultRetryMaxAge}
}

// Validate refuses a schedule whose durations are not positive or whose Cap
// is below First.
func (s RetrySchedule) Validate() error {
	switch {
	case s.First <= 0 || s.Cap <= 0 || s.MaxAge <= 0:
		return fmt.Errorf("retry schedule: first delay, cap and max age must be positive (got %s, %s, %s)", s.First, s.Cap, s.MaxAge)
	case s.Cap < s.First:
		return fmt.Errorf("retry schedule: cap %s is below the first delay %s", s.Cap, s.First)
	}
	return nil
}

// Ceiling is the longest delay after the given number of failed attempts
// (1 for the first failure): First·2^(failures−1), at most Cap; First for
// failures below 1.
func (s RetrySchedule) Ceiling(failures int) time.Duration {
	d := s.First
	for i := 1; i < failures && d < s.Cap; i++ {
		d *= 2 // d < Cap ≤ MaxInt64/2 in any sane schedule; the loop stops at Cap
	}
	return min(d, s.Cap)
}

// Next says when to make the next attempt of a delivery whose retry window
// started at first (its event's time, or its redelivery's; see
// Delivery.RetryFrom) and whose attempt number failures (1 for the first) has
// just failed at now. jitter, drawn by the caller uniformly from [0, 1)
// (math/rand/v2's Float64), picks the delay within [0, Ceiling(failures));
// values outside [0, 1) are clamped. notBefore, when later than that, is
// what the receiver asked for (a Retry-After header) and wins. giveUp is
// true, and at zero, when the next attempt would start more than MaxAge
// after first: the delivery is then marked failed.
func (s RetrySchedule) Next(failures int, first, now, notBefore time.Time, jitter float64) (at time.Time, giveUp bool) {
	jitter = min(max(jitter, 0), 1)
	at = now.Add(time.Duration(jitter * float64(s.Ceiling(failures))))
	if notBefore.After(at) {
		at = notBefore
	}
	if at.After(first.Add(s.MaxAge)) {
		return time.Time{}, true
	}
	return at, false
}
