package domain_test

import (
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

func TestDefaultRefreshPolicy(t *testing.T) {
	t.Parallel()
	if domain.DefaultRefreshMargin != 15*time.Minute {
		t.Errorf("DefaultRefreshMargin = %v, want 15m", domain.DefaultRefreshMargin)
	}
	if got := domain.DefaultRefreshPolicy().Margin; got != domain.DefaultRefreshMargin {
		t.Errorf("DefaultRefreshPolicy().Margin = %v, want %v", got, domain.DefaultRefreshMargin)
	}
}

// TestTokenStateValues pins the strings: they appear in API responses.
func TestTokenStateValues(t *testing.T) {
	t.Parallel()
	for got, want := range map[domain.TokenState]string{
		domain.StateValid:          "valid",
		domain.StateExpiring:       "expiring",
		domain.StateExpired:        "expired",
		domain.StateReauthRequired: "reauth_required",
	} {
		if string(got) != want {
			t.Errorf("state %q, want %q", got, want)
		}
	}
}

func tokensExpiring(access domain.Expiry) domain.AuthTokens {
	return domain.AuthTokens{
		User: "alice", Provider: domain.ProviderGitHub,
		AccessToken: domain.NewSecret("access"), AccessExpiry: access,
	}
}

func TestNeedsRefresh(t *testing.T) {
	t.Parallel()
	const m = 15 * time.Minute
	tests := []struct {
		name   string
		margin time.Duration
		access domain.Expiry
		want   bool
	}{
		{"never expires", m, domain.Never(), false},
		{"never expires, zero margin", 0, domain.Never(), false},
		{"never expires, huge margin", 1 << 62, domain.Never(), false},
		{"far future", m, domain.At(now.Add(24 * time.Hour)), false},
		{"1ns outside margin", m, domain.At(now.Add(m + time.Nanosecond)), false},
		{"exactly at margin", m, domain.At(now.Add(m)), true},
		{"1ns inside margin", m, domain.At(now.Add(m - time.Nanosecond)), true},
		{"expires in 1ns", m, domain.At(now.Add(time.Nanosecond)), true},
		{"expires now", m, domain.At(now), true},
		{"expired", m, domain.At(now.Add(-time.Hour)), true},
		{"zero margin, 1ns left", 0, domain.At(now.Add(time.Nanosecond)), false},
		{"zero margin, expires now", 0, domain.At(now), true},
		{"zero-value policy, expired", 0, domain.At(now.Add(-time.Second)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := domain.RefreshPolicy{Margin: tc.margin}
			if got := p.NeedsRefresh(tokensExpiring(tc.access).AccessExpiry, now); got != tc.want {
				t.Fatalf("NeedsRefresh = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCanRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		refresh string
		expiry  domain.Expiry
		want    bool
	}{
		{"no refresh token", "", domain.Never(), false},
		{"no refresh token, expiry set", "", domain.At(now.Add(time.Hour)), false},
		{"refresh token, never expires", "r", domain.Never(), true},
		{"refresh token, future expiry", "r", domain.At(now.Add(time.Hour)), true},
		{"refresh token, expires in 1ns", "r", domain.At(now.Add(time.Nanosecond)), true},
		{"refresh token, expires now", "r", domain.At(now), false},
		{"refresh token, expired", "r", domain.At(now.Add(-time.Hour)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := tokensExpiring(domain.At(now.Add(-time.Hour)))
			tok.RefreshToken = domain.NewSecret(tc.refresh)
			tok.RefreshExpiry = tc.expiry
			if got := tok.HasRefreshToken(); got != (tc.refresh != "") {
				t.Errorf("HasRefreshToken = %v", got)
			}
			for _, p := range []domain.RefreshPolicy{domain.DefaultRefreshPolicy(), {}} {
				if got := p.CanRefresh(tok.HasRefreshToken(), tok.RefreshExpiry, now); got != tc.want {
					t.Fatalf("CanRefresh (margin %v) = %v, want %v", p.Margin, got, tc.want)
				}
			}
		})
	}
}

func TestState(t *testing.T) {
	t.Parallel()
	const m = 15 * time.Minute
	tests := []struct {
		name          string
		access        domain.Expiry
		refresh       string
		refreshExpiry domain.Expiry
		want          domain.TokenState
	}{
		{"never expires, no refresh", domain.Never(), "", domain.Never(), domain.StateValid},
		{"never expires, refresh expired", domain.Never(), "r", domain.At(now.Add(-time.Hour)), domain.StateValid},
		{"far future", domain.At(now.Add(time.Hour)), "", domain.Never(), domain.StateValid},
		{"1ns outside margin", domain.At(now.Add(m + time.Nanosecond)), "", domain.Never(), domain.StateValid},

		{"exactly at margin", domain.At(now.Add(m)), "r", domain.Never(), domain.StateExpiring},
		{"inside margin", domain.At(now.Add(time.Minute)), "r", domain.Never(), domain.StateExpiring},
		{"inside margin, no refresh token", domain.At(now.Add(time.Minute)), "", domain.Never(), domain.StateExpiring},
		{"inside margin, refresh expired", domain.At(now.Add(time.Minute)), "r", domain.At(now.Add(-time.Hour)), domain.StateExpiring},
		{"1ns left", domain.At(now.Add(time.Nanosecond)), "", domain.Never(), domain.StateExpiring},

		{"expires now, refresh never expires", domain.At(now), "r", domain.Never(), domain.StateExpired},
		{"expired, refresh never expires", domain.At(now.Add(-time.Hour)), "r", domain.Never(), domain.StateExpired},
		{"expired, refresh valid 1ns more", domain.At(now.Add(-time.Hour)), "r", domain.At(now.Add(time.Nanosecond)), domain.StateExpired},

		{"expired, no refresh token", domain.At(now.Add(-time.Hour)), "", domain.Never(), domain.StateReauthRequired},
		{"expires now, no refresh token", domain.At(now), "", domain.Never(), domain.StateReauthRequired},
		{"expired, refresh expires now", domain.At(now.Add(-time.Hour)), "r", domain.At(now), domain.StateReauthRequired},
		{"expired, refresh expired", domain.At(now.Add(-time.Hour)), "r", domain.At(now.Add(-time.Minute)), domain.StateReauthRequired},
		{"expired, refresh expiry without token", domain.At(now.Add(-time.Hour)), "", domain.At(now.Add(time.Hour)), domain.StateReauthRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := tokensExpiring(tc.access)
			tok.RefreshToken = domain.NewSecret(tc.refresh)
			tok.RefreshExpiry = tc.refreshExpiry
			p := domain.RefreshPolicy{Margin: m}
			if got := p.State(tok, now); got != tc.want {
				t.Fatalf("State = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStateConsistentWithPredicates checks, over a grid of clocks, that State
// agrees with Expired/NeedsRefresh/CanRefresh.
func TestStateConsistentWithPredicates(t *testing.T) {
	t.Parallel()
	p := domain.DefaultRefreshPolicy()
	offsets := []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, p.Margin - time.Nanosecond, p.Margin, p.Margin + time.Nanosecond, time.Hour}
	for _, accessOff := range offsets {
		for _, refreshOff := range offsets {
			for _, hasRefresh := range []bool{false, true} {
				tok := tokensExpiring(domain.At(now.Add(accessOff)))
				if hasRefresh {
					tok.RefreshToken = domain.NewSecret("r")
					tok.RefreshExpiry = domain.At(now.Add(refreshOff))
				}
				var want domain.TokenState
				switch {
				case tok.AccessExpiry.Expired(now) && p.CanRefresh(tok.HasRefreshToken(), tok.RefreshExpiry, now):
					want = domain.StateExpired
				case tok.AccessExpiry.Expired(now):
					want = domain.StateReauthRequired
				case p.NeedsRefresh(tok.AccessExpiry, now):
					want = domain.StateExpiring
				default:
					want = domain.StateValid
				}
				if got := p.State(tok, now); got != want {
					t.Errorf("access %v refresh %v (has %v): State = %q, want %q", accessOff, refreshOff, hasRefresh, got, want)
				}
			}
		}
	}
}
