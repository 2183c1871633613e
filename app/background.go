package app

import (
	"context"
	"time"
)

// background is one goroutine that runs until stopped: the plumbing the
// periodic jobs (RefreshWorker, SkewMonitor, AuditRetention, KeyringHeartbeat) share. The
// zero value is stopped; stop on a background never started does nothing.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs fn in a goroutine with a context that ends at stop. The
// context does not derive from a start-up context: the job outlives start.
func (b *background) start(fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		fn(ctx)
	}()
}

// every runs fn every interval (the first time one interval after the
// call) in the background until stop; a job that must run once before it
// starts calls fn itself first.
func (b *background) every(interval time.Duration, fn func(ctx context.Context)) {
	b.start(func(ctx context.Context) {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fn(ctx)
			}
		}
	})
}

// stop ends the goroutine and waits for it, or for ctx to end.
func (b *background) stop(ctx context.Context) error {
	if b.cancel == nil {
		return nil
	}
	b.cancel()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
