package refresh_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
)

// The fake provider revokes the previous access token on every refresh
// (GitLab, Hydra), and the provider entry (kind oauth2) says so by default.
// Every test here ends with the scenario report's check that no access
// token the provider had revoked was handed out (report_test.go).

// hammer runs GETs for user on instances, callers per instance, until stop
// is closed; the function it returns waits for them and returns every answer.
func hammer(instances []*instance, user string, callers int, stop <-chan struct{}) func() []result {
	var (
		mu  sync.Mutex
		all []result
		wg  sync.WaitGroup
	)
	for _, in := range instances {
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r, err := in.getE(user)
					if err != nil {
						continue // an instance stopping
					}
					mu.Lock()
					all = append(all, r)
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
	}
	return func() []result {
		wg.Wait()
		return all
	}
}

// holdProvider makes the fake block calls for grant id until the returned
// unblock is called (also at the test's end); entered closes at the first.
func holdProvider(t *testing.T, c *cluster, id string) (entered <-chan struct{}, unblock func()) {
	in, proceed := make(chan struct{}), make(chan struct{})
	var once, release sync.Once
	unblock = func() { release.Do(func() { close(proceed) }) }
	t.Cleanup(unblock)
	c.fake.SetHook(func(call hookCall) {
		if call.grant == id {
			once.Do(func() { close(in) })
			<-proceed
		}
	})
	return in, unblock
}

// checkAnswers logs the answers' tally and fails t if any carried the old
// access token or was a 503 without Retry-After.
func checkAnswers(t *testing.T, what string, answers []result, old, current string) map[string]int {
	t.Helper()
	counts := tallyAnswers(answers, map[string]string{old: "old token", current: "new token"})
	t.Logf("%d answers: %v", len(answers), counts)
	if counts["old token"] != 0 {
		t.Errorf("%d callers got the old access token %s", counts["old token"], what)
	}
	for _, r := range answers {
		if r.status == http.StatusServiceUnavailable && r.retryAfter == "" {
			t.Fatalf("503 without Retry-After: %s", r)
		}
	}
	return counts
}

// tally counts answers by status and token.
func tallyAnswers(rs []result, names map[string]string) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		k := fmt.Sprint(r.status)
		if r.status == http.StatusOK {
			k = names[r.token]
			if k == "" {
				k = "another token"
			}
		} else {
			k += " " + r.code
		}
		out[k]++
	}
	return out
}

// TestRevokingNoOldTokenDuringARefresh: while one instance's refresh is at
// the provider, callers on every instance wait for it instead of getting
// the old access token (which the refresh is about to revoke); once it is
// stored, every caller gets the new token.
func TestRevokingNoOldTokenDuringARefresh(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 3, maxConns: 8, refresh: lease(10*time.Second, 8*time.Second)})
	const user = "revoking-user"
	g := c.fake.NewGrant()
	c.putAged(t, user, g, 60) // valid, inside the margin: the next read refreshes

	entered, unblock := holdProvider(t, c, g.id)
	first := make(chan result, 1)
	go func() { r, _ := c.instances[0].getE(user); first <- r }()
	<-entered
	stop := make(chan struct{})
	wait := hammer(c.instances, user, 5, stop)
	time.Sleep(300 * time.Millisecond) // callers pile up behind the lease
	unblock()
	r0 := <-first
	time.Sleep(200 * time.Millisecond)
	close(stop)
	answers := append(wait(), r0)

	counts := checkAnswers(t, "during the refresh", answers, g.access, c.fake.Access(g.id))
	if counts["new token"] == 0 || counts["new token"] != len(answers) {
		t.Errorf("answers %v; want every caller to get the new token", counts)
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls; want 1", n)
	}
}

// rotateAtProvider refreshes the grant at the fake provider directly, as
// an instance that then died would have: the provider rotated and revoked
// the stored access token, and tokenstore never heard back.
func rotateAtProvider(t *testing.T, c *cluster, refreshToken string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {c.fake.clientID}, "client_secret": {c.fake.clientSecret}}
	resp, err := http.Post(c.fake.TokenURL(), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("direct refresh: HTTP %d", resp.StatusCode)
	}
}

// TestRevokingLeaseHolderKilled: the instance holding the lease dies (kill
// -9) after the provider rotated. Until the lease lapses the survivors
// answer 503 with Retry-After instead of the revoked access token; then the
// tokens are marked for re-authorization.
func TestRevokingLeaseHolderKilled(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 3, refresh: lease(3*time.Second, 500*time.Millisecond)})
	const user = "killed-holder"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 3600) // valid and outside the margin
	// The dead instance's lease and its provider call.
	c.exec(t, `UPDATE auth_tokens SET refresh_lease_owner = 'killed/1', refresh_lease_until = clock_timestamp() + interval '3 seconds'
		WHERE user_id = $1`, user)
	rotateAtProvider(t, c, g.refresh)

	stop := make(chan struct{})
	wait := hammer(c.instances, user, 3, stop)
	eventually(t, 20*time.Second, "the lapsed lease marked", func() (bool, string) {
		r, err := c.instances[1].getE(user)
		return err == nil && r.code == httpapi.CodeReauthRequired, r.String()
	})
	close(stop)
	answers := wait()
	checkAnswers(t, "while the dead instance's lease stood", answers, g.access, c.fake.Access(g.id))
	if row := c.row(t, user); !row.reauth || row.refreshError != "refresh_interrupted" {
		t.Errorf("row reauth %v error %q; want refresh_interrupted", row.reauth, row.refreshError)
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls; want only the dead instance's", n)
	}
}

// TestRevokingLeaseHolderStopped: the instance holding the lease is stopped
// mid-refresh. It finishes the refresh before it goes (Drain); callers on
// the others never get the old token and get the new one afterwards.
func TestRevokingLeaseHolderStopped(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 3, refresh: lease(10*time.Second, 8*time.Second)})
	const user = "stopped-holder"
	g := c.fake.NewGrant()
	c.putAged(t, user, g, 60) // valid, inside the margin: the holder's read refreshes

	entered, unblock := holdProvider(t, c, g.id)
	holder := c.instances[0]
	go func() { _, _ = holder.getE(user) }()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- holder.stop() }()
	stop := make(chan struct{})
	wait := hammer(c.instances[1:], user, 4, stop)
	time.Sleep(300 * time.Millisecond)
	unblock()
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	answers := wait()
	checkAnswers(t, "while the stopping instance refreshed", answers, g.access, c.fake.Access(g.id))
	wantToken(t, "GET after the stop", c.instances[2].get(t, user), c.fake.Access(g.id))
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls; want 1", n)
	}
}

// TestRevokingWorkerNeverKillsAReportedToken: callers on two instances read
// continuously while both instances' workers scan with a lookahead far
// longer than the tokens live. The workers and the readers refresh only at
// the expiry reported with the token they replace, so no token is revoked
// before its reported expiry (the scenario report checks every one).
func TestRevokingWorkerNeverKillsAReportedToken(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2, margin: 2 * time.Second,
		worker: app.WorkerConfig{Lookahead: 2 * time.Minute, Concurrency: 2}})
	c.fake.SetDefaults(func(b *behavior) { b.expiresIn = 5 })
	const user = "worker-vs-reader"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 5)

	// Right after a hand-out, a scan with a 2-minute lookahead claims nothing.
	r := c.instances[0].get(t, user)
	wantToken(t, "first GET", r, g.access)
	for _, in := range c.instances {
		if n, err := in.worker.RunOnce(context.Background()); err != nil || n != 0 {
			t.Fatalf("%s scan right after a hand-out = %d, %v; want nothing claimed", in.name, n, err)
		}
	}
	if n := c.fake.Calls(g.id); n != 0 {
		t.Fatalf("%d provider calls before the reported expiry", n)
	}

	stop := make(chan struct{})
	wait := hammer(c.instances, user, 2, stop)
	var scans sync.WaitGroup
	var workerRefreshes atomic.Int64
	for _, in := range c.instances {
		scans.Add(1)
		go func() {
			defer scans.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if n, err := in.worker.RunOnce(context.Background()); err == nil {
					workerRefreshes.Add(int64(n))
				}
			}
		}()
	}
	eventually(t, 60*time.Second, "three refreshes", func() (bool, string) {
		return c.fake.Refreshes(g.id) >= 3, fmt.Sprintf("%d refreshes", c.fake.Refreshes(g.id))
	})
	close(stop)
	scans.Wait()
	answers := wait()
	t.Logf("%d answers, %d refreshes (%d by the workers)", len(answers), c.fake.Refreshes(g.id), workerRefreshes.Load())
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
	if n := c.fake.Calls(g.id); n != int64(c.fake.Refreshes(g.id)) {
		t.Errorf("%d provider calls for %d refreshes; want one each", n, c.fake.Refreshes(g.id))
	}
}

// TestRevokingLostAnswer: the provider rotates, then a gateway answers 502
// (the answer is lost). The outcome is unknown, so no caller gets the old
// access token during the back-off (503 with Retry-After); after it the
// same refresh token is sent again (the documented ambiguous retry), which
// a rotating provider rejects: the user must reconnect. When the provider
// had not rotated (it hung), the same retry saves the grant.
func TestRevokingLostAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		mode      mode
		recovered bool
	}{
		{"rotated then 502", modeRotateThen502, false},
		{"hung before rotating", modeHang, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, options{instances: 3, providerTimeout: 500 * time.Millisecond,
				refresh: app.RefreshConfig{Lease: 5 * time.Second, WaitTimeout: 2 * time.Second, RetryAfter: time.Second}})
			const user = "lost-answer"
			g := c.fake.NewGrant()
			c.fake.Set(g.id, func(b *behavior) { b.mode = tc.mode })
			c.putAged(t, user, g, 600) // valid, inside the margin

			stop := make(chan struct{})
			wait := hammer(c.instances, user, 3, stop)
			eventually(t, 10*time.Second, "the unknown outcome stored", func() (bool, string) {
				row := c.row(t, user)
				return row.refreshError == "provider_outcome_unknown", row.refreshError
			})
			if tc.recovered {
				c.fake.Set(g.id, func(b *behavior) { b.mode = modeOK })
			}
			eventually(t, 20*time.Second, "the ambiguous retry", func() (bool, string) {
				row := c.row(t, user)
				if tc.recovered {
					return row.access == c.fake.Access(g.id) && row.access != g.access, row.refreshError
				}
				return row.reauth, row.refreshError
			})
			time.Sleep(100 * time.Millisecond)
			close(stop)
			answers := wait()
			checkAnswers(t, "after the refresh's outcome became unknown", answers, g.access, c.fake.Access(g.id))
			if got := c.fake.SentTwice(); got != 1 {
				t.Errorf("refresh tokens sent twice: %d; want exactly the one ambiguous retry", got)
			}
			st := c.instances[1].status(t, user)
			if st.AmbiguousRetries != 1 {
				t.Errorf("listing: %d ambiguous retries; want 1", st.AmbiguousRetries)
			}
			if tc.recovered {
				wantToken(t, "GET after the retry", c.instances[2].get(t, user), c.fake.Access(g.id))
			} else if st.refreshError() != "invalid_grant" || !c.fake.Revoked(g.id) {
				t.Errorf("listing: refresh_error %q, grant revoked %v; want the rotating provider to have revoked the grant",
					st.refreshError(), c.fake.Revoked(g.id))
			}
		})
	}
}

// TestStoreSurvivesKilledBackends: every database connection is killed
// (pg_terminate_backend, 57P01) while the provider answers. The provider's
// answer is the only copy of the rotated refresh token, so the fenced store
// is retried on fresh connections: the caller gets the new token, the
// provider saw one call, and the row is not marked for re-authorization.
func TestStoreSurvivesKilledBackends(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2, refresh: lease(10*time.Second, 8*time.Second)})
	admin, err := pgx.Connect(context.Background(), c.run.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	var killed atomic.Int64
	c.fake.SetHook(func(call hookCall) {
		var n int64
		err := admin.QueryRow(context.Background(),
			`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			 WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n)
		if err != nil {
			t.Errorf("terminate backends: %v", err)
		}
		killed.Add(n)
	})
	for i, in := range c.instances {
		user := fmt.Sprintf("killed-backends-%d", i)
		g := c.fake.NewGrant()
		c.putGrant(t, user, g, 0)
		r := in.get(t, user)
		c.db.Reset() // the test's own connections were killed too
		wantToken(t, user+": GET while the backends were killed", r, c.fake.Access(g.id))
		if n := c.fake.Calls(g.id); n != 1 {
			t.Errorf("%s: %d provider calls; want 1", user, n)
		}
		row := c.row(t, user)
		if row.reauth || row.leaseOwner != "" || row.refresh != c.fake.Current(g.id) {
			t.Errorf("%s: row reauth %v lease %q, refresh token current %v; want the new tokens stored",
				user, row.reauth, row.leaseOwner, row.refresh == c.fake.Current(g.id))
		}
		// The other instance's idle connections were killed too: a read may
		// meet one (503, retry shortly) before its pool has fresh ones.
		eventually(t, 10*time.Second, user+": GET afterwards", func() (bool, string) {
			r, err := c.instances[(i+1)%2].getE(user)
			return err == nil && r.status == http.StatusOK && r.token == c.fake.Access(g.id), r.String()
		})
	}
	if killed.Load() == 0 {
		t.Error("no backend was killed: the test proved nothing")
	}
	retried := 0
	for _, in := range c.instances {
		retried += strings.Count(in.logs.String(), "the database failed while a refresh stored its outcome")
	}
	if retried == 0 {
		t.Error("no store was retried: the killed connections were never met")
	}
	t.Logf("%d store tries failed and were retried", retried)
	t.Logf("%d backends killed", killed.Load())
}
