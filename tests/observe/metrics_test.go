package observe_test

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// TestMetricsAfterAWorkload scrapes /metrics after a scripted workload and
// checks each series the README lists against what the workload did.
func TestMetricsAfterAWorkload(t *testing.T) {
	t.Parallel()
	e := start(t, servicetest.Options{}, nil)
	const tokensRoute = "GET /v1/users/{user}/providers/{provider}/tokens"

	// alice: refreshed on read. bob: the provider revokes his grant.
	// carol: nothing stored (404). dave: due, never read (the backlog).
	// erin: another attempt holds a short lease on her tokens, which
	// lapses while her read waits: interrupted, reauth_required.
	alice, bob, carol, dave, erin := e.user("alice"), e.user("bob"), e.user("carol"), e.user("dave"), e.user("erin")
	e.putTokens(alice, "refresh-"+randHex(12))
	e.putTokens(bob, "revoked-"+randHex(12))
	e.putTokens(dave, "refresh-"+randHex(12))
	e.putTokens(erin, "refresh-"+randHex(12))
	offline := "offline-" + randHex(12)
	e.sent = append(e.sent, offline)
	if status, body := e.do("PUT", "/v1/users/"+alice+"/offline-token", map[string]any{"offline_token": offline}); status != 200 {
		t.Fatalf("PUT offline token: %d %s", status, body)
	}
	if status, body := e.do("GET", "/v1/users/"+alice+"/providers/"+provider+"/tokens", nil); status != 200 {
		t.Fatalf("GET alice: %d %s", status, body)
	}
	if status, body := e.do("GET", "/v1/users/"+bob+"/providers/"+provider+"/tokens", nil); status != 409 {
		t.Fatalf("GET bob: %d %s, want 409 reauth_required", status, body)
	}
	if status, body := e.do("GET", "/v1/users/"+carol+"/providers/"+provider+"/tokens", nil); status != 404 {
		t.Fatalf("GET carol: %d %s", status, body)
	}
	if _, err := e.cluster.DB.Exec(t.Context(), `UPDATE auth_tokens SET refresh_lease_owner = 'elsewhere/1',
		refresh_lease_until = now() + interval '3 seconds' WHERE user_id = $1`, erin); err != nil {
		t.Fatal(err)
	}
	if status, body := e.do("GET", "/v1/users/"+erin+"/providers/"+provider+"/tokens", nil); status != 409 {
		t.Fatalf("GET erin: %d %s, want 409 reauth_required after the lease lapsed", status, body)
	}

	status, text := e.get(e.inst.MetricsURL + "/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", status, text)
	}
	families := parse(t, text)
	keyID := string(e.cluster.Keys[0].ID())
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64 // a histogram's count, a counter's or gauge's value
	}{
		{"tokenstore_http_request_duration_seconds", map[string]string{"route": "PUT /v1/users/{user}/providers/{provider}/tokens", "method": "PUT", "status": "200", "caller": servicetest.CallerAll}, 4},
		{"tokenstore_http_request_duration_seconds", map[string]string{"route": tokensRoute, "method": "GET", "status": "200", "caller": servicetest.CallerAll}, 1},
		{"tokenstore_http_request_duration_seconds", map[string]string{"route": tokensRoute, "method": "GET", "status": "409", "caller": servicetest.CallerAll}, 2},
		{"tokenstore_http_request_duration_seconds", map[string]string{"route": tokensRoute, "method": "GET", "status": "404", "caller": servicetest.CallerAll}, 1},
		{"tokenstore_refresh_attempts_total", map[string]string{"provider": provider, "outcome": "refreshed"}, 1},
		{"tokenstore_refresh_attempts_total", map[string]string{"provider": provider, "outcome": "invalid_grant"}, 1},
		{"tokenstore_refresh_attempts_total", map[string]string{"provider": provider, "outcome": "refresh_interrupted"}, 1},
		{"tokenstore_provider_call_duration_seconds", map[string]string{"provider": provider}, 2},
		{"tokenstore_refresh_lease_wait_duration_seconds", map[string]string{"provider": provider, "outcome": "released"}, 1},
		{"tokenstore_refresh_backlog_tokens", map[string]string{"provider": provider}, 1},
		{"tokenstore_reauth_required_tokens", map[string]string{"provider": provider}, 2},
		// Four users' access and refresh tokens and one offline token.
		{"tokenstore_key_values", map[string]string{"key_id": keyID}, 9},
		{"tokenstore_db_pool_max_connections", nil, 8},
		{"tokenstore_audit_write_failures_total", nil, 0},
		{"tokenstore_census_failures_total", nil, 0},
	} {
		got, ok := value(families, c.name, c.labels)
		if !ok {
			t.Errorf("%s%v: no such series", c.name, c.labels)
		} else if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The fail-closed read of alice's token waited for one audit batch.
	if n, ok := value(families, "tokenstore_audit_write_duration_seconds", nil); !ok || n < 1 {
		t.Errorf("tokenstore_audit_write_duration_seconds count = %v, want at least 1 batch", n)
	}
	// The NOTIFY queue: read from PostgreSQL at the scrape; nearly empty,
	// as the instance's listener reads every notification at once.
	if u, ok := value(families, "tokenstore_notification_queue_usage_ratio", nil); !ok || u < 0 || u > 0.01 {
		t.Errorf("tokenstore_notification_queue_usage_ratio = %v (present %v), want a fraction near 0", u, ok)
	}
	if n, ok := value(families, "tokenstore_db_pool_acquires_total", nil); !ok || n < 1 {
		t.Errorf("tokenstore_db_pool_acquires_total = %v, want some", n)
	}
	// The route label is a pattern or "unmatched": never a path.
	for _, m := range families["tokenstore_http_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), "/users/") && !strings.Contains(l.GetValue(), "{user}") {
				t.Errorf("route label %q is a path, not a pattern", l.GetValue())
			}
		}
	}
	if s, enc := testlog.FindSecret(text, e.forbidden()...); s != "" {
		t.Errorf("/metrics holds a secret or user id (%d bytes, as %q)", len(s), enc)
	}
	if status, _ := e.get(e.inst.MetricsURL + "/debug/pprof/"); status != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ with metrics.pprof off: %d, want 404", status)
	}
}

// TestPprofWhenEnabled: metrics.pprof serves the profiles beside /metrics.
func TestPprofWhenEnabled(t *testing.T) {
	t.Parallel()
	e := start(t, servicetest.Options{}, func(cfg *cli.Config) { cfg.Metrics.Pprof = true })
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/metrics"} {
		if status, body := e.get(e.inst.MetricsURL + path); status != http.StatusOK {
			t.Errorf("GET %s: %d\n%.300s", path, status, body)
		}
	}
}

// parse reads the text exposition format.
func parse(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// value is the series of family name with exactly labels: a counter's or
// gauge's value, a histogram's count.
func value(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range families[name].GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
