package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/tokenstore/tokenstore/ports"
)

// Defaults of the audit retention loop.
const (
	// DefaultAuditRetention is how long audit events are kept: 400 days.
	DefaultAuditRetention = 400 * 24 * time.Hour
	// AuditRetentionInterval is how often the loop looks for old events.
	AuditRetentionInterval = time.Hour
	// AuditRetentionBatch is how many events one delete removes at most,
	// so each transaction is short and no lock is held long.
	AuditRetentionBatch = 1000
	// auditRetentionRounds bounds the batches of one pass; the next pass
	// continues.
	auditRetentionRounds = 100
)

// retentionLoop removes rows older than a retention, the only way they
// leave their table: in batches of batch, at start and every interval.
// Every instance runs it; concurrent deletes of the same old rows are
// harmless (each row goes once). AuditRetention and EventRetention are
// its two uses.
type retentionLoop struct {
	what      string // "audit" or "event", for the log
	remove    func(ctx context.Context, retention time.Duration, limit int) (int64, error)
	retention time.Duration // 0: keep forever
	interval  time.Duration
	batch     int
	log       *slog.Logger
	job       background
}

func newRetentionLoop(what string, retention time.Duration, log *slog.Logger, remove func(context.Context, time.Duration, int) (int64, error)) retentionLoop {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return retentionLoop{what: what, remove: remove, retention: retention, interval: AuditRetentionInterval, batch: AuditRetentionBatch, log: log}
}

// RunOnce removes old rows, batch by batch, until a batch comes back
// short (none older left) or after a bounded number of batches, and
// reports how many it removed.
func (r *retentionLoop) RunOnce(ctx context.Context) (int64, error) {
	if r.retention <= 0 {
		return 0, nil
	}
	var total int64
	for range auditRetentionRounds {
		n, err := r.remove(ctx, r.retention, r.batch)
		total += n
		if err != nil {
			return total, err
		}
		if n < int64(r.batch) {
			break
		}
	}
	return total, nil
}

// Start runs the loop in the background until Stop.
func (r *retentionLoop) Start(context.Context) error {
	if r.retention <= 0 {
		return nil
	}
	r.job.start(func(ctx context.Context) {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			n, err := r.RunOnce(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Warn(r.what+" retention failed; old events stay until the next pass", "removed", n, "err", err)
			case n > 0:
				r.log.Info(r.what+" retention removed old events", "removed", n, "older_than", r.retention.String())
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}

// Stop ends the loop.
func (r *retentionLoop) Stop(ctx context.Context) error {
	return r.job.stop(ctx)
}

// AuditRetention removes audit events older than the retention, the only
// way events leave the trail: in batches of AuditRetentionBatch, at start
// and every AuditRetentionInterval (RunOnce, Start, Stop).
type AuditRetention struct{ retentionLoop }

// NewAuditRetention returns the loop; retention 0 keeps events forever.
// log may be nil (discard).
func NewAuditRetention(retention time.Duration, log *slog.Logger, store ports.AuditRetention) *AuditRetention {
	return &AuditRetention{newRetentionLoop("audit", retention, log, store.DeleteExpiredAuditEvents)}
}

// DefaultEventRetention is how long outbox events are kept: 7 days, long
// enough for a feed reader down over a long weekend to catch up.
const DefaultEventRetention = 7 * 24 * time.Hour

// EventRetention removes outbox events older than the retention (by the
// database's clock), as AuditRetention does audit events: in batches, at
// start and every AuditRetentionInterval. A feed reader whose cursor
// points before the oldest event kept continues with the oldest kept.
type EventRetention struct{ retentionLoop }

// NewEventRetention returns the loop; retention 0 keeps events forever.
// log may be nil (discard).
func NewEventRetention(retention time.Duration, log *slog.Logger, store ports.EventRetention) *EventRetention {
	return &EventRetention{newRetentionLoop("event", retention, log, store.DeleteExpiredEvents)}
}
