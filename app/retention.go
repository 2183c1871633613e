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

// AuditRetention removes audit events older than the retention, the only
// way events leave the trail: in batches of AuditRetentionBatch, at start
// and every AuditRetentionInterval. Every instance runs it; concurrent
// deletes of the same old rows are harmless (each row goes once).
type AuditRetention struct {
	store     ports.AuditRetention
	retention time.Duration // 0: keep forever
	interval  time.Duration
	batch     int
	log       *slog.Logger
	job       background
}

// NewAuditRetention returns the loop; retention 0 keeps events forever.
// log may be nil (discard).
func NewAuditRetention(retention time.Duration, log *slog.Logger, store ports.AuditRetention) *AuditRetention {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AuditRetention{store: store, retention: retention, interval: AuditRetentionInterval, batch: AuditRetentionBatch, log: log}
}

// RunOnce removes old events, batch by batch, until a batch comes back
// short (none older left) or after a bounded number of batches, and
// reports how many it removed.
func (r *AuditRetention) RunOnce(ctx context.Context) (int64, error) {
	if r.retention <= 0 {
		return 0, nil
	}
	var total int64
	for range auditRetentionRounds {
		n, err := r.store.DeleteExpiredAuditEvents(ctx, r.retention, r.batch)
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
func (r *AuditRetention) Start(context.Context) error {
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
				r.log.Warn("audit retention failed; old events stay until the next pass", "removed", n, "err", err)
			case n > 0:
				r.log.Info("audit retention removed old events", "removed", n, "older_than", r.retention.String())
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
func (r *AuditRetention) Stop(ctx context.Context) error {
	return r.job.stop(ctx)
}
