package api_test

// The Go client against the real server: every method, its typed errors
// as the server answers them, and the document it is generated from, as
// served.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/client"
)

// TestClientEveryMethod: store, read, list and delete tokens and an offline
// token through the client.
func TestClientEveryMethod(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	c := inst.api(callerAll)
	ctx := context.Background()
	user, access, refresh, offline := uniq("client-user-"), uniq("glpat-"), uniq("glrt-"), uniq("offline-")

	before := time.Now()
	st, err := c.PutTokens(ctx, user, "gitlab", client.PutTokensRequest{AccessToken: access, RefreshToken: &refresh, ExpiresIn: ptr(int64(7200))})
	if err != nil {
		t.Fatal(err)
	}
	if st.Provider != "gitlab" || st.State != client.StateValid || !st.HasRefreshToken || st.AccessTokenExpiresAt == nil ||
		st.AccessTokenExpiresAt.Before(before.Add(7199*time.Second)) || st.RefreshTokenExpiresAt != nil || st.RefreshError != nil {
		t.Errorf("PutTokens = %+v", st)
	}
	tok, err := c.GetAccessToken(ctx, user, "gitlab")
	if err != nil || tok.AccessToken != access || tok.User != user || tok.Provider != "gitlab" ||
		tok.AccessTokenExpiresAt == nil || !tok.AccessTokenExpiresAt.Equal(*st.AccessTokenExpiresAt) {
		t.Errorf("GetAccessToken = %+v, %v; want the stored token and expiry", tok, err)
	}
	list, err := c.ListProviders(ctx, user)
	if err != nil || list.User != user || len(list.Providers) != 1 || list.Providers[0].Provider != "gitlab" || list.Providers[0].State != client.StateValid {
		t.Errorf("ListProviders = %+v, %v", list, err)
	}
	stored, err := c.PutOfflineToken(ctx, user, offline)
	if err != nil || stored.User != user || stored.CreatedAt.IsZero() {
		t.Errorf("PutOfflineToken = %+v, %v", stored, err)
	}
	off, err := c.GetOfflineToken(ctx, user)
	if err != nil || off.OfflineToken != offline || !off.CreatedAt.Equal(stored.CreatedAt) {
		t.Errorf("GetOfflineToken = %+v, %v", off, err)
	}
	if err := c.DeleteTokens(ctx, user, "gitlab"); err != nil {
		t.Errorf("DeleteTokens: %v", err)
	}
	if err := c.DeleteOfflineToken(ctx, user); err != nil {
		t.Errorf("DeleteOfflineToken: %v", err)
	}
	if _, err := c.GetAccessToken(ctx, user, "gitlab"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("GetAccessToken after delete: %v, want ErrNotFound", err)
	}
	if _, err := c.GetOfflineToken(ctx, user); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("GetOfflineToken after delete: %v, want ErrNotFound", err)
	}
	inst.noSecretsInLogs(access, refresh, offline)
}

// TestClientTypedErrors: the server's refusals reach the caller as the
// client's sentinels, with the problem's field and request id.
func TestClientTypedErrors(t *testing.T) {
	t.Parallel()
	inst := startScoped(t)
	ctx := client.WithRequestID(context.Background(), "client-e2e-1")
	expiredUser := uniq("expired-")
	if _, err := inst.api(callerAll).PutTokens(ctx, expiredUser, "github",
		client.PutTokensRequest{AccessToken: uniq("gho-"), AccessTokenExpiresAt: ptr(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		call     func() error
		sentinel error
		status   int
		field    string
	}{
		{"nothing stored", func() error { _, err := inst.api(callerAll).GetAccessToken(ctx, "nobody", "gitlab"); return err },
			client.ErrNotFound, 404, ""},
		{"delete of nothing", func() error { return inst.api(callerAll).DeleteOfflineToken(ctx, "nobody") },
			client.ErrNotFound, 404, ""},
		{"wrong credential", func() error {
			_, err := inst.api("tsc_"+strings.Repeat("A", 43)).ListProviders(ctx, "alice")
			return err
		}, client.ErrUnauthenticated, 401, ""},
		{"no permission", func() error {
			_, err := inst.api(callerWithout(httpapi.PermOfflineRead)).GetOfflineToken(ctx, "alice")
			return err
		}, client.ErrForbidden, 403, ""},
		{"provider out of scope", func() error {
			_, err := inst.api(callerGitLab).GetAccessToken(ctx, "alice", "github")
			return err
		}, client.ErrOutOfScope, 403, "provider"},
		{"user out of scope", func() error {
			_, err := inst.api(callerTenantA).PutOfflineToken(ctx, "tenant-b/alice", "off")
			return err
		}, client.ErrOutOfScope, 403, "user"},
		{"undeclared provider", func() error {
			_, err := inst.api(callerAll).PutTokens(ctx, "alice", "nope", client.PutTokensRequest{AccessToken: "x"})
			return err
		}, client.ErrInvalidRequest, 400, "provider"},
		{"control character in a token", func() error {
			_, err := inst.api(callerAll).PutTokens(ctx, "alice", "gitlab", client.PutTokensRequest{AccessToken: "a\x00b"})
			return err
		}, client.ErrInvalidRequest, 400, "access_token"},
		{"expired, no refresh configured", func() error {
			_, err := inst.api(callerAll).GetAccessToken(ctx, expiredUser, "github")
			return err
		}, client.ErrTokenExpired, 409, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *client.Error
			if !errors.Is(err, tc.sentinel) || !errors.As(err, &e) {
				t.Fatalf("err = %v, want %v", err, tc.sentinel)
			}
			if e.StatusCode != tc.status || e.Field != tc.field || e.RequestID != "client-e2e-1" || e.Attempts != 1 || e.Detail == "" {
				t.Errorf("error %+v; want status %d, field %q, request id client-e2e-1, one attempt, a detail", *e, tc.status, tc.field)
			}
		})
	}
}

// TestOpenAPIDocumentServed: the running server serves the document the
// client is generated from, to anyone.
func TestOpenAPIDocumentServed(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	r := inst.do("GET", "/openapi.yaml", "", nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
	if string(r.body) != string(httpapi.OpenAPI) {
		t.Errorf("served document (%d bytes) is not the embedded one (%d bytes)", len(r.body), len(httpapi.OpenAPI))
	}
}
