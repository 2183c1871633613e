package domain_test

import (
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

func TestDefaultRefreshMargin(t *testing.T) {
	t.Parallel()
	if domain.DefaultRefreshMargin != 15*time.Minute {
		t.Errorf("DefaultRefreshMargin = %v, want 15m", domain.DefaultRefreshMargin)
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

// TestCodeValues pins the refresh failure codes: they are stored and appear
// in API responses.
func TestCodeValues(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		domain.CodeGrantRevoked:         "invalid_grant",
		domain.CodeProviderRejected:     "provider_rejected",
		domain.CodeProviderUnavailable:  "provider_unavailable",
		domain.CodeRefreshInterrupted:   "refresh_interrupted",
		domain.CodeRefreshUndecryptable: "refresh_token_undecryptable",
		domain.CodeRefreshTokenExpired:  "refresh_token_expired",
	} {
		if got != want {
			t.Errorf("code %q, want %q", got, want)
		}
	}
}

const margin = 15 * time.Minute

// due is a row whose access token is inside the margin, with an unexpired
// refresh token, no lease, no back-off, of a refreshable provider: the
// baseline every case of the specification changes one or two facts of.
func due() domain.RefreshView {
	return domain.RefreshView{
		AccessExpiry:    domain.At(now.Add(time.Minute)),
		RefreshExpiry:   domain.At(now.Add(30 * 24 * time.Hour)),
		HasRefreshToken: true,
		Refreshable:     true,
		Margin:          margin,
	}
}

func at(d time.Duration) domain.Expiry { return domain.At(now.Add(d)) }

// TestNextRefreshStep is the specification of the refresh rule. Each case
// starts from due() and changes what its name says.
func TestNextRefreshStep(t *testing.T) {
	t.Parallel()
	const ns = time.Nanosecond
	expired := func(v *domain.RefreshView) { v.AccessExpiry = at(-time.Hour) }
	lease := func(until time.Duration) func(*domain.RefreshView) {
		return func(v *domain.RefreshView) {
			v.Refresh.LeaseOwner, v.Refresh.LeaseUntil = "other/1", now.Add(until)
		}
	}
	backoff := func(until time.Duration) func(*domain.RefreshView) {
		return func(v *domain.RefreshView) { v.Refresh.NextAttemptAt = now.Add(until) }
	}
	access := func(e domain.Expiry) func(*domain.RefreshView) {
		return func(v *domain.RefreshView) { v.AccessExpiry = e }
	}
	refresh := func(has bool, e domain.Expiry) func(*domain.RefreshView) {
		return func(v *domain.RefreshView) { v.HasRefreshToken, v.RefreshExpiry = has, e }
	}
	reauth := func(v *domain.RefreshView) {
		v.Refresh.ReauthRequired, v.Refresh.LastError = true, domain.CodeGrantRevoked
	}
	notRefreshable := func(v *domain.RefreshView) { v.Refreshable = false }
	marginOf := func(m time.Duration) func(*domain.RefreshView) {
		return func(v *domain.RefreshView) { v.Margin = m }
	}
	lookahead := func(d time.Duration) func(*domain.RefreshView) {
		return func(v *domain.RefreshView) { v.Lookahead = d }
	}
	revokes := func(v *domain.RefreshView) { v.RevokesPreviousAccessToken = true }
	unknown := func(v *domain.RefreshView) {
		v.OutcomeUnknown, v.Refresh.LastError = true, domain.CodeProviderOutcomeUnknown
	}

	tests := []struct {
		name string
		edit []func(*domain.RefreshView)
		want domain.RefreshStep
	}{
		// The margin and the expiry instant.
		{"inside margin", nil, domain.StepRefresh},
		{"far future", []func(*domain.RefreshView){access(at(24 * time.Hour))}, domain.StepServe},
		{"1ns outside margin", []func(*domain.RefreshView){access(at(margin + ns))}, domain.StepServe},
		{"exactly at margin edge", []func(*domain.RefreshView){access(at(margin))}, domain.StepRefresh},
		{"1ns inside margin", []func(*domain.RefreshView){access(at(margin - ns))}, domain.StepRefresh},
		{"expires in 1ns", []func(*domain.RefreshView){access(at(ns))}, domain.StepRefresh},
		{"expires exactly now", []func(*domain.RefreshView){access(at(0))}, domain.StepRefresh},
		{"expired", []func(*domain.RefreshView){expired}, domain.StepRefresh},
		{"zero margin, 1ns left", []func(*domain.RefreshView){marginOf(0), access(at(ns))}, domain.StepServe},
		{"zero margin, expires now", []func(*domain.RefreshView){marginOf(0), access(at(0))}, domain.StepRefresh},
		{"negative margin counts as zero", []func(*domain.RefreshView){marginOf(-time.Hour), access(at(0))}, domain.StepRefresh},
		{"negative margin, 1ns left", []func(*domain.RefreshView){marginOf(-time.Hour), access(at(ns))}, domain.StepServe},

		// Tokens that never expire.
		{"never expires", []func(*domain.RefreshView){access(domain.Never())}, domain.StepServe},
		{"never expires, huge margin", []func(*domain.RefreshView){access(domain.Never()), marginOf(1 << 62)}, domain.StepServe},
		{"never expires, no refresh token", []func(*domain.RefreshView){access(domain.Never()), refresh(false, domain.Never())}, domain.StepServe},
		{"never expires, refresh expired", []func(*domain.RefreshView){access(domain.Never()), refresh(true, at(-time.Hour))}, domain.StepServe},
		{"never expires, not refreshable", []func(*domain.RefreshView){access(domain.Never()), notRefreshable}, domain.StepServe},
		{"refresh token never expires", []func(*domain.RefreshView){expired, refresh(true, domain.Never())}, domain.StepRefresh},

		// No usable refresh token.
		{"no refresh token, inside margin", []func(*domain.RefreshView){refresh(false, domain.Never())}, domain.StepServe},
		{"no refresh token, expired", []func(*domain.RefreshView){expired, refresh(false, domain.Never())}, domain.StepReauth},
		{"no refresh token, expires now", []func(*domain.RefreshView){access(at(0)), refresh(false, domain.Never())}, domain.StepReauth},
		{"refresh expiry without token, expired", []func(*domain.RefreshView){expired, refresh(false, at(time.Hour))}, domain.StepReauth},
		{"refresh expired, inside margin", []func(*domain.RefreshView){refresh(true, at(-time.Hour))}, domain.StepServe},
		{"refresh expired, access expired", []func(*domain.RefreshView){expired, refresh(true, at(-time.Hour))}, domain.StepReauth},
		{"refresh expires exactly now", []func(*domain.RefreshView){expired, refresh(true, at(0))}, domain.StepReauth},
		{"refresh valid 1ns more", []func(*domain.RefreshView){expired, refresh(true, at(ns))}, domain.StepRefresh},

		// Marked for re-authorization: nothing else matters.
		{"reauth", []func(*domain.RefreshView){reauth}, domain.StepReauth},
		{"reauth, far future", []func(*domain.RefreshView){reauth, access(at(time.Hour))}, domain.StepReauth},
		{"reauth, never expires", []func(*domain.RefreshView){reauth, access(domain.Never())}, domain.StepReauth},
		{"reauth, not refreshable", []func(*domain.RefreshView){reauth, notRefreshable}, domain.StepReauth},
		{"reauth, live lease", []func(*domain.RefreshView){reauth, lease(time.Minute)}, domain.StepReauth},

		// Providers this instance cannot refresh.
		{"not refreshable, inside margin", []func(*domain.RefreshView){notRefreshable}, domain.StepServe},
		{"not refreshable, expired", []func(*domain.RefreshView){notRefreshable, expired}, domain.StepExpired},
		{"not refreshable, expires now", []func(*domain.RefreshView){notRefreshable, access(at(0))}, domain.StepExpired},
		{"not refreshable, expired, no refresh token", []func(*domain.RefreshView){notRefreshable, expired, refresh(false, domain.Never())}, domain.StepExpired},
		{"not refreshable, lapsed lease", []func(*domain.RefreshView){notRefreshable, lease(-time.Minute)}, domain.StepServe},

		// Leases.
		{"live lease, inside margin", []func(*domain.RefreshView){lease(time.Minute)}, domain.StepServe},
		{"live lease, expired", []func(*domain.RefreshView){lease(time.Minute), expired}, domain.StepWait},
		{"live lease 1ns more, expired", []func(*domain.RefreshView){lease(ns), expired}, domain.StepWait},
		{"lease lapses exactly now", []func(*domain.RefreshView){lease(0), expired}, domain.StepInterrupted},
		{"lease lapsed, expired", []func(*domain.RefreshView){lease(-time.Minute), expired}, domain.StepInterrupted},
		{"lease lapsed, far future", []func(*domain.RefreshView){lease(-time.Minute), access(at(time.Hour))}, domain.StepInterrupted},
		{"lease lapsed, no refresh token", []func(*domain.RefreshView){lease(-time.Minute), refresh(false, domain.Never())}, domain.StepInterrupted},
		{"live lease, no refresh token, expired", []func(*domain.RefreshView){lease(time.Minute), expired, refresh(false, domain.Never())}, domain.StepWait},

		// Back-off after a failure.
		{"back-off, inside margin", []func(*domain.RefreshView){backoff(time.Minute)}, domain.StepServe},
		{"back-off, expired", []func(*domain.RefreshView){backoff(time.Minute), expired}, domain.StepBackOff},
		{"back-off 1ns more, expired", []func(*domain.RefreshView){backoff(ns), expired}, domain.StepBackOff},
		{"back-off ends exactly now", []func(*domain.RefreshView){backoff(0), expired}, domain.StepRefresh},
		{"back-off ended", []func(*domain.RefreshView){backoff(-time.Minute)}, domain.StepRefresh},
		{"back-off, far future", []func(*domain.RefreshView){backoff(time.Minute), access(at(time.Hour))}, domain.StepServe},
		{"back-off, no refresh token, expired", []func(*domain.RefreshView){backoff(time.Minute), expired, refresh(false, domain.Never())}, domain.StepReauth},
		{"back-off, live lease, expired", []func(*domain.RefreshView){backoff(time.Minute), lease(time.Minute), expired}, domain.StepWait},

		// The worker's lookahead widens the horizon, except for providers
		// that revoke the previous access token (ReportedExpiry).
		{"lookahead reaches the token", []func(*domain.RefreshView){access(at(margin + time.Minute)), lookahead(2 * time.Minute)}, domain.StepRefresh},
		{"lookahead short of the token", []func(*domain.RefreshView){access(at(margin + time.Minute)), lookahead(time.Minute - ns)}, domain.StepServe},
		{"revokes: lookahead ignored", []func(*domain.RefreshView){revokes, access(at(margin + time.Minute)), lookahead(2 * time.Minute)}, domain.StepServe},
		{"revokes: inside margin", []func(*domain.RefreshView){revokes}, domain.StepRefresh},

		// A refresh in flight may have revoked the access token already.
		{"revokes: live lease, inside margin", []func(*domain.RefreshView){revokes, lease(time.Minute)}, domain.StepWait},
		{"revokes: live lease, far future", []func(*domain.RefreshView){revokes, lease(time.Minute), access(at(time.Hour))}, domain.StepWait},
		{"revokes: lease lapsed", []func(*domain.RefreshView){revokes, lease(-time.Minute)}, domain.StepInterrupted},
		{"revokes: not refreshable, live lease", []func(*domain.RefreshView){revokes, notRefreshable, lease(time.Minute)}, domain.StepExpired},

		// An unknown outcome: for a provider that revokes, the stored
		// access token may be dead; retry the same refresh token after the
		// back-off whatever the margin says.
		{"unknown outcome, back-off, inside margin", []func(*domain.RefreshView){unknown, backoff(time.Minute)}, domain.StepServe},
		{"revokes: unknown outcome, back-off", []func(*domain.RefreshView){revokes, unknown, backoff(time.Minute)}, domain.StepBackOff},
		{"revokes: unknown outcome, back-off, far future", []func(*domain.RefreshView){revokes, unknown, backoff(time.Minute), access(at(time.Hour))}, domain.StepBackOff},
		{"revokes: unknown outcome, back-off ended, far future", []func(*domain.RefreshView){revokes, unknown, backoff(-ns), access(at(time.Hour))}, domain.StepRefresh},
		{"revokes: unknown outcome, back-off ends now", []func(*domain.RefreshView){revokes, unknown, backoff(0)}, domain.StepRefresh},
		{"revokes: unknown outcome, never expires", []func(*domain.RefreshView){revokes, unknown, access(domain.Never())}, domain.StepRefresh},
		{"revokes: unknown outcome, no refresh token", []func(*domain.RefreshView){revokes, unknown, refresh(false, domain.Never()), access(at(time.Hour))}, domain.StepReauth},
		{"revokes: unknown outcome, refresh expired", []func(*domain.RefreshView){revokes, unknown, refresh(true, at(-time.Hour))}, domain.StepReauth},
		{"revokes: unknown outcome, live lease", []func(*domain.RefreshView){revokes, unknown, lease(time.Minute), access(at(time.Hour))}, domain.StepWait},
		{"revokes: unknown outcome, reauth", []func(*domain.RefreshView){revokes, unknown, reauth}, domain.StepReauth},
		{"unknown outcome, far future", []func(*domain.RefreshView){unknown, access(at(time.Hour))}, domain.StepServe},
		{"revokes: clean failure, back-off, inside margin", []func(*domain.RefreshView){revokes, backoff(time.Minute)}, domain.StepServe},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := due()
			for _, edit := range tc.edit {
				edit(&v)
			}
			if got := domain.NextRefreshStep(v, now); got != tc.want {
				t.Fatalf("NextRefreshStep = %v, want %v (view %+v)", got, tc.want, v)
			}
		})
	}
}

func TestRefreshStepString(t *testing.T) {
	t.Parallel()
	for step, want := range map[domain.RefreshStep]string{
		domain.StepServe: "serve", domain.StepRefresh: "refresh", domain.StepWait: "wait",
		domain.StepInterrupted: "interrupted", domain.StepReauth: "reauth", domain.StepExpired: "expired",
		domain.StepBackOff: "back-off", domain.RefreshStep(99): "RefreshStep(?)", domain.RefreshStep(-1): "RefreshStep(?)",
	} {
		if got := step.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(step), got, want)
		}
	}
}

func tokensExpiring(access domain.Expiry) domain.AuthTokens {
	return domain.AuthTokens{
		User: "alice", Provider: domain.ProviderGitHub,
		AccessToken: domain.NewSecret("access"), AccessExpiry: access,
	}
}

// TestViews checks that each stored shape describes the same facts.
func TestViews(t *testing.T) {
	t.Parallel()
	tok := tokensExpiring(at(time.Minute))
	tok.RefreshToken, tok.RefreshExpiry = domain.NewSecret("r"), at(time.Hour)
	if got, want := tok.RefreshView(margin), due(); got.AccessExpiry != want.AccessExpiry ||
		got.RefreshExpiry != at(time.Hour) || !got.HasRefreshToken || !got.Refreshable || got.Margin != margin {
		t.Errorf("AuthTokens.RefreshView = %+v", got)
	}
	sealed := domain.SealedAuthTokens{
		AccessExpiry: at(time.Minute), RefreshExpiry: at(time.Hour),
		Refresh: domain.RefreshState{LeaseOwner: "o", LeaseUntil: now, NextAttemptAt: now, ReauthRequired: true},
	}
	if got := sealed.RefreshView(margin, false); got.HasRefreshToken || got.Refreshable || got.Refresh != sealed.Refresh || got.Margin != margin {
		t.Errorf("SealedAuthTokens.RefreshView without refresh token = %+v", got)
	}
	sealed.RefreshToken = []byte{}
	if got := sealed.RefreshView(margin, true); !got.HasRefreshToken || !got.Refreshable {
		t.Errorf("SealedAuthTokens.RefreshView with an empty refresh token = %+v", got)
	}
	info := domain.ProviderTokenInfo{AccessExpiry: at(time.Minute), HasRefreshToken: true, ReauthRequired: true, LastError: "x"}
	if got := info.RefreshView(margin); !got.HasRefreshToken || !got.Refresh.ReauthRequired || !got.Refreshable || got.Margin != margin {
		t.Errorf("ProviderTokenInfo.RefreshView = %+v", got)
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
			if got := tok.RefreshView(m).State(now); got != tc.want {
				t.Fatalf("State = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStateIgnoresCoordination: a listing describes the stored tokens, not a
// refresh in flight, a back-off or this instance's configuration; only the
// re-authorization mark changes it.
func TestStateIgnoresCoordination(t *testing.T) {
	t.Parallel()
	for _, access := range []time.Duration{-time.Hour, time.Minute, time.Hour} {
		plain := due()
		plain.AccessExpiry = at(access)
		want := plain.State(now)
		for name, edit := range map[string]func(*domain.RefreshView){
			"live lease":      func(v *domain.RefreshView) { v.Refresh.LeaseOwner, v.Refresh.LeaseUntil = "o", now.Add(time.Minute) },
			"lapsed lease":    func(v *domain.RefreshView) { v.Refresh.LeaseOwner, v.Refresh.LeaseUntil = "o", now.Add(-time.Minute) },
			"back-off":        func(v *domain.RefreshView) { v.Refresh.NextAttemptAt = now.Add(time.Minute) },
			"not refreshable": func(v *domain.RefreshView) { v.Refreshable = false },
			"last error":      func(v *domain.RefreshView) { v.Refresh.LastError = domain.CodeProviderUnavailable },
		} {
			v := plain
			edit(&v)
			if got := v.State(now); got != want {
				t.Errorf("access %v, %s: State = %q, want %q as without it", access, name, got, want)
			}
		}
		marked := plain
		marked.Refresh.ReauthRequired = true
		if got := marked.State(now); got != domain.StateReauthRequired {
			t.Errorf("access %v, marked: State = %q, want reauth_required", access, got)
		}
	}
}

// TestStateConsistentWithPredicates checks, over a grid of clocks, that State
// agrees with the expiry predicates.
func TestStateConsistentWithPredicates(t *testing.T) {
	t.Parallel()
	m := domain.DefaultRefreshMargin
	offsets := []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, m - time.Nanosecond, m, m + time.Nanosecond, time.Hour}
	for _, accessOff := range offsets {
		for _, refreshOff := range offsets {
			for _, hasRefresh := range []bool{false, true} {
				tok := tokensExpiring(domain.At(now.Add(accessOff)))
				if hasRefresh {
					tok.RefreshToken = domain.NewSecret("r")
					tok.RefreshExpiry = domain.At(now.Add(refreshOff))
				}
				canRefresh := hasRefresh && !tok.RefreshExpiry.Expired(now)
				var want domain.TokenState
				switch {
				case tok.AccessExpiry.Expired(now) && canRefresh:
					want = domain.StateExpired
				case tok.AccessExpiry.Expired(now):
					want = domain.StateReauthRequired
				case tok.AccessExpiry.Within(now, m):
					want = domain.StateExpiring
				default:
					want = domain.StateValid
				}
				if got := tok.RefreshView(m).State(now); got != want {
					t.Errorf("access %v refresh %v (has %v): State = %q, want %q", accessOff, refreshOff, hasRefresh, got, want)
				}
			}
		}
	}
}

// TestReportedExpiry is the specification of the expiry handed out with a
// served access token.
func TestReportedExpiry(t *testing.T) {
	t.Parallel()
	access := now.Add(time.Hour)
	tests := []struct {
		name string
		v    domain.RefreshView
		want domain.Expiry
	}{
		{"keeps its token", domain.RefreshView{AccessExpiry: domain.At(access), Margin: margin, Lookahead: time.Minute}, domain.At(access)},
		{"never expires", domain.RefreshView{AccessExpiry: domain.Never(), Margin: margin, RevokesPreviousAccessToken: true}, domain.Never()},
		{"revokes: horizon start", domain.RefreshView{AccessExpiry: domain.At(access), Margin: margin, RevokesPreviousAccessToken: true}, domain.At(access.Add(-margin))},
		{"revokes: lookahead ignored", domain.RefreshView{AccessExpiry: domain.At(access), Margin: margin, Lookahead: time.Minute, RevokesPreviousAccessToken: true}, domain.At(access.Add(-margin))},
		{"revokes: negative margin", domain.RefreshView{AccessExpiry: domain.At(access), Margin: -time.Minute, RevokesPreviousAccessToken: true}, domain.At(access)},
		{"revokes: back-off outlasts the horizon start", domain.RefreshView{AccessExpiry: domain.At(access), Margin: margin, RevokesPreviousAccessToken: true,
			Refresh: domain.RefreshState{NextAttemptAt: access.Add(-time.Minute)}}, domain.At(access.Add(-time.Minute))},
		{"revokes: back-off before the horizon start", domain.RefreshView{AccessExpiry: domain.At(access), Margin: margin, RevokesPreviousAccessToken: true,
			Refresh: domain.RefreshState{NextAttemptAt: now}}, domain.At(access.Add(-margin))},
		{"revokes: back-off past the expiry", domain.RefreshView{AccessExpiry: domain.At(access), Margin: margin, RevokesPreviousAccessToken: true,
			Refresh: domain.RefreshState{NextAttemptAt: access.Add(time.Hour)}}, domain.At(access)},
	}
	for _, tc := range tests {
		if got := tc.v.ReportedExpiry(); !got.Equal(tc.want) {
			t.Errorf("%s: ReportedExpiry = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNoRefreshBeforeReportedExpiry ties ReportedExpiry to NextRefreshStep
// for a provider that revokes the previous access token: whenever a token
// is served, neither the read path's view nor the worker's (with its
// lookahead) says StepRefresh at any instant before the expiry reported
// with it; and at that instant one of them does (it is not reported early).
func TestNoRefreshBeforeReportedExpiry(t *testing.T) {
	t.Parallel()
	const step = 30 * time.Second
	for _, backoff := range []time.Duration{0, -time.Minute, 5 * time.Minute, 50 * time.Minute, 2 * time.Hour} {
		for _, life := range []time.Duration{time.Minute, 10 * time.Minute, 20 * time.Minute, time.Hour} {
			read := domain.RefreshView{
				AccessExpiry: domain.At(now.Add(life)), RefreshExpiry: domain.Never(), HasRefreshToken: true,
				Refreshable: true, Margin: margin, RevokesPreviousAccessToken: true,
			}
			if backoff != 0 {
				read.Refresh = domain.RefreshState{NextAttemptAt: now.Add(backoff), LastError: domain.CodeProviderUnavailable}
			}
			worker := read
			worker.Lookahead = 2 * time.Minute
			if domain.NextRefreshStep(read, now) != domain.StepServe {
				continue
			}
			reported, _ := read.ReportedExpiry().Time()
			for at := now; at.Before(reported); at = at.Add(step) {
				for _, v := range []domain.RefreshView{read, worker} {
					if domain.NextRefreshStep(v, at) == domain.StepRefresh {
						t.Errorf("life %v, back-off %v: refresh at %v, before the reported expiry %v",
							life, backoff, at.Sub(now), reported.Sub(now))
					}
				}
			}
			if domain.NextRefreshStep(worker, reported) != domain.StepRefresh && reported.Before(now.Add(life)) {
				t.Errorf("life %v, back-off %v: the reported expiry %v is early: no refresh then", life, backoff, reported.Sub(now))
			}
		}
	}
}

// TestServableViewIsTheRowsView: the servable part of a row gives the
// refresh rule the very view the whole row gives, but for the fields the
// rule does not read (RefreshState.LastError beyond "outcome unknown",
// AmbiguousRetries), which it leaves out.
func TestServableViewIsTheRowsView(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, st := range []domain.RefreshState{
		{},
		{LeaseOwner: "i/1", LeaseUntil: now.Add(time.Minute)},
		{ReauthRequired: true, LastError: domain.CodeGrantRevoked},
		{LastError: domain.CodeProviderOutcomeUnknown, NextAttemptAt: now, AmbiguousRetries: 3},
		{LastError: domain.CodeProviderUnavailable, NextAttemptAt: now.Add(time.Second)},
	} {
		for _, refresh := range [][]byte{nil, []byte("r")} {
			row := domain.SealedAuthTokens{User: "u", Provider: "p", KeyID: "k", AccessToken: []byte("a"), RefreshToken: refresh,
				AccessExpiry: domain.At(now.Add(time.Hour)), RefreshExpiry: domain.At(now.Add(48 * time.Hour)),
				AccessObtainedAt: now.Add(-time.Hour), Refresh: st, Version: 7}
			s := row.Servable()
			if s.User != row.User || s.Provider != row.Provider || s.KeyID != row.KeyID || string(s.AccessToken) != "a" ||
				s.Version != 7 || !s.AccessObtainedAt.Equal(row.AccessObtainedAt) {
				t.Fatalf("Servable() = %+v of %+v", s, row)
			}
			for _, refreshable := range []bool{false, true} {
				want := row.RefreshView(time.Minute, refreshable)
				want.Refresh.LastError, want.Refresh.AmbiguousRetries = "", 0
				if got := s.RefreshView(time.Minute, refreshable); got != want {
					t.Errorf("state %+v, refresh token %v: view %+v, the row's %+v", st, refresh != nil, got, want)
				}
			}
		}
	}
}
