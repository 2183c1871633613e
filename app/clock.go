package app

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Defaults of the clock skew measurement.
const (
	// SkewInterval is how often SkewMonitor measures the skew.
	SkewInterval = time.Minute
	// SkewWarning is the skew above which SkewMonitor logs a warning.
	SkewWarning = time.Second
	// skewSamples is how many exchanges one measurement makes; the one with
	// the shortest round trip is the most precise.
	skewSamples = 3
)

// Clock is the two clocks that judge a token: the service's own and the
// database's, estimated from the service's and the last measured skew
// (SkewMonitor). Leases and back-offs are set and judged by the database's
// clock, which every instance shares; a token is handed out only if neither
// clock says it has expired or is inside its margin
// (domain.RefreshView.TwoClocks). Safe for concurrent use.
type Clock struct {
	now      func() time.Time
	skew     atomic.Int64 // the database's clock minus the service's, in ns
	measured atomic.Bool
}

// newClock returns a Clock on now (nil: time.Now) with no skew measured yet.
func newClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Service is the service's clock.
func (c *Clock) Service() time.Time { return c.now() }

// Database estimates the database's clock: the service's plus the last
// measured skew (the service's clock until one is measured).
func (c *Clock) Database() time.Time { return c.now().Add(time.Duration(c.skew.Load())) }

// ServiceTime converts an instant on the database's clock (a back-off's
// end) to the service's, by the last measured skew.
func (c *Clock) ServiceTime(db time.Time) time.Time { return db.Add(-time.Duration(c.skew.Load())) }

// after is the instant wait from now on each clock, from one reading.
func (c *Clock) after(wait time.Duration) (db, service time.Time) {
	service = c.now().Add(wait)
	return service.Add(time.Duration(c.skew.Load())), service
}

// Later is the later of the two clocks: an expiry passed by either has
// passed.
func (c *Clock) Later() time.Time {
	now := c.now()
	return domain.Later(now, now.Add(time.Duration(c.skew.Load())))
}

// Skew is the last measured skew (the database's clock minus the service's)
// and whether one was measured.
func (c *Clock) Skew() (time.Duration, bool) {
	return time.Duration(c.skew.Load()), c.measured.Load()
}

func (c *Clock) setSkew(d time.Duration) {
	c.skew.Store(int64(d))
	c.measured.Store(true)
}

// SkewMonitor measures how far the database's clock is from the service's,
// at Start and every SkewInterval, for Clock; it logs a warning when they
// are more than SkewWarning apart.
type SkewMonitor struct {
	clock *Clock
	db    ports.DatabaseClock
	log   *slog.Logger

	job background
}

// NewSkewMonitor returns the monitor of clock (TokenService.Clock) against
// db; Start runs it. log may be nil (discard).
func NewSkewMonitor(clock *Clock, db ports.DatabaseClock, log *slog.Logger) *SkewMonitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SkewMonitor{clock: clock, db: db, log: log}
}

// Start measures the skew once, so the first requests are judged with it,
// then again every SkewInterval until Stop. A failed measurement is
// logged, not fatal: the last one (or none: the service's clock alone)
// stays in use.
func (m *SkewMonitor) Start(ctx context.Context) error {
	m.measureAndLog(ctx)
	m.job.every(SkewInterval, m.measureAndLog)
	return nil
}

// Stop ends the measurements.
func (m *SkewMonitor) Stop(ctx context.Context) error {
	return m.job.stop(ctx)
}

func (m *SkewMonitor) measureAndLog(ctx context.Context) {
	skew, uncertainty, err := m.Measure(ctx)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			m.log.Warn("could not measure the database's clock; the last measured skew stays in use", "err", err)
		}
	case skew > SkewWarning || skew < -SkewWarning:
		m.log.Warn("the database's clock and this instance's disagree; tokens are judged by the later of the two, "+
			"leases by the database's: synchronise the clocks (NTP)",
			"database_clock_skew", skew.Round(time.Millisecond), "uncertainty", uncertainty.Round(time.Millisecond))
	default:
		m.log.Debug("database clock skew measured", "database_clock_skew", skew, "uncertainty", uncertainty)
	}
}

// Measure reads the database's clock a few times and keeps the estimate
// with the shortest round trip (domain.ClockSkew: the answer taken as read
// in the middle of the round trip), stores it in the Clock and returns it
// with its uncertainty (half that round trip).
func (m *SkewMonitor) Measure(ctx context.Context) (skew, uncertainty time.Duration, err error) {
	best := time.Duration(-1)
	for range skewSamples {
		sent := m.clock.Service()
		remote, err := m.db.DatabaseNow(ctx)
		received := m.clock.Service()
		if err != nil {
			return 0, 0, err
		}
		s, u := domain.ClockSkew(sent, remote, received)
		if best < 0 || u < best {
			skew, best = s, u
		}
	}
	m.clock.setSkew(skew)
	return skew, best, nil
}
