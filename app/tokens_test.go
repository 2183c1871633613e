package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

func TestPutGetListDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	ctx := context.Background()

	st, err := f.svc.PutAuthTokens(ctx, domain.AuthTokens{
		User: "alice", Provider: gitlab, AccessToken: domain.NewSecret("a1"),
		AccessExpiry: domain.At(time.Now().Add(time.Hour)), RefreshToken: domain.NewSecret("r1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Provider != gitlab || st.State != domain.StateValid || !st.HasRefreshToken || st.UpdatedAt.IsZero() {
		t.Errorf("PutAuthTokens status = %+v", st)
	}
	f.put("alice", github, 0, "")
	if got, err := f.get("alice", gitlab); err != nil || got != "a1" {
		t.Fatalf("GetAccessToken = %q, %v; want a1", got, err)
	}
	if got, err := f.get("alice", github); err != nil || got != "access-alice" {
		t.Fatalf("GetAccessToken(never expires) = %q, %v", got, err)
	}
	// Stored rows hold ciphertext, never the token.
	if row := f.row("alice", gitlab); string(row.AccessToken) == "a1" || string(row.RefreshToken) == "r1" {
		t.Error("the repository holds plaintext")
	}

	list, err := f.svc.ListProviders(ctx, "alice")
	if err != nil || len(list) != 2 || list[0].Provider != github || list[1].Provider != gitlab {
		t.Fatalf("ListProviders = %+v, %v", list, err)
	}
	if list[0].State != domain.StateValid || list[0].HasRefreshToken || list[1].State != domain.StateValid {
		t.Errorf("ListProviders = %+v", list)
	}

	if err := f.svc.DeleteAuthTokens(ctx, "alice", gitlab); err != nil {
		t.Fatal(err)
	}
	_, err = f.get("alice", gitlab)
	wantErr(t, err, domain.ErrNotFound)
	wantErr(t, f.svc.DeleteAuthTokens(ctx, "alice", gitlab), domain.ErrNotFound)
	f.wantCalls(0)
}

func TestPutValidates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	_, err := f.svc.PutAuthTokens(context.Background(), domain.AuthTokens{User: "alice", Provider: gitlab})
	wantErr(t, err, domain.ErrInvalid)
	_, err = f.svc.PutOfflineToken(context.Background(), domain.OfflineToken{User: "alice"})
	wantErr(t, err, domain.ErrInvalid)
}

func TestListStates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{ProviderMargins: map[domain.Provider]time.Duration{domain.ProviderKeycloak: time.Minute}})
	f.put("u", gitlab, 10*time.Minute, "r")                 // inside the default 15m margin
	f.put("u", domain.ProviderKeycloak, 10*time.Minute, "") // outside its own 1m margin
	f.put("u", github, -time.Minute, "")                    // expired, nothing to refresh with
	f.put("u", domain.ProviderBitbucket, -time.Minute, "r")
	f.setRefresh("u", domain.ProviderBitbucket, domain.RefreshState{ReauthRequired: true, LastError: domain.CodeGrantRevoked})
	list, err := f.svc.ListProviders(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	want := map[domain.Provider]domain.TokenState{
		gitlab: domain.StateExpiring, domain.ProviderKeycloak: domain.StateValid,
		github: domain.StateReauthRequired, domain.ProviderBitbucket: domain.StateReauthRequired,
	}
	for _, st := range list {
		if st.State != want[st.Provider] {
			t.Errorf("%s listed %q, want %q", st.Provider, st.State, want[st.Provider])
		}
	}
	if list[0].Provider != domain.ProviderBitbucket || list[0].LastError != domain.CodeGrantRevoked {
		t.Errorf("bitbucket entry %+v, want its last error", list[0])
	}
}

func TestOfflineToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	ctx := context.Background()
	_, err := f.svc.GetOfflineToken(ctx, "alice")
	wantErr(t, err, domain.ErrNotFound)
	stored, err := f.svc.PutOfflineToken(ctx, domain.OfflineToken{User: "alice", Token: domain.NewSecret("off-1")})
	if err != nil || stored.CreatedAt.IsZero() {
		t.Fatalf("PutOfflineToken = %+v, %v", stored, err)
	}
	if _, err := f.svc.PutOfflineToken(ctx, domain.OfflineToken{User: "alice", Token: domain.NewSecret("off-2")}); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.GetOfflineToken(ctx, "alice")
	if err != nil || got.Token.Reveal() != "off-2" || got.User != "alice" || !got.CreatedAt.Equal(stored.CreatedAt) {
		t.Fatalf("GetOfflineToken = %+v (%q), %v", got, got.Token.Reveal(), err)
	}
	if err := f.svc.DeleteOfflineToken(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, f.svc.DeleteOfflineToken(ctx, "alice"), domain.ErrNotFound)
}

// TestMovedCiphertextIsRefused: a value sealed for one row does not open
// for another (the binding of app.Seal), through the use cases.
func TestMovedCiphertextIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", github, 0, "")
	f.put("bob", github, 0, "")
	alice := f.row("alice", github)
	if _, err := f.repo.UpdateAuthTokens(context.Background(), "bob", github,
		func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			cur.AccessToken, cur.KeyID = alice.AccessToken, alice.KeyID
			return &cur, nil, nil
		}); err != nil {
		t.Fatal(err)
	}
	_, err := f.get("bob", github)
	wantErr(t, err, domain.ErrDecrypt)
}

// TestNoRefresher: with no provider configured for refresh, an expired
// token is reported expired, never returned, and one inside the margin is
// still served.
func TestNoRefresher(t *testing.T) {
	t.Parallel()
	svc := app.NewTokenService(app.Config{Providers: declared}, nil, newKeyring(t), memrepo.New(), app.NoRefresher{}, nil)
	ctx := context.Background()
	for user, access := range map[domain.UserID]time.Duration{"expired": -time.Minute, "expiring": time.Minute} {
		if _, err := svc.PutAuthTokens(ctx, domain.AuthTokens{
			User: user, Provider: gitlab, AccessToken: domain.NewSecret("a"),
			AccessExpiry: domain.At(time.Now().Add(access)), RefreshToken: domain.NewSecret("r"),
		}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := svc.GetAccessToken(ctx, "expired", gitlab)
	wantErr(t, err, domain.ErrTokenExpired)
	if tok, err := svc.GetAccessToken(ctx, "expiring", gitlab); err != nil || tok.Token.Reveal() != "a" {
		t.Fatalf("GetAccessToken(expiring) = %v, %v", tok, err)
	}
	if got := svc.Refreshes().Providers(); len(got) != 0 {
		t.Errorf("Providers = %v, want none", got)
	}
	var nr app.NoRefresher
	if _, err := nr.Refresh(ctx, gitlab, domain.NewSecret("r")); err == nil {
		t.Error("NoRefresher.Refresh succeeded")
	} else {
		wantErr(t, err, domain.ErrProviderNotConfigured)
	}
	if nr.Configured(gitlab) {
		t.Error("NoRefresher is configured")
	}
}

// TestUnrefreshableProvider: tokens of a provider the refresher does not
// know expire like those of an instance without a refresher.
func TestUnrefreshableProvider(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.put("alice", github, -time.Minute, "r")
	_, err := f.get("alice", github)
	wantErr(t, err, domain.ErrTokenExpired)
	f.wantCalls(0)
}
