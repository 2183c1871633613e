package refresh_test

// Regression tests for defects this suite found; each comment says what
// went wrong before the fix.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"

	"github.com/tokenstore/tokenstore/adapters/httpapi"

	"github.com/tokenstore/tokenstore/app"
)

// TestWorkerNotStarvedByRowsItCannotRefresh: the proactive refresher once
// claimed due rows of every provider, oldest expiry first, and released the
// ones it could not refresh (provider not configured, refresh token not
// decryptable) with a clean state, so with Batch or more of them every scan
// claimed only those. It now claims only configured providers' rows and
// backs off rows whose refresh token cannot be opened.
func TestWorkerNotStarvedByRowsItCannotRefresh(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{worker: app.WorkerConfig{Batch: 2, Lookahead: 2 * time.Minute}, keepsAccess: true})
	in := c.instances[0]
	for i := range 2 {
		c.putAs(t, "bitbucket", fmt.Sprintf("unconfigured-%d", i), map[string]any{
			"access_token": "at-bb-" + randHex(8), "refresh_token": "rt-bb-" + randHex(8), "access_token_expires_at": expiredAt,
		})
	}
	const user = "starved-user"
	g := c.fake.NewGrant()
	c.putAged(t, user, g, dueIn)

	for scan := range 3 {
		n, err := in.worker.RunOnce(context.Background())
		if err != nil {
			t.Fatalf("scan %d: %v", scan, err)
		}
		t.Logf("scan %d refreshed %d", scan, n)
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("after 3 scans the configured provider's due token got %d provider calls; want 1 "+
			"(the scans kept claiming the 2 unrefreshable rows)", n)
	}
}

// TestShortLivedTokensWithAMarginBelowTheirLifetime: the refresh rule is
// the documented one (refresh inside the margin), so a provider issuing
// tokens that live less than the margin (Keycloak's 5 minutes against the
// default 15) would be refreshed at every read. A per-provider
// refresh_margin below the tokens' lifetime serves a token fresh from the
// provider from storage.
func TestShortLivedTokensWithAMarginBelowTheirLifetime(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{providerMargins: map[domain.Provider]time.Duration{"gitlab": time.Minute}})
	c.fake.SetDefaults(func(b *behavior) { b.expiresIn = 300 })
	in := c.instances[0]
	const user = "short-lived-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0)

	first := in.get(t, user)
	wantToken(t, "first GET", first, c.fake.Access(g.id))
	for i := range 3 {
		r := in.get(t, user)
		if r.status != http.StatusOK {
			t.Fatalf("GET %d: %s", i, r)
		}
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("4 reads of a token that lives 5 minutes, margin 1m, made %d provider calls; want 1", n)
	}
}

// TestShutdownWaitsForReadRefresh: a refresh started by a read outlives its
// callers by design (it runs on context.WithoutCancel for up to the lease,
// so it is not abandoned half-way). Shutdown once closed the pool under
// such an attempt: when the provider answered, its new tokens (the refresh
// token already rotated) could not be stored, the lease lapsed and the user
// had to reconnect. Stopping now waits (bounded by the stop context) for
// attempts in flight before the pool closes (TokenService.Drain).
func TestShutdownWaitsForReadRefresh(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		providerTimeout: 20 * time.Second,
		refresh:         lease(30*time.Second, 500*time.Millisecond),
	})
	in := c.instances[0]
	const user = "shutdown-user"
	g := c.fake.NewGrant()
	c.putGrant(t, user, g, 0)

	entered, proceed := make(chan struct{}), make(chan struct{})
	var once, release sync.Once
	unblock := func() { release.Do(func() { close(proceed) }) }
	t.Cleanup(unblock)
	c.fake.SetHook(func(call hookCall) {
		if call.grant == g.id {
			once.Do(func() { close(entered) })
			<-proceed // a slow provider: it answers when the test says so
		}
	})

	r := in.get(t, user)
	wantStatus(t, "GET while the provider is slow", r, http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	select {
	case <-entered:
	default:
		t.Fatal("the refresh has not reached the provider")
	}

	stopped := make(chan error, 1)
	go func() { stopped <- in.stop() }()
	select {
	case err := <-stopped: // stopped without waiting for the refresh in progress
		stopped <- err
	case <-time.After(3 * time.Second): // (a fixed service would wait here)
	}
	unblock()
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	eventually(t, 20*time.Second, "the refresh attempt to finish", func() (bool, string) {
		logs := in.logs.String()
		return strings.Contains(logs, "tokens refreshed") || strings.Contains(logs, "refreshed tokens could not be stored"), ""
	})
	if c.fake.Refreshes(g.id) != 1 {
		t.Fatalf("the provider did not rotate")
	}
	row := c.row(t, user)
	if row.refresh != c.fake.Current(g.id) {
		t.Errorf("after the shutdown the row holds refresh token %q (already used at the provider) and lease %q; "+
			"the provider's new refresh token %q was lost: the user will have to reconnect",
			row.refresh, row.leaseOwner, c.fake.Current(g.id))
	}
}

// TestWorkerLeasesOnlyWhatItStarts: the worker once leased its whole batch
// with one deadline and worked through it a few rows at a time, so rows late
// in the batch saw their lease lapse before their provider call started, and
// a read of such a row forced the user to reconnect. It now claims only as
// many rows as it starts at once: at no moment does it hold more leases than
// its concurrency.
func TestWorkerLeasesOnlyWhatItStarts(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		worker:          app.WorkerConfig{Lookahead: 2 * time.Minute, Batch: 5, Concurrency: 1},
		keepsAccess:     true,
		refresh:         lease(3*time.Second, 2*time.Second),
		providerTimeout: 2 * time.Second,
	})
	in := c.instances[0]
	for i := range 5 {
		c.putAged(t, fmt.Sprintf("batch-user-%d", i), c.fake.NewGrant(), dueIn+int64(i))
	}
	c.fake.SetHook(func(hookCall) { time.Sleep(200 * time.Millisecond) }) // slow but healthy

	done := make(chan struct{})
	var refreshed int
	var runErr error
	go func() {
		defer close(done)
		refreshed, runErr = in.worker.RunOnce(context.Background())
	}()
	maxLeased := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		var leased int
		if err := c.db.QueryRow(context.Background(),
			`SELECT count(*) FROM auth_tokens WHERE refresh_lease_owner IS NOT NULL`).Scan(&leased); err != nil {
			t.Fatal(err)
		}
		maxLeased = max(maxLeased, leased)
	}
	if runErr != nil || refreshed != 5 {
		t.Fatalf("RunOnce = %d, %v; want all 5 refreshed", refreshed, runErr)
	}
	if maxLeased > 1 {
		t.Errorf("the worker held %d leases at once with concurrency 1", maxLeased)
	}
}

// TestWorkerSweepsLapsedLeases: a lease whose holder died is marked for
// re-authorization by the worker too, not only when a read meets it, so the
// provider listing tells the truth for users nobody is reading.
func TestWorkerSweepsLapsedLeases(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{worker: app.WorkerConfig{Batch: 5}})
	in := c.instances[0]
	const user = "dormant-user"
	c.putGrant(t, user, c.fake.NewGrant(), 7200)
	c.exec(t, `UPDATE auth_tokens SET refresh_lease_owner = 'crashed/1', refresh_lease_until = now() - interval '1 minute' WHERE user_id = $1`, user)
	if _, err := in.worker.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	row := c.row(t, user)
	if !row.reauth || row.refreshError != "refresh_interrupted" || row.leaseOwner != "" {
		t.Errorf("after a scan: reauth %v, refresh_error %q, lease %q; want reauth_required / refresh_interrupted, no lease",
			row.reauth, row.refreshError, row.leaseOwner)
	}
	if st := in.status(t, user); st.State != "reauth_required" {
		t.Errorf("listing state %q, want reauth_required", st.State)
	}
}
