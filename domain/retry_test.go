package domain_test

import (
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// TestRetryScheduleNext is the specification of the retry schedule of a
// failed delivery: full jitter under a doubling, capped ceiling; a
// receiver's Retry-After wins when later; given up after MaxAge.
func TestRetryScheduleNext(t *testing.T) {
	t.Parallel()
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := domain.RetrySchedule{First: 5 * time.Second, Cap: time.Hour, MaxAge: 72 * time.Hour}
	for _, tc := range []struct {
		name      string
		failures  int
		now       time.Duration // after first
		notBefore time.Duration // after first; 0: none
		jitter    float64
		want      time.Duration // after first
		giveUp    bool
	}{
		{name: "first failure, no jitter: at once", failures: 1, now: 0, jitter: 0, want: 0},
		{name: "first failure, half jitter", failures: 1, now: 0, jitter: 0.5, want: 2500 * time.Millisecond},
		{name: "third failure: ceiling 20s", failures: 3, now: time.Minute, jitter: 0.5, want: time.Minute + 10*time.Second},
		{name: "ceiling capped", failures: 40, now: 10 * time.Hour, jitter: 0.5, want: 10*time.Hour + 30*time.Minute},
		{name: "huge failure count does not overflow", failures: 1 << 30, now: time.Hour, jitter: 0.25, want: time.Hour + 15*time.Minute},
		{name: "jitter above 1 clamped", failures: 1, now: 0, jitter: 7, want: 5 * time.Second},
		{name: "negative jitter clamped", failures: 2, now: 0, jitter: -1, want: 0},
		{name: "failures below 1 count as 1", failures: 0, now: 0, jitter: 0.5, want: 2500 * time.Millisecond},
		{name: "Retry-After later wins", failures: 1, now: 0, notBefore: time.Minute, jitter: 0.5, want: time.Minute},
		{name: "Retry-After earlier ignored", failures: 3, now: time.Minute, notBefore: time.Second, jitter: 0.5, want: time.Minute + 10*time.Second},
		{name: "exactly at MaxAge still tried", failures: 40, now: 71 * time.Hour, jitter: 1, want: 72 * time.Hour},
		{name: "past MaxAge: give up", failures: 40, now: 71*time.Hour + time.Second, jitter: 1, giveUp: true},
		{name: "Retry-After past MaxAge: give up", failures: 1, now: 0, notBefore: 73 * time.Hour, giveUp: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var nb time.Time
			if tc.notBefore != 0 {
				nb = first.Add(tc.notBefore)
			}
			at, giveUp := s.Next(tc.failures, first, first.Add(tc.now), nb, tc.jitter)
			if giveUp != tc.giveUp {
				t.Fatalf("giveUp = %v, want %v", giveUp, tc.giveUp)
			}
			if tc.giveUp {
				if !at.IsZero() {
					t.Errorf("at = %v on give up, want zero", at)
				}
				return
			}
			if got := at.Sub(first); got != tc.want {
				t.Errorf("at = first+%s, want first+%s", got, tc.want)
			}
		})
	}
}

// TestDefaultRetryScheduleSpansThreeDays: the default schedule gives up
// after 3 days, not before, and reaches its cap.
func TestDefaultRetryScheduleSpansThreeDays(t *testing.T) {
	t.Parallel()
	s := domain.DefaultRetrySchedule()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now, failures := first, 1
	for ; ; failures++ {
		at, giveUp := s.Next(failures, first, now, time.Time{}, 0.999)
		if giveUp {
			break
		}
		now = at
	}
	if now.Sub(first) < 72*time.Hour-s.Cap || now.Sub(first) > 72*time.Hour {
		t.Errorf("last attempt at first+%s, want within the last cap before 72h", now.Sub(first))
	}
	if s.Ceiling(failures) != s.Cap {
		t.Errorf("ceiling after %d failures = %s, want the cap %s", failures, s.Ceiling(failures), s.Cap)
	}
}

func TestRetryScheduleValidate(t *testing.T) {
	t.Parallel()
	for _, s := range []domain.RetrySchedule{
		{}, {First: time.Second, Cap: time.Hour}, {First: time.Hour, Cap: time.Second, MaxAge: time.Hour}, {First: -1, Cap: time.Hour, MaxAge: time.Hour},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v: Validate accepted it", s)
		}
	}
}
