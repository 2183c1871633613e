package refresh_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/domain"
)

// TestInvalidGrantRequiresReauth: invalid_grant marks the tokens for
// re-authorization (409, listed with refresh_error invalid_grant) and stops
// all provider calls until new tokens are stored; then refreshing resumes.
func TestInvalidGrantRequiresReauth(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2})
	a, b := c.instances[0], c.instances[1]
	const user = "revoked-user"
	g := c.fake.NewGrant()
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeInvalidGrant; b.echoSecrets = true })
	c.putGrant(t, user, g, 0)

	wantStatus(t, "GET with a revoked grant", a.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
	for _, in := range c.instances {
		st := in.status(t, user)
		if st.State != "reauth_required" || st.refreshError() != "invalid_grant" {
			t.Errorf("%s lists state %q refresh_error %q; want reauth_required / invalid_grant", in.name, st.State, st.refreshError())
		}
	}
	for range 3 {
		wantStatus(t, "later GET on B", b.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
		if _, err := a.apiGet(user); !errors.Is(err, domain.ErrReauthRequired) {
			t.Fatalf("Go API: %v; want ErrReauthRequired", err)
		}
	}
	c.expireIn(t, user, time.Hour) // even a "valid" expiry does not lift the mark
	wantStatus(t, "GET after the expiry moved", a.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
	if n := c.fake.Calls(g.id); n != 1 {
		t.Fatalf("the provider got %d calls for the revoked grant; want 1", n)
	}

	// The user reconnects: new tokens, and refreshing works again.
	g2 := c.fake.NewGrant()
	c.putGrant(t, user, g2, 0)
	st := b.status(t, user)
	if st.State == "reauth_required" || st.RefreshError != nil {
		t.Errorf("after PUT: state %q refresh_error %q; want a clean state", st.State, st.refreshError())
	}
	wantToken(t, "GET after reconnecting", b.get(t, user), c.fake.Access(g2.id))
	if n := c.fake.Calls(g2.id); n != 1 {
		t.Errorf("the new grant got %d calls; want 1", n)
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("the revoked grant got %d calls; want still 1", n)
	}
}

// TestTransientFailure: a transient failure the provider did not act on
// (429) while the old access token is still valid serves the old token (and
// backs off); once it has expired, 503. (A failure of unknown outcome is
// revocation_test.go's.)
func TestTransientFailure(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{}) // RetryAfter 1m: the back-off outlasts the test
	in := c.instances[0]
	const user = "flaky-user"
	g := c.fake.NewGrant()
	c.fake.Set(g.id, func(b *behavior) { b.mode = mode429 })
	c.putAged(t, user, g, 60) // inside the margin, not expired

	wantToken(t, "GET while the old token is valid", in.get(t, user), g.access)
	if n := c.fake.Calls(g.id); n != 1 {
		t.Fatalf("%d provider calls, want 1", n)
	}
	st := in.status(t, user)
	if st.State != "expiring" || st.refreshError() != "provider_unavailable" {
		t.Errorf("listing: state %q refresh_error %q; want expiring / provider_unavailable", st.State, st.refreshError())
	}
	wantToken(t, "GET during the back-off", in.get(t, user), g.access)
	if n := c.fake.Calls(g.id); n != 1 {
		t.Fatalf("%d provider calls during the back-off, want still 1", n)
	}

	c.expireNow(t, user)
	r := in.get(t, user)
	wantStatus(t, "GET once expired, during the back-off", r, http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	// The back-off is a minute: Retry-After says so rather than "retry now".
	if secs, err := strconv.Atoi(r.retryAfter); err != nil || secs <= 5 || secs > 60 {
		t.Errorf("Retry-After %q during a one-minute back-off; want the back-off's remaining seconds", r.retryAfter)
	}
	if _, err := in.apiGet(user); !errors.Is(err, domain.ErrUnavailable) {
		t.Errorf("Go API: %v; want ErrUnavailable", err)
	}

	// Back-off over (cleared by hand), still failing: 503 after a new call.
	c.exec(t, `UPDATE auth_tokens SET next_refresh_at = NULL WHERE user_id = $1`, user)
	wantStatus(t, "GET once expired, provider failing", in.get(t, user), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	if n := c.fake.Calls(g.id); n != 2 {
		t.Fatalf("%d provider calls, want 2", n)
	}
	if row := c.row(t, user); row.reauth || row.refresh != g.refresh {
		t.Fatalf("a transient failure changed the grant: reauth %v refresh %q", row.reauth, row.refresh)
	}

	// The provider recovers: the same refresh token works.
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeOK })
	c.exec(t, `UPDATE auth_tokens SET next_refresh_at = NULL WHERE user_id = $1`, user)
	wantToken(t, "GET after recovery", in.get(t, user), c.fake.Access(g.id))
	if st := in.status(t, user); st.State != "valid" || st.RefreshError != nil {
		t.Errorf("after recovery: state %q refresh_error %q", st.State, st.refreshError())
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
}

// TestNothingToRefreshWith: an expired access token whose refresh token has
// expired too (or that has none) needs re-authorization, without a provider
// call.
func TestNothingToRefreshWith(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	in := c.instances[0]
	g := c.fake.NewGrant()
	c.put(t, "both-expired", map[string]any{
		"access_token": g.access, "refresh_token": g.refresh, "access_token_expires_at": expiredAt, "refresh_token_expires_at": expiredAt,
	})
	c.put(t, "no-refresh-token", map[string]any{"access_token": "at-lonely-" + randHex(8), "access_token_expires_at": expiredAt})
	for _, user := range []string{"both-expired", "no-refresh-token"} {
		wantStatus(t, user, in.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
		if _, err := in.apiGet(user); !errors.Is(err, domain.ErrReauthRequired) {
			t.Errorf("%s Go API: %v; want ErrReauthRequired", user, err)
		}
		if st := in.status(t, user); st.State != "reauth_required" {
			t.Errorf("%s listed as %q; want reauth_required", user, st.State)
		}
	}
	if n := c.fake.requests.Load(); n != 0 {
		t.Errorf("the provider got %d requests; want none", n)
	}
}

// TestInvalidClientBacksOff: the provider refusing the client is a
// configuration problem, not the user's: no re-authorization, a back-off,
// the old token while it is valid, 503 once it has expired, and the refresh
// token is intact once the configuration is fixed.
func TestInvalidClientBacksOff(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	in := c.instances[0]
	const user = "misconfigured-user"
	g := c.fake.NewGrant()
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeInvalidClient; b.echoSecrets = true })
	c.putAged(t, user, g, 60)

	wantToken(t, "GET while the old token is valid", in.get(t, user), g.access)
	calls := c.fake.Calls(g.id)
	if calls < 1 || calls > 2 { // the generic kind retries once with the credentials in the body
		t.Fatalf("%d provider calls; want 1 (or 2 with the auth-style probe)", calls)
	}
	st := in.status(t, user)
	if st.State == "reauth_required" || st.refreshError() != "provider_rejected" {
		t.Errorf("listing: state %q refresh_error %q; want not reauth_required, provider_rejected", st.State, st.refreshError())
	}
	if row := c.row(t, user); row.reauth || row.nextRefresh == nil {
		t.Errorf("stored: reauth %v next_refresh_at %v; want a back-off, no reauth", row.reauth, row.nextRefresh)
	}
	wantToken(t, "GET during the back-off", in.get(t, user), g.access)
	c.expireNow(t, user)
	r := in.get(t, user)
	wantStatus(t, "GET once expired", r, http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	if n := c.fake.Calls(g.id); n != calls {
		t.Errorf("%d provider calls during the back-off; want still %d", n, calls)
	}

	// Configuration fixed, back-off cleared by hand: the refresh token works.
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeOK })
	c.exec(t, `UPDATE auth_tokens SET next_refresh_at = NULL WHERE user_id = $1`, user)
	wantToken(t, "GET after the fix", in.get(t, user), c.fake.Access(g.id))
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
}
