package refresh_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
)

// TestHungProviderIsBounded: a provider that never answers costs its
// callers a bounded wait and a 503 with Retry-After; meanwhile other users'
// tokens are served and refreshed normally, even with a pool of two
// connections per instance and dozens of callers waiting on the hung token.
func TestHungProviderIsBounded(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		instances:       2,
		maxConns:        2,
		providerTimeout: time.Second,
		refresh:         lease(4*time.Second, 3*time.Second),
	})
	a, b := c.instances[0], c.instances[1]

	const hungUser = "hung-user"
	hung := c.fake.NewGrant()
	c.fake.Set(hung.id, func(b *behavior) { b.mode = modeHang })
	c.putGrant(t, hungUser, hung, 0) // expired: callers must wait for the refresh

	const validUser = "valid-user"
	c.put(t, validUser, map[string]any{"access_token": "at-valid-" + randHex(8), "expires_in": 3600})
	valid := c.row(t, validUser).access

	// Callers on the hung token: 40 on A, 20 on B.
	var wg sync.WaitGroup
	hungResults := make(chan result, 60)
	hungErrs := make(chan error, 60)
	for i := range 60 {
		in := a
		if i%3 == 2 {
			in = b
		}
		wg.Go(func() {
			r, err := in.getE(hungUser)
			if err != nil {
				hungErrs <- fmt.Errorf("%s: %w", in.name, err)
				return
			}
			hungResults <- r
		})
	}
	eventually(t, 10*time.Second, "the refresh reaching the hung provider", func() (bool, string) {
		return c.fake.Calls(hung.id) > 0, "no provider call yet"
	})

	// Meanwhile: other users on both instances. Success, not latency.
	var others sync.WaitGroup
	otherErrs := make(chan string, 64)
	for range 10 {
		for _, in := range c.instances {
			others.Go(func() {
				r, err := in.getE(validUser)
				if err != nil || r.status != http.StatusOK || r.token != valid {
					otherErrs <- fmt.Sprintf("%s valid user: %v %s", in.name, err, r)
				}
			})
		}
	}
	// And another user whose token needs a refresh right now.
	const refreshUser = "needs-refresh-user"
	ok := c.fake.NewGrant()
	c.putGrant(t, refreshUser, ok, 0)
	others.Go(func() {
		r, err := b.getE(refreshUser)
		if err != nil || r.status != http.StatusOK {
			otherErrs <- fmt.Sprintf("refreshing user: %v %s", err, r)
		}
	})
	others.Wait()
	close(otherErrs)
	for e := range otherErrs {
		t.Error(e)
	}
	if row := c.row(t, refreshUser); row.access != c.fake.Access(ok.id) {
		t.Errorf("the other user's refresh was not stored")
	}

	wg.Wait()
	close(hungResults)
	close(hungErrs)
	for err := range hungErrs {
		t.Errorf("hung-token caller: %v", err)
	}
	n := 0
	for r := range hungResults {
		n++
		if r.status != http.StatusServiceUnavailable || r.code != httpapi.CodeUnavailable || r.retryAfter == "" {
			t.Errorf("hung-token caller got %s; want 503 unavailable with Retry-After", r)
		}
	}
	t.Logf("%d hung-token callers answered 503", n)
	if calls := c.fake.Calls(hung.id); calls != 1 {
		t.Errorf("the hung grant got %d provider calls; want 1 (then back-off)", calls)
	}
	for _, in := range c.instances {
		st := in.pool.Stat()
		t.Logf("%s pool: max %d, acquires %d, acquires that waited %d, canceled %d",
			in.name, st.MaxConns(), st.AcquireCount(), st.EmptyAcquireCount(), st.CanceledAcquireCount())
		if st.MaxConns() != 2 {
			t.Errorf("%s pool has %d connections; the test meant 2", in.name, st.MaxConns())
		}
	}
	if row := c.row(t, hungUser); row.leaseOwner != "" || row.reauth || row.refreshError != "provider_outcome_unknown" {
		t.Errorf("after the timeout: lease %q reauth %v error %q; want released, provider_outcome_unknown",
			row.leaseOwner, row.reauth, row.refreshError)
	}

	// The hung request never reached the token: once the provider answers
	// again, the same refresh token works.
	c.fake.Set(hung.id, func(b *behavior) { b.mode = modeOK })
	c.exec(t, `UPDATE auth_tokens SET next_refresh_at = NULL WHERE user_id = $1`, hungUser)
	wantToken(t, "GET after the provider recovered", a.get(t, hungUser), c.fake.Access(hung.id))
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
}

// TestWaitTimeoutBoundsCallersWhileProviderCallContinues: with a provider
// timeout far beyond the wait timeout, callers are answered 503 by the wait
// timeout while the provider call is still in progress; the attempt itself
// runs on, and when it fails the lease is released with a back-off.
func TestWaitTimeoutBoundsCallersWhileProviderCallContinues(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		instances:       2,
		providerTimeout: 30 * time.Second,
		refresh:         lease(40*time.Second, time.Second),
	})
	const user = "slow-user"
	g := c.fake.NewGrant()
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeHang })
	c.putGrant(t, user, g, 0)

	var wg sync.WaitGroup
	results := make(chan string, 20)
	for i := range 20 {
		in := c.instances[i%2]
		wg.Go(func() {
			r, err := in.getE(user)
			if err != nil {
				results <- err.Error()
				return
			}
			if r.status != http.StatusServiceUnavailable || r.code != httpapi.CodeUnavailable || r.retryAfter == "" {
				results <- in.name + ": " + r.String()
			}
		})
	}
	wg.Wait()
	close(results)
	for e := range results {
		t.Errorf("caller: got %s; want 503 unavailable with Retry-After", e)
	}
	// The provider call ends only by Release or its 30s timeout: the callers
	// were answered without waiting for it.
	eventually(t, 10*time.Second, "the provider call in progress", func() (bool, string) {
		return c.fake.Hanging() == 1, fmt.Sprintf("%d hanging", c.fake.Hanging())
	})
	if row := c.row(t, user); row.leaseOwner == "" {
		t.Fatalf("no lease while the provider call is in progress")
	}
	c.fake.Release()
	eventually(t, 10*time.Second, "the lease released after the provider call failed", func() (bool, string) {
		row := c.row(t, user)
		return row.leaseOwner == "" && row.refreshError == "provider_outcome_unknown",
			fmt.Sprintf("lease %q error %q reauth %v", row.leaseOwner, row.refreshError, row.reauth)
	})
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls; want 1", n)
	}
}

// TestAmbiguousTimeoutEndsInReauth: the provider processes the refresh
// (rotating the refresh token) but its answer never arrives. README
// documents the trade-off: a timeout counts as transient, so after the
// back-off the same refresh token may be presented once more; a rotating
// provider then answers invalid_grant (a strict one revokes the grant). This
// checks the damage stays bounded: at most one re-presentation, then
// reauth_required and no further provider call.
func TestAmbiguousTimeoutEndsInReauth(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		providerTimeout: time.Second,
		refresh:         app.RefreshConfig{Lease: 3 * time.Second, WaitTimeout: 3 * time.Second, RetryAfter: time.Second},
	})
	in := c.instances[0]
	const user = "lost-answer-user"
	g := c.fake.NewGrant()
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeRotateThenHang })
	c.putGrant(t, user, g, 0)

	wantStatus(t, "GET whose answer was lost", in.get(t, user), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	if c.fake.Refreshes(g.id) != 1 {
		t.Fatalf("the provider did not process the refresh")
	}
	c.fake.Set(g.id, func(b *behavior) { b.mode = modeOK })

	var last result
	eventually(t, 15*time.Second, "an answer other than 503", func() (bool, string) {
		last = in.get(t, user)
		return last.status != http.StatusServiceUnavailable, last.String()
	})
	wantStatus(t, "after the back-off", last, http.StatusConflict, httpapi.CodeReauthRequired)
	presented := len(c.fake.Presented(g.id))
	t.Logf("refresh token presentations: %d, reuse violations: %d (documented trade-off)", presented, c.fake.Reuses())
	if presented > 2 || c.fake.Reuses() > 1 {
		t.Fatalf("%d presentations, %d reuse violations; want at most one retry", presented, c.fake.Reuses())
	}
	wantStatus(t, "GET after", in.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
	if n := len(c.fake.Presented(g.id)); n != presented {
		t.Errorf("%d more provider calls after reauth_required", n-presented)
	}
}
