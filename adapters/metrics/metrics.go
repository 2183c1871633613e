// Package metrics is tokenstore's Prometheus instrumentation: the
// app.Observer of the use cases (refreshes, provider calls, waits for
// another instance's refresh, audit writes), the HTTP API's request
// observer, collectors of the pgx pool's statistics and of the store's
// census (worker backlog, tokens awaiting re-authorization, values per
// key), and the listener that serves /metrics (and, when asked,
// net/http/pprof). Every series lives in the Metrics' own registry, never
// the global one, so instances in one process (tests) do not collide.
//
// No label carries a user id or token material: a caller label holds a
// configured caller's name, a route label the route's pattern, a
// provider label a configured provider's name.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// Metrics holds tokenstore's series in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.HistogramVec
	refreshAttempts *prometheus.CounterVec
	providerCalls   *prometheus.HistogramVec
	leaseWaits      *prometheus.HistogramVec
	auditWrites     prometheus.Histogram
	auditFailures   prometheus.Counter
	auditFailed     prometheus.Counter
	auditBatch      prometheus.Histogram
}

var _ app.Observer = (*Metrics)(nil)

// Latency buckets in seconds: from a fast database read (1 ms) to a
// provider at its timeout (15 s by default) and a read waiting for a
// refresh (20 s).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30}

// New returns the metrics with the Go runtime's and the process's
// collectors registered.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenstore_http_request_duration_seconds",
			Help:    "HTTP API requests by route pattern, method, status and caller (a configured caller's name; empty before authentication), and how long each took to answer.",
			Buckets: latencyBuckets,
		}, []string{"route", "method", "status", "caller"}),
		refreshAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokenstore_refresh_attempts_total",
			Help: "Refresh attempts by provider and outcome: refreshed, or the code of the attempt's refresh audit event (invalid_grant, provider_rejected, provider_unavailable, provider_outcome_unknown, refresh_token_undecryptable, refresh_superseded, refresh_interrupted).",
		}, []string{"provider", "outcome"}),
		providerCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenstore_provider_call_duration_seconds",
			Help:    "Calls to a provider's token endpoint by provider, and how long each took, whatever its outcome.",
			Buckets: latencyBuckets,
		}, []string{"provider"}),
		leaseWaits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokenstore_refresh_lease_wait_duration_seconds",
			Help:    "Reads that waited for another attempt's (usually another instance's) refresh lease, by provider and outcome (released, timed_out, canceled), and how long they waited.",
			Buckets: latencyBuckets,
		}, []string{"provider", "outcome"}),
		auditWrites: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokenstore_audit_write_duration_seconds",
			Help:    "Batched audit inserts (handed-out tokens, best-effort events, refusals), and how long each took, failed ones included.",
			Buckets: latencyBuckets,
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenstore_audit_write_failures_total",
			Help: "Batched audit inserts that failed (fail-closed: their reads answered 503; best-effort: their events were lost).",
		}),
		auditFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenstore_audit_failed_events_total",
			Help: "Audit events in batched inserts that failed.",
		}),
		auditBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokenstore_audit_batch_size_events",
			Help:    "Events per batched audit insert.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
		}),
	}
	reg.MustRegister(m.requests, m.refreshAttempts, m.providerCalls, m.leaseWaits,
		m.auditWrites, m.auditFailures, m.auditFailed, m.auditBatch,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry every series lives in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest records one answered API request (httpapi.RequestObserver):
// route is the route pattern ("unmatched" when none matched), never the
// path; caller a configured caller's name or "".
func (m *Metrics) ObserveRequest(route, method string, status int, caller string, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status), caller).Observe(d.Seconds())
}

// RefreshAttempt implements app.Observer.
func (m *Metrics) RefreshAttempt(provider domain.Provider, outcome string) {
	m.refreshAttempts.WithLabelValues(string(provider), outcome).Inc()
}

// ProviderCall implements app.Observer.
func (m *Metrics) ProviderCall(provider domain.Provider, d time.Duration) {
	m.providerCalls.WithLabelValues(string(provider)).Observe(d.Seconds())
}

// LeaseWait implements app.Observer.
func (m *Metrics) LeaseWait(provider domain.Provider, d time.Duration, outcome string) {
	m.leaseWaits.WithLabelValues(string(provider), outcome).Observe(d.Seconds())
}

// AuditWrite implements app.Observer.
func (m *Metrics) AuditWrite(n int, d time.Duration, err error) {
	m.auditWrites.Observe(d.Seconds())
	m.auditBatch.Observe(float64(n))
	if err != nil {
		m.auditFailures.Inc()
		m.auditFailed.Add(float64(n))
	}
}
