package storage_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/repotest"
)

// TestClaimAgreesWithRefreshRule checks that the worker's claim SQL
// (ClaimDueRefreshes) takes exactly the rows for which domain.NextRefreshStep
// says StepRefresh, over a table of rows that crosses every fact the rule
// reads: access expiry around the horizon, refresh token presence and
// expiry, lease, back-off (after a clean failure and after one of unknown
// outcome), re-authorization and provider, for providers that keep the
// previous access token and for those that revoke it; and, for the
// effective margin (domain.EffectiveMargin), when the access token was
// obtained, which caps the horizon at a fraction of its lifetime. The rule's
// side is NextRefreshStep with Margin EffectiveMargin(horizon, fraction,
// obtained, expiry), no lookahead (the claim's horizon is
// domain.RefreshHorizon, which has it) and RevokesPreviousAccessToken as
// claimed. Offsets are 30 s or more from every bound so the clock moving
// during the test cannot flip a row; the exact instants are specified in
// domain's tables.
func TestClaimAgreesWithRefreshRule(t *testing.T) {
	t.Parallel()
	for _, revokes := range []bool{false, true} {
		t.Run(fmt.Sprintf("revokes=%v", revokes), func(t *testing.T) {
			t.Parallel()
			checkClaimAgreesWithRefreshRule(t, revokes)
		})
	}
}

func checkClaimAgreesWithRefreshRule(t *testing.T, revokes bool) {
	repo, pool := setup(t, postgres.Options{})
	ctx := context.Background()
	const (
		horizon  = 30 * time.Minute
		fraction = 0.5
	)
	var dbNow time.Time
	if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&dbNow); err != nil {
		t.Fatal(err)
	}

	accesses := map[string]domain.Expiry{
		"expired":         domain.At(dbNow.Add(-time.Hour)),
		"soon":            domain.At(dbNow.Add(time.Minute)),
		"mid":             domain.At(dbNow.Add(10 * time.Minute)),
		"inside-horizon":  domain.At(dbNow.Add(horizon - time.Minute)),
		"outside-horizon": domain.At(dbNow.Add(horizon + 2*time.Minute)),
		"never":           domain.Never(),
	}
	type refresh struct {
		has    bool
		expiry domain.Expiry
	}
	refreshes := map[string]refresh{
		"none":    {false, domain.Never()},
		"expired": {true, domain.At(dbNow.Add(-time.Minute))},
		"valid":   {true, domain.At(dbNow.Add(24 * time.Hour))},
		"never":   {true, domain.Never()},
	}
	states := map[string]domain.RefreshState{
		"clean":        {},
		"live-lease":   {LeaseOwner: "other", LeaseUntil: dbNow.Add(time.Hour)},
		"lapsed-lease": {LeaseOwner: "other", LeaseUntil: dbNow.Add(-time.Minute)},
		"backoff":      {NextAttemptAt: dbNow.Add(time.Hour), LastError: domain.CodeProviderUnavailable},
		"backoff-over": {NextAttemptAt: dbNow.Add(-time.Minute), LastError: domain.CodeProviderUnavailable},
		"unknown":      {NextAttemptAt: dbNow.Add(time.Hour), LastError: domain.CodeProviderOutcomeUnknown, AmbiguousRetries: 2},
		"unknown-over": {NextAttemptAt: dbNow.Add(-time.Minute), LastError: domain.CodeProviderOutcomeUnknown, AmbiguousRetries: 2},
		"reauth":       {ReauthRequired: true, LastError: domain.CodeGrantRevoked},
	}
	// When the access token was obtained; each crosses every access expiry
	// and every state with a valid refresh token (the refresh tokens are
	// crossed above, with the lifetime unknown).
	obtained := map[string]time.Time{
		"unknown":      {},                           // NULL: the horizon alone
		"long-ago":     dbNow.Add(-24 * time.Hour),   // a long life: the horizon
		"fresh":        dbNow,                        // half the time left
		"half-life":    dbNow.Add(-20 * time.Minute), // "mid" is inside half its 30m life
		"after-expiry": dbNow.Add(2 * time.Hour),     // no lifetime: margin 0
		"just-before":  dbNow.Add(-90 * time.Second), // "soon": half of 2.5m is inside
	}
	claimed := []domain.Provider{domain.ProviderGitLab}

	views := map[domain.UserID]domain.RefreshView{}
	add := func(user domain.UserID, access domain.Expiry, r refresh, st domain.RefreshState, got time.Time) {
		for _, p := range []domain.Provider{domain.ProviderGitLab, domain.ProviderGitHub} {
			tok := repotest.Sample(user, p, "x")
			tok.AccessExpiry, tok.RefreshExpiry, tok.AccessObtainedAt = access, r.expiry, got
			if !r.has {
				tok.RefreshToken = nil
			}
			if _, err := repo.PutAuthTokens(ctx, tok); err != nil {
				t.Fatal(err)
			}
			row, err := repo.UpdateAuthTokens(ctx, user, p,
				func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
					cur.Refresh = st
					return &cur, nil, nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if p == domain.ProviderGitLab {
				margin := domain.EffectiveMargin(horizon, fraction, row.AccessObtainedAt, row.AccessExpiry)
				v := row.RefreshView(margin, slices.Contains(claimed, p))
				v.RevokesPreviousAccessToken = revokes
				views[user] = v
			}
		}
	}
	for an, access := range accesses {
		for rn, r := range refreshes {
			for sn, st := range states {
				add(domain.UserID(fmt.Sprintf("%s.%s.%s", an, rn, sn)), access, r, st, time.Time{})
			}
		}
		for on, got := range obtained {
			for sn, st := range states {
				add(domain.UserID(fmt.Sprintf("%s.obtained-%s.%s", an, on, sn)), access, refreshes["valid"], st, got)
			}
		}
	}

	got, err := repo.ClaimDueRefreshes(ctx, ports.RefreshClaim{
		Owner: "checker", Providers: claimed, Lease: time.Minute, Horizon: horizon, LifetimeFraction: fraction, Limit: 10_000,
		RevokesPreviousAccessToken: revokes,
	})
	if err != nil {
		t.Fatal(err)
	}
	var after time.Time
	if err := pool.QueryRow(ctx, `SELECT now()`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	took := map[domain.UserID]bool{}
	for _, row := range got {
		if row.Provider != domain.ProviderGitLab {
			t.Errorf("claimed %s/%s: its provider was not asked for", row.User, row.Provider)
		}
		took[row.User] = true
		// Claiming a row whose last refresh had an unknown outcome sends
		// its refresh token again: one more ambiguous retry.
		want := 0
		if row.Refresh.LastError == domain.CodeProviderOutcomeUnknown {
			want = 3
		}
		if row.Refresh.AmbiguousRetries != want {
			t.Errorf("%s: claimed with %d ambiguous retries, want %d", row.User, row.Refresh.AmbiguousRetries, want)
		}
	}
	due := 0
	for user, v := range views {
		want := domain.NextRefreshStep(v, dbNow) == domain.StepRefresh
		if later := domain.NextRefreshStep(v, after) == domain.StepRefresh; later != want {
			t.Fatalf("%s: the rule changed its mind between %v and %v; widen the offsets", user, dbNow, after)
		}
		if want {
			due++
		}
		if took[user] != want {
			t.Errorf("%s: SQL claimed %v, NextRefreshStep says %v (want claimed %v)",
				user, took[user], domain.NextRefreshStep(v, dbNow), want)
		}
	}
	if due == 0 || due == len(views) {
		t.Fatalf("%d of %d rows due: the table does not test both sides", due, len(views))
	}
	if !took["inside-horizon.obtained-unknown.clean"] || took["inside-horizon.obtained-fresh.clean"] || !took["mid.obtained-half-life.clean"] {
		t.Error("the lifetime does not cap the horizon: a fresh token inside the horizon must not be claimed, one past half its life must")
	}
	// The outcome-unknown retry of a revoking provider is due whatever the
	// expiry and the effective margin; for other providers it is not.
	if took["outside-horizon.obtained-fresh.unknown-over"] != revokes {
		t.Errorf("a fresh token after an unknown outcome claimed %v, want %v (revokes=%v)",
			took["outside-horizon.obtained-fresh.unknown-over"], revokes, revokes)
	}
}
