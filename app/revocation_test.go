package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// errUnknownOutcome is the error of a refresh whose request was sent and whose
// answer was lost.
var errUnknownOutcome = fmt.Errorf("%w: %w: HTTP 502", domain.ErrProviderUnavailable, domain.ErrProviderOutcomeUnknown)

// For a provider that revokes the previous access token, a token still
// valid is not handed out while another instance's refresh holds the lease.
func TestRevokingProviderWaitsForALiveLease(t *testing.T) {
	t.Parallel()
	for _, revokes := range []bool{false, true} {
		t.Run(fmt.Sprint("revokes=", revokes), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, app.Config{Refresh: app.RefreshConfig{WaitTimeout: 50 * time.Millisecond}})
			f.provider.revokes = revokes
			f.put("alice", gitlab, time.Minute, "r")
			f.setRefresh("alice", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(time.Hour)})
			got, err := f.get("alice", gitlab)
			if revokes {
				wantErr(t, err, domain.ErrUnavailable)
			} else if err != nil || got != "access-alice" {
				t.Fatalf("GetAccessToken = %q, %v; want the stored token", got, err)
			}
			f.wantCalls(0)
		})
	}
}

// After a refresh of unknown outcome, a provider that revokes the previous
// access token may have killed the stored one: it is not handed out during
// the back-off (503 with Retry-After), and the next refresh sends the same
// refresh token again, counted as an ambiguous retry.
func TestRevokingProviderUnknownOutcome(t *testing.T) {
	t.Parallel()
	for _, revokes := range []bool{false, true} {
		t.Run(fmt.Sprint("revokes=", revokes), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, app.Config{Refresh: app.RefreshConfig{RetryAfter: time.Hour}})
			f.provider.revokes = revokes
			f.provider.setAnswer(failing(errUnknownOutcome))
			f.put("alice", gitlab, time.Minute, "r")
			for i := range 2 { // the failed refresh, then a read during the back-off
				got, err := f.get("alice", gitlab)
				if !revokes {
					if err != nil || got != "access-alice" {
						t.Fatalf("read %d = %q, %v; want the stored token", i, got, err)
					}
					continue
				}
				var retry *domain.RetryAtError
				if !errors.As(err, &retry) || !errors.Is(err, domain.ErrUnavailable) {
					t.Fatalf("read %d = %q, %v; want unavailable with a Retry-After", i, got, err)
				}
			}
			f.wantCalls(1)
			row := f.row("alice", gitlab)
			if row.Refresh.LastError != domain.CodeProviderOutcomeUnknown || row.Refresh.AmbiguousRetries != 0 {
				t.Fatalf("refresh state %+v, want provider_outcome_unknown", row.Refresh)
			}
			// The back-off ends: the same refresh token is sent again.
			f.provider.setAnswer(rotating)
			f.setRefresh("alice", gitlab, domain.RefreshState{LastError: domain.CodeProviderOutcomeUnknown, NextAttemptAt: time.Now().Add(-time.Second)})
			if got, err := f.get("alice", gitlab); err != nil || got != "access-2" {
				t.Fatalf("after the back-off: %q, %v; want the new token", got, err)
			}
			if calls := f.provider.calls(); len(calls) != 2 || calls[0] != "r" || calls[1] != "r" {
				t.Errorf("refresh tokens presented %q, want the same one twice (the ambiguous retry)", calls)
			}
			list, _ := f.svc.ListProviders(context.Background(), "alice")
			if list[0].AmbiguousRetries != 1 || list[0].LastError != "" {
				t.Errorf("listing %+v, want 1 ambiguous retry and no error", list[0])
			}
		})
	}
}

// The expiry handed out with a token of a provider that revokes is the
// start of its refresh horizon; the worker's lookahead never claims it
// before then.
func TestRevokingProviderReportedExpiryAndWorker(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.provider.revokes = true
	life := domain.DefaultRefreshMargin + 5*time.Minute
	f.put("alice", gitlab, life, "r")
	stored, _ := f.row("alice", gitlab).AccessExpiry.Time()
	tok, err := f.svc.GetAccessToken(context.Background(), "alice", gitlab)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tok.Expiry.Time(); !got.Equal(stored.Add(-domain.DefaultRefreshMargin)) {
		t.Errorf("reported expiry %v, want the access expiry %v minus the margin", got, stored)
	}
	// A lookahead that reaches the token's margin does not pull its refresh
	// before the expiry just reported.
	if n, err := f.worker(app.WorkerConfig{Lookahead: 10 * time.Minute}).RunOnce(context.Background()); err != nil || n != 0 {
		t.Fatalf("RunOnce = %d, %v; want nothing claimed", n, err)
	}
	f.wantCalls(0)
	// After a refresh the new token comes with its own reported expiry.
	f.put("bob", gitlab, time.Minute, "r")
	tok, err = f.svc.GetAccessToken(context.Background(), "bob", gitlab)
	if err != nil {
		t.Fatal(err)
	}
	newExp, _ := f.row("bob", gitlab).AccessExpiry.Time()
	if got, _ := tok.Expiry.Time(); !got.Equal(newExp.Add(-domain.DefaultRefreshMargin)) {
		t.Errorf("refreshed token's reported expiry %v, want %v minus the margin", got, newExp)
	}
}

// The worker retries a refresh of unknown outcome for a provider that
// revokes once the back-off ends, whatever the expiry: the stored access
// token may be dead.
func TestWorkerRetriesUnknownOutcome(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.provider.revokes = true
	f.put("alice", gitlab, time.Hour, "r")
	f.put("waiting", gitlab, time.Hour, "r")
	f.setRefresh("alice", gitlab, domain.RefreshState{LastError: domain.CodeProviderOutcomeUnknown, NextAttemptAt: time.Now().Add(-time.Second)})
	f.setRefresh("waiting", gitlab, domain.RefreshState{LastError: domain.CodeProviderOutcomeUnknown, NextAttemptAt: time.Now().Add(time.Hour)})
	if n, err := f.worker(app.WorkerConfig{}).RunOnce(context.Background()); err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v; want alice refreshed", n, err)
	}
	if row := f.row("alice", gitlab); row.Refresh.AmbiguousRetries != 1 || row.Refresh.LastError != "" {
		t.Errorf("alice after the scan: %+v, want refreshed with 1 ambiguous retry", row.Refresh)
	}
	f.wantCalls(1)
}

// flakyRepo fails UpdateAuthTokens calls that store new tokens, as a
// database whose connections are killed would: fails times, each after
// applying the write when applied (domain.ErrOutcomeUnknown) or before it.
type flakyRepo struct {
	ports.TokenRepository
	mu      sync.Mutex
	fails   int
	applied bool
	tries   int
}

func (r *flakyRepo) UpdateAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider,
	fn func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error),
) (domain.SealedAuthTokens, error) {
	storing := false
	row, err := r.TokenRepository.UpdateAuthTokens(ctx, user, provider, func(cur domain.SealedAuthTokens, now time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
		next, events, err := fn(cur, now)
		storing = next != nil && cur.Refresh.LeaseOwner != "" && next.Refresh.LeaseOwner == "" && next.Refresh.LastError == ""
		if storing {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.tries++
			if r.fails > 0 && !r.applied {
				r.fails--
				return nil, nil, fmt.Errorf("%w: FATAL: terminating connection due to administrator command (SQLSTATE 57P01)", domain.ErrStorageUnavailable)
			}
		}
		return next, events, err
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && storing && r.applied && r.fails > 0 {
		r.fails--
		return domain.SealedAuthTokens{}, fmt.Errorf("%w: %w: connection lost during COMMIT", domain.ErrStorageUnavailable, domain.ErrOutcomeUnknown)
	}
	return row, err
}

// The provider's answer is the only copy of a rotated refresh token: a
// store that fails because the database is unavailable is retried, and a
// store that committed although its answer was lost is recognised.
func TestRefreshStoreRetriedWhileDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprint("applied=", applied), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, app.Config{})
			repo := &flakyRepo{TokenRepository: f.repo, fails: 3, applied: applied}
			svc := app.NewTokenService(app.Config{Providers: declared, Refresh: app.RefreshConfig{Lease: 10 * time.Second, Instance: "unit"}},
				nil, newKeyring(t), repo, f.provider, nil)
			f.svc = svc
			f.put("alice", gitlab, -time.Minute, "r")
			if got, err := f.get("alice", gitlab); err != nil || got != "access-1" {
				t.Fatalf("GetAccessToken = %q, %v; want the new token", got, err)
			}
			f.wantCalls(1)
			row := f.row("alice", gitlab)
			if row.Refresh.ReauthRequired || row.Refresh.LeaseOwner != "" {
				t.Errorf("refresh state %+v, want stored and released", row.Refresh)
			}
			if got, err := f.get("alice", gitlab); err != nil || got != "access-1" {
				t.Fatalf("second read = %q, %v; want the stored new token", got, err)
			}
			if want := 4; !applied && repo.tries != want {
				t.Errorf("%d store tries, want %d", repo.tries, want)
			}
		})
	}
}
