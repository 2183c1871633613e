package refresh_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestExactlyOnceAcrossInstances: 3 instances × 50 concurrent callers (HTTP
// and the Go API, interleaved) ask for one token that needs a refresh. The
// provider sees exactly one refresh, nothing is ever presented twice, and
// the database ends with the provider's current tokens. Repeated over rounds
// (and meant to be run with -count) so that a race gets a chance to show.
//
// Rounds alternate between an access token that has expired (every caller
// must wait for and receive the one new token) and one that is inside the
// refresh margin but still valid (a caller on another instance may be served
// the still-valid old token while the refresh runs; see refresh.go decideWait;
// anything but the old or the new token is wrong).
func TestExactlyOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		instances: 3,
		// Generous: 150 concurrent callers on two shared cores under -race
		// must never make a healthy refresh look interrupted.
		refresh: lease(20*time.Second, 20*time.Second),
	})
	exactlyOnce(t, c)
}

// exactlyOnce is TestExactlyOnceAcrossInstances on cluster c (also run
// through PgBouncer).
func exactlyOnce(t *testing.T, c *cluster) {
	t.Helper()
	const user, callers, rounds = "exactly-once-user", 50, 5
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0) // expired

	for round := range rounds {
		expired := round%2 == 0
		if round > 0 {
			if expired {
				c.expireNow(t, user)
			} else {
				c.expireIn(t, user, time.Minute)
			}
		}
		before := c.row(t, user)
		calls0 := c.fake.Calls(g.id)

		type answer struct {
			via   string
			token string
			err   string
		}
		answers := make(chan answer, callers*len(c.instances))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers * len(c.instances) {
			in := c.instances[i%len(c.instances)]
			wg.Go(func() {
				<-start
				if i%2 == 0 {
					r, err := in.getE(user)
					switch {
					case err != nil:
						answers <- answer{via: in.name + " HTTP", err: err.Error()}
					case r.status != http.StatusOK:
						answers <- answer{via: in.name + " HTTP", err: r.String()}
					default:
						answers <- answer{via: in.name + " HTTP", token: r.token}
					}
					return
				}
				tok, err := in.apiGet(user)
				if err != nil {
					answers <- answer{via: in.name + " Go", err: err.Error()}
					return
				}
				answers <- answer{via: in.name + " Go", token: tok}
			})
		}
		close(start)
		wg.Wait()
		close(answers)

		if got := c.fake.Calls(g.id) - calls0; got != 1 {
			t.Errorf("round %d: the provider got %d refresh calls, want exactly 1", round, got)
		}
		if n := c.fake.Reuses(); n != 0 {
			t.Fatalf("round %d: %d refresh token reuse violation(s); the grant is revoked", round, n)
		}
		newAccess, newRefresh := c.fake.Access(g.id), c.fake.Current(g.id)
		counts := map[string]int{}
		for a := range answers {
			switch {
			case a.err != "":
				t.Errorf("round %d: %s failed: %s", round, a.via, a.err)
			case a.token == newAccess:
				counts["new"]++
			case a.token == before.access && !expired:
				counts["old (still valid)"]++
			default:
				t.Errorf("round %d: %s got token %q; want the new %q", round, a.via, a.token, newAccess)
			}
		}
		after := c.row(t, user)
		if after.access != newAccess || after.refresh != newRefresh {
			t.Errorf("round %d: stored access %q refresh %q; want the provider's current %q / %q",
				round, after.access, after.refresh, newAccess, newRefresh)
		}
		if after.leaseOwner != "" || after.reauth || after.refreshError != "" {
			t.Errorf("round %d: stored refresh state lease %q reauth %v error %q; want clean",
				round, after.leaseOwner, after.reauth, after.refreshError)
		}
		t.Logf("round %d (%s): answers %v", round, map[bool]string{true: "expired", false: "inside margin"}[expired], counts)
		if t.Failed() {
			t.FailNow()
		}
	}
	presented := c.fake.Presented(g.id)
	seen := map[string]bool{}
	for _, rt := range presented {
		if seen[rt] {
			t.Errorf("refresh token %s was presented twice", rt)
		}
		seen[rt] = true
	}
	if len(presented) != rounds {
		t.Errorf("the provider saw %d refresh requests over %d rounds", len(presented), rounds)
	}
}

// TestSecondInstanceSeesTheFirstRefresh: A refreshes; B, asked right after
// A committed, re-reads the row and must serve A's token, not refresh again.
func TestSecondInstanceSeesTheFirstRefresh(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2})
	a, b := c.instances[0], c.instances[1]
	for i, expiresIn := range []int64{0, 60} { // expired, then inside the margin
		user := fmt.Sprintf("double-check-%d", i)
		g := c.fake.NewGrant()
		c.putAged(t, user, g, expiresIn)

		first := a.get(t, user)
		wantToken(t, "GET on A", first, c.fake.Access(g.id))
		second := b.get(t, user)
		wantToken(t, "GET on B right after", second, first.token)
		tok, err := b.apiGet(user)
		if err != nil || tok != first.token {
			t.Fatalf("Go API on B: %q %v, want %q", tok, err, first.token)
		}
		if n := c.fake.Calls(g.id); n != 1 {
			t.Fatalf("the provider got %d calls, want 1", n)
		}
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Fatalf("%d reuse violations", n)
	}
}
