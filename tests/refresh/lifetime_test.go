package refresh_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
)

// forgetObtained makes user's access token look stored before tokenstore
// recorded when tokens were obtained (access_token_obtained_at NULL): the
// configured margin applies uncapped.
func (c *cluster) forgetObtained(t testing.TB, user string) {
	t.Helper()
	c.exec(t, `UPDATE auth_tokens SET access_token_obtained_at = NULL WHERE user_id = $1 AND provider = $2`,
		user, string(c.provider))
}

// TestKeycloakLikeTokensDefaultMargin is the measurement: tokens
// living 300 s with the default 15-minute margin were inside the margin from
// the moment they were issued, and 6 reads caused 6 refreshes. With the
// effective margin (half the lifetime) they cause 1, on two instances.
func TestKeycloakLikeTokensDefaultMargin(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2})
	c.fake.SetDefaults(func(b *behavior) { b.expiresIn = 300 })
	const user = "keycloak-like-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0) // expired: the first read refreshes
	for i := range 6 {
		r := c.instances[i%2].get(t, user)
		wantToken(t, "GET", r, c.fake.Access(g.id))
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("6 reads of 300 s tokens with the default margin made %d provider calls; want 1", n)
	}
	t.Logf("scenario 300s-tokens-default-margin: provider calls %d, refresh tokens sent twice %d",
		c.fake.Calls(g.id), len(c.fake.Presented(g.id))-len(uniq(c.fake.Presented(g.id))))
}

// TestShortLivedTokensRefreshedOncePerHalfLife is the same, scaled down and
// across the token's life: tokens living 10 s with a 20 s margin, read
// every 2 s from their issue. The reads inside the last half of the first
// token's life refresh it once; the new token then serves the rest.
// (Configured margin alone: every read refreshes.)
func TestShortLivedTokensRefreshedOncePerHalfLife(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2, margin: 20 * time.Second})
	c.fake.SetDefaults(func(b *behavior) { b.expiresIn = 10 })
	const user = "short-lived-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 10)
	start := time.Now()
	for i := range 6 {
		time.Sleep(time.Until(start.Add(time.Duration(i) * 2 * time.Second)))
		if r := c.instances[i%2].get(t, user); r.status != http.StatusOK {
			t.Fatalf("GET %d: %s", i, r)
		}
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("6 reads over the life of a 10 s token (margin 20 s) made %d provider calls; want 1", n)
	}
}

// TestWorkerLeavesFreshShortLivedTokens: the worker's claim uses the same
// effective margin: a freshly stored 5-minute token is not due, although
// it expires within the margin; the same token with an unknown lifetime (a
// row stored before the column existed) is, by the configured margin.
func TestWorkerLeavesFreshShortLivedTokens(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{worker: app.WorkerConfig{Lookahead: 2 * time.Minute}})
	fresh, legacy := c.fake.NewGrant(), c.fake.NewGrant()
	c.putGrant(t, "fresh-user", fresh, 300)
	c.putGrant(t, "legacy-user", legacy, 300)
	c.forgetObtained(t, "legacy-user")
	n, err := c.instances[0].worker.RunOnce(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("RunOnce = %d, %v; want 1 refreshed", n, err)
	}
	if calls := c.fake.Calls(fresh.id); calls != 0 {
		t.Errorf("the fresh 5-minute token was refreshed by the worker (%d calls)", calls)
	}
	if calls := c.fake.Calls(legacy.id); calls != 1 {
		t.Errorf("the token of unknown lifetime: %d calls, want 1", calls)
	}
}

// TestObtainedAtStored: PUT and a refresh record when the access token was
// obtained; a row of unknown lifetime gets it at its next refresh.
func TestObtainedAtStored(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	const user = "obtained-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 3600)
	obtained := func() (at *time.Time) {
		t.Helper()
		if err := c.db.QueryRow(context.Background(), `SELECT access_token_obtained_at FROM auth_tokens WHERE user_id = $1`, user).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	put := obtained()
	if put == nil || time.Since(*put) > time.Minute || time.Since(*put) < -time.Minute {
		t.Fatalf("after PUT: obtained at %v, want about now", put)
	}
	c.forgetObtained(t, user)
	c.expireNow(t, user)
	wantToken(t, "GET", c.instances[0].get(t, user), c.fake.Access(g.id))
	if at := obtained(); at == nil || !at.After(*put) {
		t.Errorf("after a refresh: obtained at %v, want set after the PUT's %v", at, put)
	}
}

// uniq is s without repeats.
func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return m
}

// putAged stores a grant whose access token expires in expiresIn seconds
// (0: already expired), as if stored long ago (lifetime unknown), so a token
// expiring within the configured margin (plus the worker's lookahead) is
// inside it, as before tokenstore capped margins by lifetimes.
func (c *cluster) putAged(t *testing.T, user string, g grantTokens, expiresIn int64) {
	t.Helper()
	c.putGrant(t, user, g, expiresIn)
	c.forgetObtained(t, user)
}
