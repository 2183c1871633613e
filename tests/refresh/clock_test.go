package refresh_test

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// skew is 3 minutes, the measurement; the database's clock cannot
// be moved in a container, so the instances' clocks are (options.clockAhead).
const skew = 3 * time.Minute

// wantAliveBy fails t unless r is a token whose reported expiry is after
// now plus margin.
func wantAliveBy(t *testing.T, what string, r result, now time.Time, margin time.Duration) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: %s", what, r)
	}
	exp, err := time.Parse(time.RFC3339Nano, r.expiresAt)
	if err != nil {
		t.Fatalf("%s: access_token_expires_at %q: %v", what, r.expiresAt, err)
	}
	if !exp.After(now.Add(margin)) {
		t.Errorf("%s: handed out a token expiring at %v, %v before the service's clock plus the margin",
			what, exp, now.Add(margin).Sub(exp).Round(time.Second))
	}
}

// TestDatabaseClockBehind is the case: with the database's clock 3
// minutes behind the service's, GET returned a token whose
// access_token_expires_at was already 31 s in the past (the re-check under
// the row lock judged it by the database's clock alone). Now it is
// refreshed once, and every caller on both instances gets a token alive by
// both clocks.
func TestDatabaseClockBehind(t *testing.T) {
	t.Parallel()
	const margin = 10 * time.Second
	c := newCluster(t, options{instances: 2, clockAhead: skew, margin: margin})
	const user = "skewed-behind-user"
	g := c.fake.NewGrant()
	// Valid for 149 s by the database's clock (and the API's, which sets
	// the expiry): expired 31 s ago by the instances'.
	c.putAged(t, user, g, 149)
	for i := range 6 {
		r := c.instances[i%2].get(t, user)
		wantAliveBy(t, "GET", r, time.Now().Add(skew), margin)
		if r.token == g.access {
			t.Errorf("GET %d: handed out the stored token, expired by the service's clock", i)
		}
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls, want 1", n)
	}
	if st := c.instances[0].status(t, user); st.State != "valid" {
		t.Errorf("listing after the refresh: %q, want valid", st.State)
	}
}

// TestDatabaseClockAhead: with the service's clock 3 minutes behind the
// database's, the read without a lock took a token the database's clock
// says expired 31 s ago for valid and served it. With the skew measured at
// start-up it estimates the database's clock, and refreshes.
func TestDatabaseClockAhead(t *testing.T) {
	t.Parallel()
	const margin = 10 * time.Second
	c := newCluster(t, options{instances: 2, clockAhead: -skew, margin: margin})
	const user = "skewed-ahead-user"
	g := c.fake.NewGrant()
	c.put(t, user, map[string]any{
		"access_token": g.access, "refresh_token": g.refresh,
		"access_token_expires_at": time.Now().Add(-31 * time.Second).UTC().Format(time.RFC3339),
	})
	for i := range 6 {
		r := c.instances[i%2].get(t, user)
		wantAliveBy(t, "GET", r, time.Now(), margin)
		if r.token == g.access {
			t.Errorf("GET %d: handed out the stored token, expired by the database's clock", i)
		}
	}
	if n := c.fake.Calls(g.id); n != 1 {
		t.Errorf("%d provider calls, want 1", n)
	}
}

// readiness is /readyz's answer.
func (in *instance) readiness(t *testing.T) map[string]any {
	t.Helper()
	resp, err := in.c.client.Get(in.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d %v", resp.StatusCode, err)
	}
	return body
}

// TestReadyzReportsClockSkew: the skew measured against the real
// PostgreSQL is about 0 for an instance on the system clock, about -180 s
// for one 3 minutes ahead (which logs a warning), and /readyz says so.
func TestReadyzReportsClockSkew(t *testing.T) {
	t.Parallel()
	for _, ahead := range []time.Duration{0, skew} {
		c := newCluster(t, options{clockAhead: ahead})
		in := c.instances[0]
		got, ok := in.readiness(t)["database_clock_skew_seconds"].(float64)
		want := -ahead.Seconds()
		if !ok || math.Abs(got-want) > 1 {
			t.Errorf("instance %v ahead: /readyz database_clock_skew_seconds %v (present %v), want about %v", ahead, got, ok, want)
		}
		t.Logf("instance %v ahead: measured skew %.3f s", ahead, got)
		warned := strings.Contains(in.logs.String(), "the database's clock and this instance's disagree")
		if warned != (ahead != 0) {
			t.Errorf("instance %v ahead: warning logged %v", ahead, warned)
		}
	}
}
