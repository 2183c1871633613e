package domain_test

import (
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// TestEffectiveMargin is the specification of the effective refresh margin.
func TestEffectiveMargin(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := func(d time.Duration) domain.Expiry { return domain.At(t0.Add(d)) }
	const m15 = 15 * time.Minute
	tests := []struct {
		name       string
		configured time.Duration
		fraction   float64
		obtained   time.Time
		expiry     domain.Expiry
		want       time.Duration
	}{
		{"Keycloak 5-minute token, default margin: half its life", m15, 0.5, t0, in(5 * time.Minute), 150 * time.Second},
		{"an hour-long token keeps the configured margin", m15, 0.5, t0, in(time.Hour), m15},
		{"exactly twice the margin: the margin", m15, 0.5, t0, in(30 * time.Minute), m15},
		{"just under twice the margin: capped", m15, 0.5, t0, in(30*time.Minute - 2*time.Second), 15*time.Minute - time.Second},
		{"a per-provider margin below the cap stays", time.Minute, 0.5, t0, in(5 * time.Minute), time.Minute},
		{"another fraction", m15, 0.2, t0, in(5 * time.Minute), time.Minute},
		{"scaled: 4 s token, 10 s margin", 10 * time.Second, 0.5, t0, in(4 * time.Second), 2 * time.Second},
		{"obtained unknown (rows stored before the column): configured", m15, 0.5, time.Time{}, in(5 * time.Minute), m15},
		{"never expires: configured", m15, 0.5, t0, domain.Never(), m15},
		{"fraction 0 (no cap): configured", m15, 0, t0, in(5 * time.Minute), m15},
		{"fraction 1 (outside the range): configured", m15, 1, t0, in(5 * time.Minute), m15},
		{"negative fraction: configured", m15, -0.5, t0, in(5 * time.Minute), m15},
		{"stored already expired: 0", m15, 0.5, t0, in(-time.Minute), 0},
		{"expiring the instant it was obtained: 0", m15, 0.5, t0, in(0), 0},
		{"negative configured margin: 0", -time.Minute, 0.5, t0, in(time.Hour), 0},
		{"rounded to microseconds, half to even", m15, 0.5, t0, in(3 * time.Microsecond), 2 * time.Microsecond},
		{"rounded to microseconds, half to even (odd)", m15, 0.5, t0, in(5 * time.Microsecond), 2 * time.Microsecond},
		{"sub-microsecond lifetime rounds", m15, 0.5, t0, in(1500 * time.Nanosecond), time.Microsecond},
	}
	for _, tt := range tests {
		got := domain.EffectiveMargin(tt.configured, tt.fraction, tt.obtained, tt.expiry)
		if got != tt.want {
			t.Errorf("%s: EffectiveMargin(%v, %v, obtained, %v) = %v, want %v", tt.name, tt.configured, tt.fraction, tt.expiry, got, tt.want)
		}
	}
}

// TestEffectiveMarginSixReads is the example: a token living 300 s
// with the default margin, read every minute for 6 minutes, with each
// refresh issuing another 300 s token, is refreshed about once per 2.5
// minutes; with the configured margin alone every read refreshed it.
func TestEffectiveMarginSixReads(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := func(fraction float64, reads int, every time.Duration) int {
		obtained, expiry := t0, domain.At(t0.Add(300*time.Second))
		refreshes := 0
		for i := range reads {
			now := t0.Add(time.Duration(i) * every)
			v := domain.RefreshView{AccessExpiry: expiry, HasRefreshToken: true, Refreshable: true,
				Margin: domain.EffectiveMargin(domain.DefaultRefreshMargin, fraction, obtained, expiry)}
			if domain.NextRefreshStep(v, now) == domain.StepRefresh {
				refreshes++
				obtained, expiry = now, domain.At(now.Add(300*time.Second))
			}
		}
		return refreshes
	}
	if got := run(0, 6, time.Second); got != 6 {
		t.Errorf("configured margin alone: 6 reads caused %d refreshes, want 6 (the issue's measurement)", got)
	}
	if got := run(domain.DefaultLifetimeFraction, 6, 30*time.Second); got != 1 {
		t.Errorf("effective margin: 6 reads over 2.5 minutes caused %d refreshes, want 1", got)
	}
	if got := run(domain.DefaultLifetimeFraction, 61, 10*time.Second); got != 4 {
		t.Errorf("effective margin: reads every 10 s for 10 minutes caused %d refreshes, want 4 (about one per 2.5 minutes)", got)
	}
}

// TestTwoClocks: a token is judged expired or inside its margin when either
// clock says so, while leases stay on the database's clock.
func TestTwoClocks(t *testing.T) {
	t.Parallel()
	db := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const margin = 10 * time.Second
	view := func(access time.Duration, st domain.RefreshState) domain.RefreshView {
		return domain.RefreshView{AccessExpiry: domain.At(db.Add(access)), RefreshExpiry: domain.At(db.Add(time.Hour)),
			HasRefreshToken: true, Refresh: st, Refreshable: true, Margin: margin}
	}
	live := domain.RefreshState{LeaseOwner: "other", LeaseUntil: db.Add(30 * time.Second)}
	tests := []struct {
		name    string
		service time.Duration // the service's clock minus the database's
		access  time.Duration // expiry minus the database's clock
		st      domain.RefreshState
		want    domain.RefreshStep
	}{
		{"same clock, valid", 0, time.Minute, domain.RefreshState{}, domain.StepServe},
		{"database 3 min behind: expired 31 s ago by the service's clock", 3 * time.Minute, 149 * time.Second, domain.RefreshState{}, domain.StepRefresh},
		{"database 3 min behind: inside the margin by the service's clock", 3 * time.Minute, 185 * time.Second, domain.RefreshState{}, domain.StepRefresh},
		{"database 3 min behind: outside the margin by both", 3 * time.Minute, 200 * time.Second, domain.RefreshState{}, domain.StepServe},
		{"database 3 min ahead: the database's clock decides", -3 * time.Minute, 5 * time.Second, domain.RefreshState{}, domain.StepRefresh},
		{"database 3 min ahead: valid by both", -3 * time.Minute, time.Minute, domain.RefreshState{}, domain.StepServe},
		{"a live lease stays live although the service's clock is past it", 3 * time.Minute, 149 * time.Second, live, domain.StepWait},
		{"a live lease, token valid by both: serve", 3 * time.Minute, 200 * time.Second, live, domain.StepServe},
	}
	for _, tt := range tests {
		v := view(tt.access, tt.st).TwoClocks(db, db.Add(tt.service))
		if got := domain.NextRefreshStep(v, db); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	never := domain.RefreshView{AccessExpiry: domain.Never(), RefreshExpiry: domain.Never()}.TwoClocks(db, db.Add(time.Hour))
	if !never.AccessExpiry.IsNever() || !never.RefreshExpiry.IsNever() {
		t.Errorf("Never moved: %v %v", never.AccessExpiry, never.RefreshExpiry)
	}
	refreshGone := view(time.Hour, domain.RefreshState{})
	refreshGone.RefreshExpiry = domain.At(db.Add(time.Minute))
	if got := domain.NextRefreshStep(refreshGone.TwoClocks(db, db.Add(2*time.Hour)), db); got != domain.StepReauth {
		t.Errorf("a refresh token expired by the service's clock: %v, want %v", got, domain.StepReauth)
	}
}

func TestLater(t *testing.T) {
	t.Parallel()
	a := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := a.Add(time.Second)
	if !domain.Later(a, b).Equal(b) || !domain.Later(b, a).Equal(b) || !domain.Later(a, a).Equal(a) {
		t.Error("Later does not pick the later instant")
	}
}

// TestClockSkew specifies the estimator: the database's answer is taken as
// read in the middle of the round trip.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	sent := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name                    string
		remote, received        time.Duration // after sent
		wantSkew, wantUncertain time.Duration
	}{
		{"same clock, 2 ms round trip", time.Millisecond, 2 * time.Millisecond, 0, time.Millisecond},
		{"database 3 min behind", -3*time.Minute + 5*time.Millisecond, 10 * time.Millisecond, -3 * time.Minute, 5 * time.Millisecond},
		{"database 3 min ahead", 3*time.Minute + 50*time.Millisecond, 100 * time.Millisecond, 3 * time.Minute, 50 * time.Millisecond},
		{"instant round trip", 7 * time.Second, 0, 7 * time.Second, 0},
		{"local clock stepped back during the exchange: no negative round trip", 0, -time.Second, 0, 0},
	}
	for _, tt := range tests {
		skew, unc := domain.ClockSkew(sent, sent.Add(tt.remote), sent.Add(tt.received))
		if skew != tt.wantSkew || unc != tt.wantUncertain {
			t.Errorf("%s: skew %v ± %v, want %v ± %v", tt.name, skew, unc, tt.wantSkew, tt.wantUncertain)
		}
	}
}
