package refresh_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
)

// dueIn is an access token lifetime outside the default 15m margin but
// inside margin + the 2m lookahead: due for the proactive refresher only,
// for a provider that keeps the previous access token (options.keepsAccess):
// for one that revokes it, the lookahead does not apply; and only when
// stored long ago (putAged: a fresh token's margin is at most half its
// lifetime).
const dueIn = 16 * 60

// TestWorkerRunOnceAcrossInstances: two instances scanning at the same
// moment refresh each due token exactly once; a token not yet due is left
// alone; readers afterwards get the refreshed tokens without a provider call.
func TestWorkerRunOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2, worker: app.WorkerConfig{Lookahead: 2 * time.Minute}, keepsAccess: true})
	const due = 5
	grants := map[string]grantTokens{}
	for i := range due {
		user := fmt.Sprintf("due-user-%d", i)
		grants[user] = c.fake.NewGrant()
		c.putAged(t, user, grants[user], dueIn)
	}
	notDue := c.fake.NewGrant()
	c.putGrant(t, "not-due-user", notDue, 3600)

	start := make(chan struct{})
	var wg sync.WaitGroup
	refreshed := make([]int, len(c.instances))
	errs := make([]error, len(c.instances))
	for i, in := range c.instances {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			refreshed[i], errs[i] = in.worker.RunOnce(ctx)
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s RunOnce: %v", c.instances[i].name, err)
		}
		total += refreshed[i]
	}
	t.Logf("refreshed per instance: %v", refreshed)
	if total != due {
		t.Errorf("the scans refreshed %d tokens in all; want %d", total, due)
	}
	for user, g := range grants {
		if n := c.fake.Calls(g.id); n != 1 {
			t.Errorf("%s: %d provider calls; want 1", user, n)
		}
		row := c.row(t, user)
		if row.access != c.fake.Access(g.id) || row.refresh != c.fake.Current(g.id) || row.leaseOwner != "" {
			t.Errorf("%s: row not refreshed (lease %q)", user, row.leaseOwner)
		}
		for _, in := range c.instances {
			wantToken(t, in.name+" GET "+user, in.get(t, user), c.fake.Access(g.id))
		}
		if n := c.fake.Calls(g.id); n != 1 {
			t.Errorf("%s: %d provider calls after the GETs; want still 1", user, n)
		}
	}
	if n := c.fake.Calls(notDue.id); n != 0 {
		t.Errorf("the token not yet due got %d provider calls", n)
	}
	// A second scan finds nothing due.
	for _, in := range c.instances {
		if n, err := in.worker.RunOnce(context.Background()); err != nil || n != 0 {
			t.Errorf("%s second scan: %d %v; want nothing", in.name, n, err)
		}
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
}

// TestWorkerStartedByTheApp: the worker the application starts refreshes a
// due token on its own, and stopping the application stops it cleanly.
func TestWorkerStartedByTheApp(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{worker: app.WorkerConfig{
		Enabled: true, Interval: 200 * time.Millisecond, Lookahead: 2 * time.Minute,
	}, keepsAccess: true})
	in := c.instances[0]
	const user = "worker-user"
	g := c.fake.NewGrant()
	c.putAged(t, user, g, dueIn)

	eventually(t, 20*time.Second, "the background refresh", func() (bool, string) {
		row := c.row(t, user)
		return row.refresh != g.refresh && row.refresh == c.fake.Current(g.id),
			fmt.Sprintf("refresh token %q, provider calls %d", row.refresh, c.fake.Calls(g.id))
	})
	wantToken(t, "GET after the background refresh", in.get(t, user), c.fake.Access(g.id))
	if err := in.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls; want 1", n)
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d reuse violations", n)
	}
}

// TestWorkerClaimIsExclusive: while one instance's scan is in the middle of
// a provider call, another instance's scan claims nothing and a reader gets
// the still-valid token without a second provider call.
func TestWorkerClaimIsExclusive(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{
		instances: 2, worker: app.WorkerConfig{Lookahead: 2 * time.Minute}, keepsAccess: true,
		providerTimeout: 20 * time.Second, refresh: lease(30*time.Second, 5*time.Second),
	})
	a, b := c.instances[0], c.instances[1]
	const user = "claimed-user"
	g := c.fake.NewGrant()
	c.putAged(t, user, g, dueIn)

	entered, proceed := make(chan struct{}), make(chan struct{})
	var once, release sync.Once
	unblock := func() { release.Do(func() { close(proceed) }) }
	t.Cleanup(unblock) // before the fake provider closes
	c.fake.SetHook(func(call hookCall) {
		if call.grant == g.id {
			once.Do(func() { close(entered) })
			<-proceed
		}
	})
	var n int
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err = a.worker.RunOnce(context.Background())
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("A's scan never called the provider")
	}
	if row := c.row(t, user); row.leaseOwner == "" {
		t.Errorf("no lease recorded during the worker's provider call")
	}
	if nb, errb := b.worker.RunOnce(context.Background()); errb != nil || nb != 0 {
		t.Errorf("B's scan during A's refresh: %d %v; want nothing claimed", nb, errb)
	}
	wantToken(t, "GET on B during A's refresh", b.get(t, user), g.access)
	unblock()
	<-done
	if err != nil || n != 1 {
		t.Fatalf("A's scan: %d %v; want 1 refreshed", n, err)
	}
	if calls := c.fake.Calls(g.id); calls != 1 {
		t.Errorf("%d provider calls; want 1", calls)
	}
	wantToken(t, "GET after", b.get(t, user), c.fake.Access(g.id))
}
