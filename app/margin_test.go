package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// living answers refreshes with tokens that live d, rotating.
func living(d time.Duration) func(n int) (domain.RefreshedTokens, error) {
	return func(n int) (domain.RefreshedTokens, error) {
		return domain.RefreshedTokens{
			AccessToken: domain.NewSecret(fmt.Sprint("access-", n)), AccessExpiry: domain.At(time.Now().Add(d)),
			RefreshToken: domain.NewSecret(fmt.Sprint("refresh-", n)),
		}, nil
	}
}

// TestShortLivedTokensSixReadsOneRefresh is the measurement: a
// Keycloak token living 300 s with the default 15-minute margin was inside
// the margin from the moment it was issued, and 6 reads caused 6 refreshes.
// The effective margin (half the lifetime) makes them cause 1.
func TestShortLivedTokensSixReadsOneRefresh(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.provider.setAnswer(living(300 * time.Second))
	f.put("alice", gitlab, -time.Minute, "refresh-0")
	for i := range 6 {
		if _, err := f.get("alice", gitlab); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	f.wantCalls(1)
}

// TestEffectiveMarginStillRefreshesInsideIt: a fresh token inside half its
// lifetime of its expiry is refreshed; the per-provider margin still caps
// the effective one.
func TestEffectiveMarginStillRefreshesInsideIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{ProviderMargins: map[domain.Provider]time.Duration{gitlab: 10 * time.Second}})
	f.provider.setAnswer(living(300 * time.Second))
	// 100 s left of a lifetime of about 100 s: half is 50 s, the provider's
	// margin 10 s: outside both, served.
	f.putFresh("alice", gitlab, 100*time.Second, "refresh-0")
	if got, err := f.get("alice", gitlab); err != nil || got != "access-alice" {
		t.Fatalf("GetAccessToken = %q, %v; want the stored token", got, err)
	}
	// Obtained a day ago, 5 s left: inside the provider's 10 s margin.
	f.put("bob", gitlab, 5*time.Second, "refresh-b")
	if got, err := f.get("bob", gitlab); err != nil || got != "access-1" {
		t.Fatalf("GetAccessToken = %q, %v; want a refresh inside the provider's margin", got, err)
	}
	f.wantCalls(1)
}

// TestLifetimeFractionSetting: the fraction is a setting. A token obtained
// 10 minutes ago with 4 minutes left (a 14-minute lifetime) is inside the
// default cap (7m) and outside 0.2's (2.8m).
func TestLifetimeFractionSetting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		fraction float64
		want     string
	}{{0, "access-1"}, {0.5, "access-1"}, {0.2, "access-alice"}} {
		f := newFixture(t, app.Config{LifetimeFraction: tt.fraction})
		f.putFresh("alice", gitlab, 4*time.Minute, "refresh-0")
		if _, err := f.repo.UpdateAuthTokens(context.Background(), "alice", gitlab,
			func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
				cur.AccessObtainedAt = time.Now().Add(-10 * time.Minute)
				return &cur, nil, nil
			}); err != nil {
			t.Fatal(err)
		}
		if got, err := f.get("alice", gitlab); err != nil || got != tt.want {
			t.Errorf("fraction %v: GetAccessToken = %q, %v; want %q", tt.fraction, got, err, tt.want)
		}
	}
	for _, bad := range []float64{1, 1.5, -0.1} {
		if err := (app.Config{LifetimeFraction: bad}).Validate(nil); err == nil {
			t.Errorf("LifetimeFraction %v accepted", bad)
		}
	}
	if err := (app.Config{LifetimeFraction: 0.3}).Validate(nil); err != nil {
		t.Errorf("LifetimeFraction 0.3: %v", err)
	}
}

// TestObtainedAtRecorded: PUT and every refresh record when the access
// token was obtained, by the service's clock.
func TestObtainedAtRecorded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	before := time.Now()
	f.putFresh("alice", gitlab, -time.Minute, "refresh-0")
	put := f.row("alice", gitlab).AccessObtainedAt
	if put.Before(before) || put.After(time.Now()) {
		t.Errorf("obtained at %v after PUT, want between %v and now", put, before)
	}
	if _, err := f.get("alice", gitlab); err != nil {
		t.Fatal(err)
	}
	refreshed := f.row("alice", gitlab).AccessObtainedAt
	if !refreshed.After(put) || refreshed.After(time.Now()) {
		t.Errorf("obtained at %v after the refresh, want after the PUT's %v", refreshed, put)
	}
}

// TestListingUsesEffectiveMargin: a fresh 5-minute token is valid, not
// expiring (it was "expiring" from the moment it was stored).
func TestListingUsesEffectiveMargin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	st, err := f.svc.PutAuthTokens(context.Background(), domain.AuthTokens{
		User: "u", Provider: gitlab, AccessToken: domain.NewSecret("a"), RefreshToken: domain.NewSecret("r"),
		AccessExpiry: domain.At(time.Now().Add(5 * time.Minute)),
	})
	if err != nil || st.State != domain.StateValid {
		t.Fatalf("PUT status %q, %v; want valid", st.State, err)
	}
	f.put("u", domain.ProviderKeycloak, 5*time.Minute, "r") // obtained a day ago: inside the margin
	list, err := f.svc.ListProviders(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	want := map[domain.Provider]domain.TokenState{gitlab: domain.StateValid, domain.ProviderKeycloak: domain.StateExpiring}
	for _, s := range list {
		if s.State != want[s.Provider] {
			t.Errorf("%s listed %q, want %q", s.Provider, s.State, want[s.Provider])
		}
	}
}

// TestWorkerClaimsByEffectiveMargin: the worker refreshes a short-lived
// token no earlier than its effective margin, not on every scan.
func TestWorkerClaimsByEffectiveMargin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.putFresh("fresh", gitlab, 5*time.Minute, "r")     // cap 2.5m: not due
	f.put("old", gitlab, 5*time.Minute, "r")            // lifetime a day: inside 15m + lookahead
	f.putFresh("half-gone", gitlab, 2*time.Second, "r") // a 2 s token: cap 1 s, not due yet
	n, err := f.worker(app.WorkerConfig{Lookahead: time.Minute}).RunOnce(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1 refreshed", n, err)
	}
	if v := f.row("fresh", gitlab).Version; v != 1 {
		t.Errorf("the fresh 5-minute token was touched by the scan (version %d)", v)
	}
	f.wantCalls(1)
}
