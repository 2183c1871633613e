package refresh_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The scenario report: for every test that starts a cluster, the provider
// calls it caused, the refresh tokens presented more than once (0 except
// the documented ambiguous retry, README "The ambiguous case"), and the
// access tokens tokenstore handed out that the fake provider had revoked,
// or revoked before the expiry tokenstore reported with them (must be 0:
// README's invariant "no revoked token is handed out"). Each test logs its
// line and fails when the last count is not 0; the package prints the
// table when it ends.

// handout is one access token a caller received.
type handout struct {
	token    string
	at       time.Time
	expiry   time.Time // reported; zero for never
	never    bool
	instance string
}

// scenario collects one test's hand-outs and the instants the test itself
// rewrote stored state (an expiry moved by SQL shortens what was reported
// before: a revocation after such a rewrite is the test's doing).
type scenario struct {
	mu       sync.Mutex
	handouts []handout
	rewrites []time.Time
}

func (s *scenario) handedOut(h handout) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handouts = append(s.handouts, h)
}

func (s *scenario) rewrote() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rewrites = append(s.rewrites, time.Now())
}

// revokedHandouts lists the hand-outs the fake revoked before their
// reported expiry (and before any rewrite by the test that followed the
// hand-out), or before they were handed out at all.
func (s *scenario) revokedHandouts(p *fakeProvider) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad []string
	for _, h := range s.handouts {
		revoked, ok := p.RevokedAt(h.token)
		switch {
		case !ok, !h.never && !revoked.Before(h.expiry):
			// Not revoked, or revoked at or after its reported expiry.
		case revoked.Before(h.at):
			bad = append(bad, fmt.Sprintf("%s handed out a token revoked %v before it was asked for",
				h.instance, h.at.Sub(revoked).Round(time.Millisecond)))
		case slices.ContainsFunc(s.rewrites, func(w time.Time) bool { return !w.Before(h.at) && !w.After(revoked) }):
			// The test moved the stored expiry after the hand-out.
		default:
			bad = append(bad, fmt.Sprintf("%s handed out a token revoked %v after it was asked for, before its reported expiry %s",
				h.instance, revoked.Sub(h.at).Round(time.Millisecond), h.expiry.Format(time.RFC3339Nano)))
		}
	}
	return bad
}

var report = struct {
	mu    sync.Mutex
	lines []string
}{}

// reportScenario logs t's line of the report and fails t if a revoked
// token was handed out. newCluster registers it.
func (c *cluster) reportScenario(t *testing.T) {
	bad := c.scenario.revokedHandouts(c.fake)
	line := fmt.Sprintf("%-60s provider calls %4d   refresh tokens sent twice %2d   handed out %5d   revoked handed out %d",
		t.Name(), c.fake.Requests(), c.fake.SentTwice(), len(c.scenario.handouts), len(bad))
	t.Log("report: " + line)
	report.mu.Lock()
	report.lines = append(report.lines, line)
	report.mu.Unlock()
	for _, b := range bad {
		t.Errorf("a token the provider revoked was handed out: %s", b)
	}
}

// printReport prints the package's table once the tests have finished.
func printReport() {
	report.mu.Lock()
	defer report.mu.Unlock()
	if len(report.lines) == 0 {
		return
	}
	slices.Sort(report.lines)
	fmt.Fprintf(os.Stdout, "refresh scenario report (%d scenarios):\n  %s\n", len(report.lines), strings.Join(report.lines, "\n  "))
}
