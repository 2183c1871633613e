package app_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

// TestPutRefusesUndeclaredProvider: tokens are stored only for a declared
// provider. Before, with no providers configured, a PUT for "foo" was
// stored, so a typo kept tokens nobody would ever refresh.
func TestPutRefusesUndeclaredProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tokens := func(user domain.UserID, p domain.Provider, access string) domain.AuthTokens {
		return domain.AuthTokens{User: user, Provider: p, AccessToken: domain.NewSecret(access), AccessExpiry: domain.Never()}
	}
	for _, tc := range []struct {
		name     string
		declared []domain.Provider
		put      domain.AuthTokens
		field    string
		want     []string
	}{
		{"none declared", nil, tokens("alice", "foo", "a"), "provider",
			[]string{`"foo" is not declared, and no provider is`, "providers setting", "refresh: false"}},
		{"empty list", []domain.Provider{}, tokens("alice", "github", "a"), "provider",
			[]string{`"github" is not declared, and no provider is`}},
		{"typo", []domain.Provider{"gitlab", "github"}, tokens("alice", "gitlub", "a"), "provider",
			[]string{`"gitlub" is not a declared provider (declared: gitlab, github)`, "check the name"}},
		{"undeclared before bad tokens", []domain.Provider{"gitlab"}, tokens("alice", "foo", ""), "provider", []string{`"foo"`}},
		{"bad user before undeclared provider", []domain.Provider{"gitlab"}, tokens("", "foo", "a"), "user", nil},
		{"invalid name is invalid, not undeclared", []domain.Provider{"gitlab"}, tokens("alice", "Git Lab", "a"), "provider",
			[]string{"not a provider name"}},
		{"bad tokens of a declared provider", []domain.Provider{"gitlab"}, tokens("alice", "gitlab", ""), "access_token", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := memrepo.New()
			svc := app.NewTokenService(app.Config{Providers: tc.declared}, nil, newKeyring(t), repo, app.NoRefresher{}, nil)
			_, err := svc.PutAuthTokens(ctx, tc.put)
			var ve *domain.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("PutAuthTokens error = %v; want a validation error for field %s", err, tc.field)
			}
			for _, w := range tc.want {
				if !strings.Contains(ve.Reason, w) {
					t.Errorf("reason %q does not say %q", ve.Reason, w)
				}
			}
			if list, err := svc.ListProviders(ctx, tc.put.User); err == nil && len(list) != 0 {
				t.Errorf("a refused PUT stored %+v", list)
			}
		})
	}
}

// TestUndeclaredProviderRowsStayReachable: tokens stored while a provider
// was declared stay readable, listable and deletable after it leaves the
// configuration (they are the user's; only new ones are refused).
func TestUndeclaredProviderRowsStayReachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo, ring := memrepo.New(), newKeyring(t)
	before := app.NewTokenService(app.Config{Providers: []domain.Provider{"gitlab", "corp"}}, nil, ring, repo, app.NoRefresher{}, nil)
	for user, expiry := range map[domain.UserID]domain.Expiry{"alice": domain.Never(), "bob": domain.At(time.Now().Add(-time.Minute))} {
		if _, err := before.PutAuthTokens(ctx, domain.AuthTokens{User: user, Provider: "corp", AccessToken: domain.NewSecret("a-" + string(user)),
			AccessExpiry: expiry}); err != nil {
			t.Fatal(err)
		}
	}
	after := app.NewTokenService(app.Config{Providers: []domain.Provider{"gitlab"}}, nil, ring, repo, app.NoRefresher{}, nil)

	if got, err := after.GetAccessToken(ctx, "alice", "corp"); err != nil || got.Token.Reveal() != "a-alice" {
		t.Errorf("GetAccessToken(no longer declared) = %v, %v; want the stored token", got.Token, err)
	}
	if _, err := after.GetAccessToken(ctx, "bob", "corp"); !errors.Is(err, domain.ErrTokenExpired) {
		t.Errorf("GetAccessToken(expired, no longer declared) = %v; want token expired (it is never refreshed)", err)
	}
	if list, err := after.ListProviders(ctx, "alice"); err != nil || len(list) != 1 || list[0].Provider != "corp" {
		t.Errorf("ListProviders = %+v, %v; want the corp row", list, err)
	}
	var ve *domain.ValidationError
	if _, err := after.PutAuthTokens(ctx, domain.AuthTokens{User: "alice", Provider: "corp", AccessToken: domain.NewSecret("new"),
		AccessExpiry: domain.Never()}); !errors.As(err, &ve) || ve.Field != "provider" {
		t.Errorf("PutAuthTokens(no longer declared) = %v; want refused", err)
	}
	if err := after.DeleteAuthTokens(ctx, "alice", "corp"); err != nil {
		t.Errorf("DeleteAuthTokens(no longer declared) = %v", err)
	}
	if _, err := after.GetAccessToken(ctx, "alice", "corp"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("after delete: %v; want not found", err)
	}
}
