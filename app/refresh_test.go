package app_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

func TestRefreshRotates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", gitlab, -time.Minute, "refresh-0")
	got, err := f.get("alice", gitlab)
	if err != nil || got != "access-1" {
		t.Fatalf("GetAccessToken = %q, %v; want access-1", got, err)
	}
	row := f.row("alice", gitlab)
	if row.Refresh != (domain.RefreshState{}) {
		t.Errorf("refresh state after success %+v, want clean (lease released)", row.Refresh)
	}
	if exp, _ := row.AccessExpiry.Time(); exp.Before(time.Now().Add(50 * time.Minute)) {
		t.Errorf("stored expiry %v, want the provider's hour", row.AccessExpiry)
	}
	// The rotated refresh token is the one presented next time.
	f.setRefresh("alice", gitlab, domain.RefreshState{})
	expire(t, f, "alice")
	if got, err := f.get("alice", gitlab); err != nil || got != "access-2" {
		t.Fatalf("second refresh = %q, %v", got, err)
	}
	if calls := f.provider.calls(); len(calls) != 2 || calls[0] != "refresh-0" || calls[1] != "refresh-1" {
		t.Errorf("refresh tokens presented %v, want [refresh-0 refresh-1]", calls)
	}
	// Fresh now: served without a provider call.
	if got, err := f.get("alice", gitlab); err != nil || got != "access-2" {
		t.Fatalf("read after refresh = %q, %v", got, err)
	}
	f.wantCalls(2)
}

// expire moves alice's stored access expiry an hour into the past.
func expire(t *testing.T, f *fixture, user domain.UserID) {
	t.Helper()
	if _, err := f.repo.UpdateAuthTokens(context.Background(), user, gitlab,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			cur.AccessExpiry = domain.At(time.Now().Add(-time.Hour))
			return &cur, nil, nil
		}); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshInsideMarginRefreshes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{RefreshMargin: time.Hour})
	f.put("alice", gitlab, 30*time.Minute, "refresh-0")
	if got, err := f.get("alice", gitlab); err != nil || got != "access-1" {
		t.Fatalf("GetAccessToken = %q, %v; want a refresh inside the margin", got, err)
	}
}

func TestRefreshNonRotatingKeepsRefreshToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.provider.setAnswer(func(int) (domain.RefreshedTokens, error) {
		return domain.RefreshedTokens{AccessToken: domain.NewSecret("new-access")}, nil // no expires_in, no new refresh token
	})
	f.put("alice", gitlab, -time.Minute, "the-refresh")
	if got, err := f.get("alice", gitlab); err != nil || got != "new-access" {
		t.Fatalf("GetAccessToken = %q, %v", got, err)
	}
	row := f.row("alice", gitlab)
	// No expires_in from a provider whose tokens expired: assume twice the margin.
	exp, ok := row.AccessExpiry.Time()
	if !ok || exp.After(time.Now().Add(2*domain.DefaultRefreshMargin)) || exp.Before(time.Now().Add(domain.DefaultRefreshMargin)) {
		t.Errorf("stored expiry %v, want about twice the margin from now", row.AccessExpiry)
	}
	expire(t, f, "alice")
	if _, err := f.get("alice", gitlab); err != nil {
		t.Fatal(err)
	}
	if calls := f.provider.calls(); len(calls) != 2 || calls[1] != "the-refresh" {
		t.Errorf("presented %v, want the kept refresh token again", calls)
	}
}

func TestRefreshInvalidGrantRequiresReauth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.provider.setAnswer(failing(domain.ErrGrantRevoked))
	f.put("alice", gitlab, -time.Minute, "r")
	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)
	row := f.row("alice", gitlab)
	if !row.Refresh.ReauthRequired || row.Refresh.LastError != domain.CodeGrantRevoked || row.Refresh.LeaseOwner != "" {
		t.Errorf("refresh state %+v, want reauth invalid_grant without lease", row.Refresh)
	}
	// No second use of a revoked grant.
	_, err = f.get("alice", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)
	f.wantCalls(1)
	list, _ := f.svc.ListProviders(context.Background(), "alice")
	if len(list) != 1 || list[0].State != domain.StateReauthRequired || list[0].LastError != domain.CodeGrantRevoked {
		t.Errorf("listing %+v", list)
	}
	// New tokens from the user clear it.
	f.put("alice", gitlab, time.Hour, "r2")
	if _, err := f.get("alice", gitlab); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
}

func TestRefreshNoRefreshTokenRequiresReauth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", gitlab, -time.Minute, "")
	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)
	f.put("bob", gitlab, time.Minute, "") // inside the margin: still served
	if got, err := f.get("bob", gitlab); err != nil || got != "access-bob" {
		t.Fatalf("GetAccessToken = %q, %v", got, err)
	}
	f.wantCalls(0)
}

func TestRefreshTransientBacksOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{Refresh: app.RefreshConfig{RetryAfter: time.Hour}})
	f.provider.setAnswer(failing(domain.ErrProviderUnavailable))
	f.put("alice", gitlab, -time.Minute, "r")
	f.put("bob", gitlab, time.Minute, "r")
	before := time.Now()

	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrUnavailable)
	var retry *domain.RetryAtError
	if !errors.As(err, &retry) || retry.At.Before(before.Add(time.Hour)) || retry.At.After(time.Now().Add(time.Hour)) {
		t.Fatalf("error %v, want a RetryAtError an hour ahead", err)
	}
	row := f.row("alice", gitlab)
	if row.Refresh.ReauthRequired || row.Refresh.LastError != domain.CodeProviderUnavailable || !row.Refresh.NextAttemptAt.Equal(retry.At) {
		t.Errorf("refresh state %+v, want back-off until %v", row.Refresh, retry.At)
	}
	// In back-off: the same answer without calling the provider.
	_, err = f.get("alice", gitlab)
	if !errors.As(err, &retry) || !retry.At.Equal(row.Refresh.NextAttemptAt) {
		t.Fatalf("second read: %v, want the same Retry-After", err)
	}
	// A token still valid is served despite the failure.
	if got, err := f.get("bob", gitlab); err != nil || got != "access-bob" {
		t.Fatalf("GetAccessToken(inside margin) = %q, %v", got, err)
	}
	f.wantCalls(2)
	list, _ := f.svc.ListProviders(context.Background(), "bob")
	if list[0].State != domain.StateExpiring || list[0].LastError != domain.CodeProviderUnavailable {
		t.Errorf("listing %+v", list[0])
	}
}

func TestRefreshRejectedBacksOffLonger(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{Refresh: app.RefreshConfig{RetryAfter: time.Second}})
	f.provider.setAnswer(failing(domain.ErrProviderRejected))
	f.put("alice", gitlab, -time.Minute, "r")
	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrUnavailable)
	row := f.row("alice", gitlab)
	if row.Refresh.ReauthRequired || row.Refresh.LastError != domain.CodeProviderRejected ||
		row.Refresh.NextAttemptAt.Before(time.Now().Add(4*time.Minute)) {
		t.Errorf("refresh state %+v, want a five-minute back-off, not reauth", row.Refresh)
	}
}

func TestRefreshUndecryptableBacksOff(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", gitlab, -time.Minute, "r")
	f.put("bob", gitlab, -time.Minute, "r")
	f.misplaceRefreshToken("alice", "bob")
	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrDecrypt)
	if row := f.row("alice", gitlab); row.Refresh.LastError != domain.CodeRefreshUndecryptable || row.Refresh.LeaseOwner != "" {
		t.Errorf("refresh state %+v", row.Refresh)
	}
	f.wantCalls(0)
}

func TestRefreshWaitsForAnotherInstance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", gitlab, -time.Minute, "r")
	f.setRefresh("alice", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(time.Hour)})
	done := make(chan error, 1)
	go func() {
		got, err := f.get("alice", gitlab)
		if err == nil && got != "from-the-user" {
			err = errors.New("served " + got)
		}
		done <- err
	}()
	// The lease ends with new tokens (here: the user's, which end it too).
	if _, err := f.svc.PutAuthTokens(context.Background(), domain.AuthTokens{
		User: "alice", Provider: gitlab, AccessToken: domain.NewSecret("from-the-user"),
		AccessExpiry: domain.At(time.Now().Add(time.Hour)),
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.wantCalls(0)
}

func TestRefreshWaitGivesUp(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{Refresh: app.RefreshConfig{WaitTimeout: 50 * time.Millisecond}})
	f.put("alice", gitlab, -time.Minute, "r")
	f.setRefresh("alice", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(time.Hour)})
	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrUnavailable)
	// A live lease on a token still valid: served at once.
	f.put("bob", gitlab, time.Minute, "r")
	f.setRefresh("bob", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(time.Hour)})
	if got, err := f.get("bob", gitlab); err != nil || got != "access-bob" {
		t.Fatalf("GetAccessToken = %q, %v", got, err)
	}
}

func TestRefreshLapsedLeaseIsInterrupted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", gitlab, time.Hour, "r") // even a fresh token: its refresh token may be burnt
	f.setRefresh("alice", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(-time.Second)})
	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)
	row := f.row("alice", gitlab)
	if !row.Refresh.ReauthRequired || row.Refresh.LastError != domain.CodeRefreshInterrupted || row.Refresh.LeaseOwner != "" {
		t.Errorf("refresh state %+v, want reauth refresh_interrupted", row.Refresh)
	}
	f.wantCalls(0)
}

func TestRefreshDroppedWhenTokensReplaced(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	release := f.provider.hold()
	f.put("alice", gitlab, -time.Minute, "r")
	type result struct {
		token string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := f.get("alice", gitlab)
		done <- result{tok, err}
	}()
	<-f.provider.entered
	// The user reconnects while the provider answers.
	if _, err := f.svc.PutAuthTokens(context.Background(), domain.AuthTokens{
		User: "alice", Provider: gitlab, AccessToken: domain.NewSecret("from-the-user"),
		AccessExpiry: domain.At(time.Now().Add(time.Hour)), RefreshToken: domain.NewSecret("user-refresh"),
	}); err != nil {
		t.Fatal(err)
	}
	release()
	r := <-done
	if r.err != nil || r.token != "from-the-user" {
		t.Fatalf("GetAccessToken = %q, %v; want the user's new token", r.token, r.err)
	}
	if got, err := f.get("alice", gitlab); err != nil || got != "from-the-user" {
		t.Fatalf("stored token %q, %v; the refreshed one must be dropped", got, err)
	}
}

func TestRefreshSingleflight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	release := f.provider.hold()
	f.put("alice", gitlab, -time.Minute, "r")
	const readers = 16
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tokens[i], errs[i] = f.get("alice", gitlab)
		}()
	}
	<-f.provider.entered
	release()
	wg.Wait()
	for i := range readers {
		if errs[i] != nil || tokens[i] != "access-1" {
			t.Errorf("reader %d: %q, %v; want access-1", i, tokens[i], errs[i])
		}
	}
	f.wantCalls(1)
}

func TestDrainWaitsForRefreshesInFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	release := f.provider.hold()
	f.put("alice", gitlab, -time.Minute, "r")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.GetAccessToken(ctx, "alice", gitlab)
		done <- err
	}()
	<-f.provider.entered
	cancel() // the caller leaves; its refresh carries on
	wantErr(t, <-done, context.Canceled)

	short, stop := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer stop()
	if err := f.svc.Refreshes().Drain(short); err == nil {
		t.Fatal("Drain returned while a refresh was in flight")
	}
	release()
	if err := f.svc.Refreshes().Drain(context.Background()); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if got, err := f.get("alice", gitlab); err != nil || got != "access-1" {
		t.Fatalf("after drain: %q, %v; want the refreshed token stored", got, err)
	}
	f.wantCalls(1)
}
