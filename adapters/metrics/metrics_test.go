package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  Config
		want string // "" valid
	}{
		{Config{}, ""},
		{Config{Addr: "127.0.0.1:9464"}, ""},
		{Config{Addr: "0.0.0.0:9464"}, ""}, // metrics carry no secret
		{Config{Addr: "127.0.0.1:9464", Pprof: true}, ""},
		{Config{Addr: "localhost:9464", Pprof: true}, ""},
		{Config{Addr: "0.0.0.0:9464", Pprof: true}, "not a loopback address"},
		{Config{Addr: ":9464", Pprof: true}, "not a loopback address"},
		{Config{Pprof: true}, "TOKENSTORE_METRICS_ADDR (metrics.addr) is empty"},
		{Config{Addr: "9464"}, "not host:port"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one saying %q", c.cfg, err, c.want)
		}
	}
}

type fakeCensus struct {
	calls int
	err   error
}

func (f *fakeCensus) State(context.Context) (app.StoreState, error) {
	f.calls++
	if f.err != nil {
		return app.StoreState{}, f.err
	}
	return app.StoreState{
		RefreshBacklog: map[domain.Provider]int64{"gitlab": 3},
		ReauthRequired: map[domain.Provider]int64{"gitlab": 1},
		ValuesByKey:    []domain.KeyUsage{{KeyID: "k1", Values: 7}},
		Deliveries: []domain.DeliveryCount{
			{Target: "crm", State: domain.DeliveryPending, Count: 4, Oldest: 90 * time.Second},
			{Target: "revocation", State: domain.DeliveryFailed, Count: 1, Oldest: time.Hour},
		},
	}, nil
}

// TestCensusCachedAndFailuresLeaveGaugesOut: scrapes within CensusMaxAge
// share one census; a failed census exports none of its gauges (no stale
// numbers) and is counted.
func TestCensusCachedAndFailuresLeaveGaugesOut(t *testing.T) {
	t.Parallel()
	m := New()
	src := &fakeCensus{}
	m.RegisterCensus(src, nil)
	want := `
# HELP tokenstore_refresh_backlog_tokens Tokens due for refresh by the refresh rule and not yet refreshed (in flight, backing off, or waiting for the worker or a read), by provider refreshed here; from a query at most every 30 s.
# TYPE tokenstore_refresh_backlog_tokens gauge
tokenstore_refresh_backlog_tokens{provider="gitlab"} 3
`
	for range 3 {
		if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "tokenstore_refresh_backlog_tokens"); err != nil {
			t.Fatal(err)
		}
	}
	if src.calls != 1 {
		t.Errorf("3 scrapes made %d censuses, want 1 (cached)", src.calls)
	}
	if n := testutil.CollectAndCount(m.reg, "tokenstore_key_values"); n != 1 {
		t.Errorf("key gauges %d, want 1", n)
	}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(`
# HELP tokenstore_event_deliveries Event deliveries not delivered, by target (a webhook endpoint's name, or revocation) and state (pending, failed); from a query at most every 30 s.
# TYPE tokenstore_event_deliveries gauge
tokenstore_event_deliveries{state="failed",target="revocation"} 1
tokenstore_event_deliveries{state="pending",target="crm"} 4
# HELP tokenstore_event_delivery_oldest_seconds Age of the oldest event among a target's deliveries in a state (pending: how far behind the target is), by target and state; from a query at most every 30 s.
# TYPE tokenstore_event_delivery_oldest_seconds gauge
tokenstore_event_delivery_oldest_seconds{state="failed",target="revocation"} 3600
tokenstore_event_delivery_oldest_seconds{state="pending",target="crm"} 90
`), "tokenstore_event_deliveries", "tokenstore_event_delivery_oldest_seconds"); err != nil {
		t.Error(err)
	}

	failing := New()
	bad := &fakeCensus{err: errors.New("database unavailable")}
	failing.RegisterCensus(bad, nil)
	if n := testutil.CollectAndCount(failing.reg, "tokenstore_refresh_backlog_tokens", "tokenstore_reauth_required_tokens", "tokenstore_key_values", "tokenstore_event_deliveries"); n != 0 {
		t.Errorf("a failed census exported %d gauges, want none", n)
	}
	// A failed census is not cached: this second scrape tries again.
	if err := testutil.GatherAndCompare(failing.reg, strings.NewReader(`
# HELP tokenstore_census_failures_total Censuses of the store (the queries behind the backlog, reauth_required, key and delivery gauges) that failed; those gauges are then absent from the scrape.
# TYPE tokenstore_census_failures_total counter
tokenstore_census_failures_total 2
`), "tokenstore_census_failures_total"); err != nil {
		t.Error(err)
	}
}

type fakeReadCache struct{ s readcache.Stats }

func (f fakeReadCache) Stats() readcache.Stats { return f.s }

// TestReadCacheSeries: each of the read cache's counters reaches its
// series, the reads split by how they were answered.
func TestReadCacheSeries(t *testing.T) {
	t.Parallel()
	m := New()
	m.RegisterReadCache(fakeReadCache{readcache.Stats{Hits: 1, Misses: 2, Shared: 3, Bypasses: 4, Late: 5, Changes: 6, Drops: 7, Rows: 8, Waiting: 9}})
	want := map[string]string{
		`tokenstore_read_cache_reads_total{result="hit"}`:    "1",
		`tokenstore_read_cache_reads_total{result="miss"}`:   "2",
		`tokenstore_read_cache_reads_total{result="shared"}`: "3",
		`tokenstore_read_cache_reads_total{result="bypass"}`: "4",
		`tokenstore_read_cache_late_proofs_total`:            "5",
		`tokenstore_read_cache_changes_total`:                "6",
		`tokenstore_read_cache_drops_total`:                  "7",
		`tokenstore_read_cache_rows`:                         "8",
		`tokenstore_read_cache_waiting_rows`:                 "9",
	}
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			name := f.GetName()
			for _, l := range s.GetLabel() {
				name += fmt.Sprintf(`{%s=%q}`, l.GetName(), l.GetValue())
			}
			v := s.GetCounter().GetValue() + s.GetGauge().GetValue()
			got[name] = fmt.Sprint(v)
		}
	}
	for series, v := range want {
		if got[series] != v {
			t.Errorf("%s = %q, want %s", series, got[series], v)
		}
	}
}

type fakeQueue struct {
	usage float64
	err   error
}

func (f fakeQueue) NotificationQueueUsage(context.Context) (float64, error) { return f.usage, f.err }

// TestNotificationQueueGauge: the NOTIFY queue's usage is read at each
// scrape, and left out when it cannot be read (no stale or made-up value).
func TestNotificationQueueGauge(t *testing.T) {
	t.Parallel()
	m := New()
	m.RegisterNotificationQueue(fakeQueue{usage: 0.25})
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(`
# HELP tokenstore_notification_queue_usage_ratio Fraction (0 to 1) of PostgreSQL's NOTIFY queue in use (pg_notification_queue_usage()): it grows while a listening session lags, and when it is full every token write fails at commit. Absent when it could not be read.
# TYPE tokenstore_notification_queue_usage_ratio gauge
tokenstore_notification_queue_usage_ratio 0.25
`), "tokenstore_notification_queue_usage_ratio"); err != nil {
		t.Error(err)
	}
	failing := New()
	failing.RegisterNotificationQueue(fakeQueue{err: domain.ErrStorageUnavailable})
	if n := testutil.CollectAndCount(failing.reg, "tokenstore_notification_queue_usage_ratio"); n != 0 {
		t.Errorf("an unreadable queue exported %d series, want none", n)
	}
}
