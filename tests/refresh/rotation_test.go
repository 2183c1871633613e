package refresh_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
)

// TestRefreshIsCommittedBeforeItIsReturned: while the provider handles the
// refresh, the row still holds the old tokens (and the lease); when the GET
// returns, the row holds exactly what the provider issued. Over several
// cycles on alternating instances no refresh token is presented twice.
func TestRefreshIsCommittedBeforeItIsReturned(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2})
	const user = "committed-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0)

	var seen atomic.Int64
	var want atomic.Pointer[row] // the row as it must look during the provider call
	c.fake.SetHook(func(call hookCall) {
		if call.grant != g.id {
			return
		}
		seen.Add(1)
		cur, err := c.rowE(user)
		if err != nil {
			t.Errorf("hook: read row: %v", err)
			return
		}
		w := want.Load()
		if cur.access != w.access || cur.refresh != w.refresh {
			t.Errorf("hook: during the provider call the row holds access %q refresh %q; want the old %q / %q",
				cur.access, cur.refresh, w.access, w.refresh)
		}
		if call.refreshToken != w.refresh {
			t.Errorf("hook: the service presented %q, but the stored refresh token is %q", call.refreshToken, w.refresh)
		}
		if cur.leaseOwner == "" {
			t.Errorf("hook: no lease is recorded on the row during the provider call")
		}
	})

	const cycles = 4
	for i := range cycles {
		if i > 0 {
			c.expireNow(t, user)
		}
		before := c.row(t, user)
		want.Store(&before)
		in := c.instances[i%len(c.instances)]
		r := in.get(t, user)
		wantToken(t, in.name+" GET", r, c.fake.Access(g.id))
		after := c.row(t, user)
		if after.access != r.token {
			t.Fatalf("cycle %d: the GET returned %q but the row holds %q", i, r.token, after.access)
		}
		if after.refresh != c.fake.Current(g.id) || after.refresh == before.refresh {
			t.Fatalf("cycle %d: the row holds refresh token %q; want the newly issued %q (old %q)",
				i, after.refresh, c.fake.Current(g.id), before.refresh)
		}
		if after.leaseOwner != "" {
			t.Fatalf("cycle %d: lease %q still recorded after the refresh", i, after.leaseOwner)
		}
	}
	if n := seen.Load(); n != cycles {
		t.Errorf("the hook saw %d provider calls, want %d", n, cycles)
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
	seenRT := map[string]bool{}
	for _, rt := range c.fake.Presented(g.id) {
		if seenRT[rt] {
			t.Errorf("refresh token %s presented twice", rt)
		}
		seenRT[rt] = true
	}
}

// TestCommitFailureAfterProviderSuccess: the provider rotates the refresh
// token, but storing the new tokens fails. The caller gets 503; the old
// refresh token, now dead at the provider, is never sent again: once the
// lease lapses the tokens need re-authorization (refresh_interrupted).
func TestCommitFailureAfterProviderSuccess(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		instances:       2,
		refresh:         lease(3*time.Second, 2*time.Second),
		providerTimeout: time.Second,
	})
	const user = "commit-fails-user"
	g := c.fake.NewGrant()
	c.putAged(t, user, g, 60) // inside the margin, still valid

	var blocked atomic.Bool
	c.fake.SetHook(func(call hookCall) {
		if call.grant != g.id || blocked.Swap(true) {
			return
		}
		// A NOT VALID check constraint still applies to every updated row.
		if _, err := c.db.Exec(context.Background(),
			`ALTER TABLE auth_tokens ADD CONSTRAINT block_writes CHECK (false) NOT VALID`); err != nil {
			t.Errorf("hook: block writes: %v", err)
		}
	})
	a, b := c.instances[0], c.instances[1]
	r := a.get(t, user)
	c.exec(t, `ALTER TABLE auth_tokens DROP CONSTRAINT IF EXISTS block_writes`)
	if !blocked.Load() {
		t.Fatalf("the provider was not called; GET answered %s", r)
	}
	wantStatus(t, "GET whose refreshed tokens could not be stored", r, http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	if r.retryAfter == "" {
		t.Errorf("503 without Retry-After")
	}
	if row := c.row(t, user); row.refresh != g.refresh || row.access != g.access {
		t.Fatalf("the failed commit changed the row: access %q refresh %q", row.access, row.refresh)
	}

	// Until the lease lapses, callers may get the old (still valid) access
	// token or 503; afterwards, 409 reauth_required. Never a provider call.
	var last result
	eventually(t, 20*time.Second, "reauth_required after the lease lapsed", func() (bool, string) {
		for _, in := range []*instance{b, a} {
			last = in.get(t, user)
			switch {
			case last.status == http.StatusConflict && last.code == httpapi.CodeReauthRequired:
				return true, ""
			case last.status == http.StatusOK && last.token == g.access:
			case last.status == http.StatusServiceUnavailable:
			default:
				t.Fatalf("%s GET while the lease is pending: %s", in.name, last)
			}
		}
		return false, last.String()
	})
	for _, in := range c.instances {
		wantStatus(t, in.name+" GET after", in.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
		st := in.status(t, user)
		if st.State != "reauth_required" || st.refreshError() != "refresh_interrupted" {
			t.Errorf("%s lists state %q refresh_error %q; want reauth_required / refresh_interrupted",
				in.name, st.State, st.refreshError())
		}
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("the provider got %d calls; want 1 (the old refresh token must not be sent again)", n)
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations: the old refresh token was sent again", n)
	}

	// The user reconnects (here: with the tokens the provider issued and the
	// service lost); refreshing works again.
	c.put(t, user, map[string]any{"access_token": c.fake.Access(g.id), "refresh_token": c.fake.Current(g.id), "access_token_expires_at": expiredAt})
	again := a.get(t, user)
	wantToken(t, "GET after reconnecting", again, c.fake.Access(g.id))
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations after reconnecting", n)
	}
}

// TestProviderWithoutRotationKeepsRefreshToken: an answer without a
// refresh_token keeps the stored one, which then works for the next refresh.
func TestProviderWithoutRotationKeepsRefreshToken(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	const user = "no-rotation-user"
	g := c.fake.NewGrant()
	c.fake.Set(g.id, func(b *behavior) { b.noRotation = true })
	c.putGrant(t, user, g, 0)
	in := c.instances[0]
	for i := range 3 {
		if i > 0 {
			c.expireNow(t, user)
		}
		r := in.get(t, user)
		wantToken(t, "GET", r, c.fake.Access(g.id))
		row := c.row(t, user)
		if row.refresh != g.refresh {
			t.Fatalf("refresh %d: stored refresh token %q; want the original %q kept", i, row.refresh, g.refresh)
		}
		if row.access != r.token {
			t.Fatalf("refresh %d: stored access %q, returned %q", i, row.access, r.token)
		}
	}
	if n := c.fake.Refreshes(g.id); n != 3 {
		t.Errorf("%d successful refreshes, want 3", n)
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
	if st := in.status(t, user); !st.HasRefreshToken || st.State != "valid" {
		t.Errorf("status %+v; want valid with a refresh token", st)
	}
}

// TestGitHubFormEncodedAnswer: kind github, answers form-encoded the way
// GitHub does, with refresh_token_expires_in: refreshed, and the refresh
// token's expiry stored. GitHub's 200-with-error answer for a dead refresh
// token means re-authorization.
func TestGitHubFormEncodedAnswer(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{name: "github", kind: oauth.KindGitHub})
	const (
		accessLife  = 8 * 3600        // GitHub user-to-server tokens: 8 hours
		refreshLife = 184 * 24 * 3600 // refresh tokens: about 6 months
	)
	c.fake.SetDefaults(func(b *behavior) {
		b.formEncoded, b.expiresIn, b.refreshExpiresIn = true, accessLife, refreshLife
	})
	in := c.instances[0]

	const user = "github-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0)
	start := time.Now()
	r := in.get(t, user)
	end := time.Now()
	wantToken(t, "GET", r, c.fake.Access(g.id))
	row := c.row(t, user)
	if row.refresh != c.fake.Current(g.id) || row.refresh == g.refresh {
		t.Fatalf("stored refresh token %q; want the rotated %q", row.refresh, c.fake.Current(g.id))
	}
	within := func(what string, got *time.Time, life time.Duration) {
		t.Helper()
		if got == nil {
			t.Errorf("%s expiry not stored", what)
			return
		}
		// A value check, not a timing one: the expiry counts from some
		// instant during the GET.
		lo, hi := start.Add(life).Add(-time.Second), end.Add(life).Add(time.Second)
		if got.Before(lo) || got.After(hi) {
			t.Errorf("%s expiry %s; want between %s and %s", what, got, lo, hi)
		}
	}
	within("access token", row.accessExpiry, accessLife*time.Second)
	within("refresh token", row.refreshExpiry, refreshLife*time.Second)
	if st := in.status(t, user); st.RefreshTokenExpiresAt == nil || st.State != "valid" {
		t.Errorf("listing: %+v; want valid with refresh_token_expires_at", st)
	}

	const dead = "github-dead-user"
	g2 := c.fake.NewGrant()
	c.fake.Set(g2.id, func(b *behavior) { b.mode = modeBadRefreshToken200 })
	c.putGrant(t, dead, g2, 0)
	wantStatus(t, "GET with a dead GitHub refresh token", in.get(t, dead), http.StatusConflict, httpapi.CodeReauthRequired)
	if n := c.fake.Calls(g2.id); n != 1 {
		t.Errorf("%d provider calls, want 1", n)
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
}

// TestPutDuringRefreshIsNotOverwritten: the user reconnects (PUT) while a
// refresh of the old tokens is at the provider. The refresh's result must not
// overwrite the new tokens (its lease is gone), and the caller must never be
// handed the refreshed token the database does not hold.
func TestPutDuringRefreshIsNotOverwritten(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2})
	a, b := c.instances[0], c.instances[1]
	const user = "reconnecting-user"
	old := c.fake.NewGrant()
	c.putGrant(t, user, old, 0)
	fresh := c.fake.NewGrant()

	var once atomic.Bool
	c.fake.SetHook(func(call hookCall) {
		if call.grant != old.id || once.Swap(true) {
			return
		}
		body := map[string]any{"access_token": fresh.access, "refresh_token": fresh.refresh, "expires_in": 3600}
		if r, err := c.do(http.MethodPut, b.base+tokensPath(user, c.provider), body); err != nil || r.status != http.StatusOK {
			t.Errorf("hook: PUT: %v %s", err, r)
		}
	})
	r := a.get(t, user)
	t.Logf("GET racing the PUT: %s", r)
	switch {
	case r.status == http.StatusOK && r.token == fresh.access:
	case r.status == http.StatusServiceUnavailable:
	default:
		t.Errorf("GET racing a PUT: %s; want the PUT's token or 503 (the refreshed token %s is not stored)",
			r, c.fake.Access(old.id))
	}
	row := c.row(t, user)
	if row.access != fresh.access || row.refresh != fresh.refresh || row.leaseOwner != "" {
		t.Fatalf("the refresh overwrote the reconnected tokens: access %q refresh %q lease %q",
			row.access, row.refresh, row.leaseOwner)
	}
	for _, in := range c.instances {
		wantToken(t, in.name+" GET after", in.get(t, user), fresh.access)
	}
	if n := c.fake.Calls(fresh.id); n != 0 {
		t.Errorf("the new grant got %d provider calls; want 0", n)
	}
}
