package domain_test

import (
	"math"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// now is a fixed clock value with a non-zero nanosecond part, so that
// off-by-one-nanosecond mistakes show.
var now = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

func TestExpiryNever(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    domain.Expiry
	}{
		{"Never()", domain.Never()},
		{"zero value", domain.Expiry{}},
	}
	clocks := []time.Time{{}, now, now.Add(-100 * 365 * 24 * time.Hour), now.Add(100 * 365 * 24 * time.Hour)}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !tc.e.IsNever() {
				t.Error("IsNever() = false")
			}
			if tm, ok := tc.e.Time(); ok || !tm.IsZero() {
				t.Errorf("Time() = %v, %v; want zero, false", tm, ok)
			}
			for _, c := range clocks {
				if tc.e.Expired(c) {
					t.Errorf("Expired(%v) = true", c)
				}
				if tc.e.Within(c, time.Duration(math.MaxInt64)) {
					t.Errorf("Within(%v, max) = true", c)
				}
			}
			if got := tc.e.String(); got != "never" {
				t.Errorf("String() = %q, want never", got)
			}
			if !tc.e.Equal(domain.Never()) || !tc.e.Equal(domain.Expiry{}) {
				t.Error("not Equal to Never / zero Expiry")
			}
			if tc.e.Equal(domain.At(now)) || domain.At(now).Equal(tc.e) {
				t.Error("Equal to At(now)")
			}
		})
	}
}

func TestExpiryAt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		t    time.Time
	}{
		{"now", now},
		{"past", now.Add(-time.Hour)},
		{"future", now.Add(time.Hour)},
		{"zero time is a point in time, not Never", time.Time{}},
		{"unix epoch", time.Unix(0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := domain.At(tc.t)
			if e.IsNever() {
				t.Fatal("IsNever() = true")
			}
			got, ok := e.Time()
			if !ok || !got.Equal(tc.t) {
				t.Fatalf("Time() = %v, %v; want %v, true", got, ok, tc.t)
			}
			if !e.Equal(domain.At(tc.t)) {
				t.Fatal("At(t) not Equal to At(t)")
			}
		})
	}
}

func TestAfterSeconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		seconds     int64
		want        time.Time
		expiredNow  bool
		expiredNext bool // at now+1s
	}{
		{"one hour", 3600, now.Add(time.Hour), false, false},
		{"one second", 1, now.Add(time.Second), false, true},
		{"zero is already expired, not never", 0, now, true, true},
		{"negative is already expired", -5, now.Add(-5 * time.Second), true, true},
		{"min int64 is expired", math.MinInt64 / int64(time.Second), now.Add(time.Duration(math.MinInt64/int64(time.Second)) * time.Second), true, true},
		{"one year", 365 * 24 * 3600, now.Add(365 * 24 * time.Hour), false, false},
		{"largest exact Duration", math.MaxInt64 / int64(time.Second), now.Add(time.Duration(math.MaxInt64/int64(time.Second)) * time.Second), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := domain.AfterSeconds(now, tc.seconds)
			if e.IsNever() {
				t.Fatal("IsNever() = true")
			}
			got, ok := e.Time()
			if !ok || !got.Equal(tc.want) {
				t.Fatalf("Time() = %v, %v; want %v", got, ok, tc.want)
			}
			if !e.Equal(domain.At(tc.want)) {
				t.Error("not Equal to At(want)")
			}
			if e.Expired(now) != tc.expiredNow {
				t.Errorf("Expired(now) = %v, want %v", e.Expired(now), tc.expiredNow)
			}
			if e.Expired(now.Add(time.Second)) != tc.expiredNext {
				t.Errorf("Expired(now+1s) = %v, want %v", e.Expired(now.Add(time.Second)), tc.expiredNext)
			}
		})
	}
}

// TestAfterSecondsSaturatesForHugeExpiresIn: time.Duration(seconds) *
// time.Second overflows for seconds > 9223372036 (~292 years); a provider's
// (untrusted) expires_in that large must give an expiry in the future, not
// one wrapped into the past.
func TestAfterSecondsSaturatesForHugeExpiresIn(t *testing.T) {
	t.Parallel()
	for _, seconds := range []int64{
		math.MaxInt64/int64(time.Second) + 1, // 9223372037: first overflowing value
		1 << 40,
		1e11,
		math.MaxInt64,
	} {
		e := domain.AfterSeconds(now, seconds)
		got, _ := e.Time()
		if e.Expired(now) || !got.After(now.Add(100*365*24*time.Hour)) {
			t.Errorf("AfterSeconds(now, %d) = %v (Expired(now)=%v); want an expiry far in the future",
				seconds, e, e.Expired(now))
		}
	}
}

func TestExpiryExpiredBoundary(t *testing.T) {
	t.Parallel()
	e := domain.At(now)
	tests := []struct {
		name  string
		clock time.Time
		want  bool
	}{
		{"1h before", now.Add(-time.Hour), false},
		{"1ns before", now.Add(-time.Nanosecond), false},
		{"exactly at expiry", now, true},
		{"1ns after", now.Add(time.Nanosecond), true},
		{"1h after", now.Add(time.Hour), true},
		{"same instant, other zone", now.In(time.FixedZone("X", 5*3600)), true},
		{"1ns before, other zone", now.Add(-time.Nanosecond).In(time.FixedZone("Y", -7*3600)), false},
		{"zero clock", time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := e.Expired(tc.clock); got != tc.want {
				t.Fatalf("At(now).Expired(%v) = %v, want %v", tc.clock, got, tc.want)
			}
		})
	}
}

func TestExpiryWithin(t *testing.T) {
	t.Parallel()
	const d = 15 * time.Minute
	tests := []struct {
		name  string
		e     domain.Expiry
		clock time.Time
		d     time.Duration
		want  bool
	}{
		{"far future", domain.At(now.Add(time.Hour)), now, d, false},
		{"1ns outside", domain.At(now.Add(d + time.Nanosecond)), now, d, false},
		{"exactly at the edge", domain.At(now.Add(d)), now, d, true},
		{"1ns inside", domain.At(now.Add(d - time.Nanosecond)), now, d, true},
		{"expires now", domain.At(now), now, d, true},
		{"already expired", domain.At(now.Add(-time.Hour)), now, d, true},
		{"d=0 not yet expired", domain.At(now.Add(time.Nanosecond)), now, 0, false},
		{"d=0 expires now", domain.At(now), now, 0, true},
		{"never, huge d", domain.Never(), now, time.Duration(math.MaxInt64), false},
		{"never, d=0", domain.Never(), now, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.e.Within(tc.clock, tc.d); got != tc.want {
				t.Fatalf("%v.Within(%v, %v) = %v, want %v", tc.e, tc.clock, tc.d, got, tc.want)
			}
		})
	}
}

// TestExpiryWithinZeroMatchesExpired: Within(now, 0) is Expired(now).
func TestExpiryWithinZeroMatchesExpired(t *testing.T) {
	t.Parallel()
	for _, off := range []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Hour} {
		e := domain.At(now.Add(off))
		if e.Within(now, 0) != e.Expired(now) {
			t.Errorf("offset %v: Within(now,0)=%v Expired(now)=%v", off, e.Within(now, 0), e.Expired(now))
		}
	}
}

func TestExpiryEqual(t *testing.T) {
	t.Parallel()
	monotonic := time.Now()
	tests := []struct {
		name string
		a, b domain.Expiry
		want bool
	}{
		{"never never", domain.Never(), domain.Never(), true},
		{"never zero", domain.Never(), domain.Expiry{}, true},
		{"never vs at", domain.Never(), domain.At(now), false},
		{"at vs never", domain.At(now), domain.Never(), false},
		{"never vs at zero time", domain.Never(), domain.At(time.Time{}), false},
		{"same instant", domain.At(now), domain.At(now), true},
		{"same instant, other location", domain.At(now), domain.At(now.In(time.FixedZone("X", 3600))), true},
		{"monotonic vs stripped", domain.At(monotonic), domain.At(monotonic.Round(0)), true},
		{"1ns apart", domain.At(now), domain.At(now.Add(time.Nanosecond)), false},
		{"AfterSeconds vs At", domain.AfterSeconds(now, 60), domain.At(now.Add(time.Minute)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.a.Equal(tc.b); got != tc.want {
				t.Errorf("a.Equal(b) = %v, want %v", got, tc.want)
			}
			if got := tc.b.Equal(tc.a); got != tc.want {
				t.Errorf("b.Equal(a) = %v, want %v (not symmetric)", got, tc.want)
			}
		})
	}
}

func TestExpiryString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    domain.Expiry
		want string
	}{
		{"never", domain.Never(), "never"},
		{"zero value", domain.Expiry{}, "never"},
		{"UTC, sub-second dropped", domain.At(now), "2025-06-01T12:00:00Z"},
		{"converted to UTC", domain.At(time.Date(2025, 6, 1, 14, 30, 0, 0, time.FixedZone("CEST", 2*3600))), "2025-06-01T12:30:00Z"},
		{"zero time", domain.At(time.Time{}), "0001-01-01T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.e.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}
