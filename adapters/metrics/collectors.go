package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/app"
)

// poolCollector reads the pgx pool's statistics at each scrape: a copy of
// counters the pool keeps anyway, no database call.
type poolCollector struct {
	pool *pgxpool.Pool

	acquires, acquireSeconds, emptyAcquires, emptyWaitSeconds, canceled, conns, maxConns *prometheus.Desc
}

// RegisterPool exports pool's statistics.
func (m *Metrics) RegisterPool(pool *pgxpool.Pool) {
	m.reg.MustRegister(&poolCollector{
		pool:             pool,
		acquires:         prometheus.NewDesc("tokenstore_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil),
		acquireSeconds:   prometheus.NewDesc("tokenstore_db_pool_acquire_duration_seconds_total", "Time spent acquiring connections from the pool, all acquires together.", nil, nil),
		emptyAcquires:    prometheus.NewDesc("tokenstore_db_pool_empty_acquires_total", "Acquires that had to wait because no connection was idle (a new one was made or another released).", nil, nil),
		emptyWaitSeconds: prometheus.NewDesc("tokenstore_db_pool_empty_acquire_wait_seconds_total", "Time acquires spent waiting because no connection was idle.", nil, nil),
		canceled:         prometheus.NewDesc("tokenstore_db_pool_canceled_acquires_total", "Acquires given up because their context ended (the database timeout, a request gone).", nil, nil),
		conns:            prometheus.NewDesc("tokenstore_db_pool_connections", "Connections in the pool by state: acquired (in use), idle, constructing.", []string{"state"}, nil),
		maxConns:         prometheus.NewDesc("tokenstore_db_pool_max_connections", "The pool's size (database.max_conns).", nil, nil),
	})
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquires, c.acquireSeconds, c.emptyAcquires, c.emptyWaitSeconds, c.canceled, c.conns, c.maxConns} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.acquireSeconds, prometheus.CounterValue, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(c.emptyAcquires, prometheus.CounterValue, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.emptyWaitSeconds, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds())
	ch <- prometheus.MustNewConstMetric(c.canceled, prometheus.CounterValue, float64(s.CanceledAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(c.maxConns, prometheus.GaugeValue, float64(s.MaxConns()))
}

// CensusSource takes a census of the store (*app.Census).
type CensusSource interface {
	State(ctx context.Context) (app.StoreState, error)
}

// Census timing: a scrape runs the census queries only when the last
// census is older than CensusMaxAge, so scrapers (several Prometheus
// replicas, a person with curl) cost the database at most three aggregate
// queries per CensusMaxAge per instance; each census is bounded by
// CensusTimeout.
const (
	CensusMaxAge  = 30 * time.Second
	CensusTimeout = 5 * time.Second
)

// censusCollector exports the store's census, taken at scrape time when
// the cached one is older than CensusMaxAge. A census that fails exports
// none of its gauges (stale numbers would say something untrue) and counts
// the failure.
type censusCollector struct {
	src CensusSource
	log *slog.Logger
	now func() time.Time

	backlog, reauth, keyValues *prometheus.Desc
	deliveries, deliveryOldest *prometheus.Desc
	failures                   prometheus.Counter

	mu    sync.Mutex
	state app.StoreState
	taken time.Time
	ok    bool
}

// RegisterCensus exports src's census. log may be nil (discard).
func (m *Metrics) RegisterCensus(src CensusSource, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &censusCollector{
		src: src, log: log, now: time.Now,
		backlog: prometheus.NewDesc("tokenstore_refresh_backlog_tokens",
			"Tokens due for refresh by the refresh rule and not yet refreshed (in flight, backing off, or waiting for the worker or a read), by provider refreshed here; from a query at most every 30 s.", []string{"provider"}, nil),
		reauth: prometheus.NewDesc("tokenstore_reauth_required_tokens",
			"Tokens whose user must reconnect (reauth_required), by provider; from a query at most every 30 s.", []string{"provider"}, nil),
		keyValues: prometheus.NewDesc("tokenstore_key_values",
			"Stored values (access, refresh and offline tokens, and deleted tokens kept until their upstream revocation) each key seals, by key id; from a query at most every 30 s.", []string{"key_id"}, nil),
		deliveries: prometheus.NewDesc("tokenstore_event_deliveries",
			"Event deliveries not delivered, by target (a webhook endpoint's name, or revocation) and state (pending, failed); from a query at most every 30 s.", []string{"target", "state"}, nil),
		deliveryOldest: prometheus.NewDesc("tokenstore_event_delivery_oldest_seconds",
			"Age of the oldest event among a target's deliveries in a state (pending: how far behind the target is), by target and state; from a query at most every 30 s.", []string{"target", "state"}, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokenstore_census_failures_total",
			Help: "Censuses of the store (the queries behind the backlog, reauth_required, key and delivery gauges) that failed; those gauges are then absent from the scrape.",
		}),
	}
	m.reg.MustRegister(c)
}

func (c *censusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.reauth
	ch <- c.keyValues
	ch <- c.deliveries
	ch <- c.deliveryOldest
	c.failures.Describe(ch)
}

// Collect exports the census's gauges and the failures counter after the
// census it took, so a scrape that lacks the gauges also counts their
// failure (a counter registered on its own could be read before it).
func (c *censusCollector) Collect(ch chan<- prometheus.Metric) {
	state, ok := c.current()
	c.failures.Collect(ch)
	if !ok {
		return
	}
	for p, n := range state.RefreshBacklog {
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n), string(p))
	}
	for p, n := range state.ReauthRequired {
		ch <- prometheus.MustNewConstMetric(c.reauth, prometheus.GaugeValue, float64(n), string(p))
	}
	for _, k := range state.ValuesByKey {
		ch <- prometheus.MustNewConstMetric(c.keyValues, prometheus.GaugeValue, float64(k.Values), string(k.KeyID))
	}
	for _, d := range state.Deliveries {
		ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.GaugeValue, float64(d.Count), d.Target, string(d.State))
		ch <- prometheus.MustNewConstMetric(c.deliveryOldest, prometheus.GaugeValue, d.Oldest.Seconds(), d.Target, string(d.State))
	}
}

// current is the cached census, taken anew when older than CensusMaxAge
// (or when the last one failed). Concurrent scrapes share one census.
func (c *censusCollector) current() (app.StoreState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && c.now().Sub(c.taken) < CensusMaxAge {
		return c.state, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), CensusTimeout)
	defer cancel()
	state, err := c.src.State(ctx)
	if err != nil {
		c.ok = false
		c.failures.Inc()
		c.log.Warn("metrics: the census of the store failed; its gauges are left out of this scrape", "err", err)
		return app.StoreState{}, false
	}
	c.state, c.taken, c.ok = state, c.now(), true
	return state, true
}

// NotificationQueueSource reads how full PostgreSQL's NOTIFY queue is
// (*postgres.Repository).
type NotificationQueueSource interface {
	NotificationQueueUsage(ctx context.Context) (float64, error)
}

// RegisterNotificationQueue exports how full PostgreSQL's NOTIFY queue is,
// read at each scrape (one small query, at most scrapeQueryTimeout): the
// read cache's change notifications pass through it, and a full queue
// fails every token write. A failed read leaves the gauge out of the
// scrape.
func (m *Metrics) RegisterNotificationQueue(src NotificationQueueSource) {
	m.reg.MustRegister(&notificationQueueCollector{src: src, usage: prometheus.NewDesc("tokenstore_notification_queue_usage_ratio",
		"Fraction (0 to 1) of PostgreSQL's NOTIFY queue in use (pg_notification_queue_usage()): it grows while a listening session lags, and when it is full every token write fails at commit. Absent when it could not be read.", nil, nil)})
}

// scrapeQueryTimeout bounds a query made during a scrape.
const scrapeQueryTimeout = 2 * time.Second

type notificationQueueCollector struct {
	src   NotificationQueueSource
	usage *prometheus.Desc
}

func (c *notificationQueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.usage }

func (c *notificationQueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	if usage, err := c.src.NotificationQueueUsage(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(c.usage, prometheus.GaugeValue, usage)
	}
}

// ReadCacheSource is the read cache's counters (*readcache.Repository).
type ReadCacheSource interface {
	Stats() readcache.Stats
}

// readCacheCollector reads the read cache's counters at each scrape.
type readCacheCollector struct {
	src ReadCacheSource

	reads, late, changes, drops, rows, waiting *prometheus.Desc
}

// RegisterReadCache exports the read cache's counters.
func (m *Metrics) RegisterReadCache(src ReadCacheSource) {
	m.reg.MustRegister(&readCacheCollector{
		src: src,
		reads: prometheus.NewDesc("tokenstore_read_cache_reads_total",
			"Token reads by how the read cache answered: hit (from memory), miss (from the database, kept when found and unchanged meanwhile), shared (the answer of another caller's read of the same row, under way when this one missed), bypass (from the database: no listener proved the cache up to date in time).", []string{"result"}, nil),
		late:    prometheus.NewDesc("tokenstore_read_cache_late_proofs_total", "Reads that went to the database because the proof that every change had been heard came later than read_cache.sync_timeout (each drops every kept row).", nil, nil),
		changes: prometheus.NewDesc("tokenstore_read_cache_changes_total", "Changes to stored rows heard (notifications and this instance's own writes), each dropping its row.", nil, nil),
		drops:   prometheus.NewDesc("tokenstore_read_cache_drops_total", "Times every kept row was dropped: a statement changing many rows, or the listening connection lost or lagging.", nil, nil),
		rows:    prometheus.NewDesc("tokenstore_read_cache_rows", "Sealed rows kept in memory now (estimate).", nil, nil),
		waiting: prometheus.NewDesc("tokenstore_read_cache_waiting_rows", "Rows whose next change a caller waits to hear (waits for another instance's refresh).", nil, nil),
	})
}

func (c *readCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.reads, c.late, c.changes, c.drops, c.rows, c.waiting} {
		ch <- d
	}
}

func (c *readCacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Hits), "hit")
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Misses), "miss")
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Shared), "shared")
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(s.Bypasses), "bypass")
	ch <- prometheus.MustNewConstMetric(c.changes, prometheus.CounterValue, float64(s.Changes))
	ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(s.Drops))
	ch <- prometheus.MustNewConstMetric(c.rows, prometheus.GaugeValue, float64(s.Rows))
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(s.Waiting))
	ch <- prometheus.MustNewConstMetric(c.late, prometheus.CounterValue, float64(s.Late))
}
