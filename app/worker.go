package app

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// WorkerConfig tunes the proactive refresher. The zero value is disabled.
type WorkerConfig struct {
	// Enabled turns the worker on.
	Enabled bool
	// Interval between scans; each waits Interval ±20% so instances drift
	// apart. Default 1m.
	Interval time.Duration
	// Lookahead: tokens that will enter the refresh margin within it are
	// refreshed now, before any caller has to wait. Default 2×Interval. It
	// does not apply to providers that revoke the previous access token
	// (domain.RefreshHorizon).
	Lookahead time.Duration
	// Batch is how many tokens one scan claims at most. Default 50.
	Batch int
	// Concurrency is how many provider calls one scan makes at once. Default 4.
	Concurrency int
}

func (c WorkerConfig) withDefaults() WorkerConfig {
	if c.Interval <= 0 {
		c.Interval = DefaultWorkerInterval
	}
	if c.Lookahead <= 0 {
		c.Lookahead = 2 * c.Interval
	}
	if c.Batch <= 0 {
		c.Batch = DefaultWorkerBatch
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultWorkerConcurrency
	}
	return c
}

// RefreshWorker refreshes tokens shortly before they enter the refresh
// margin, so readers rarely wait for a provider. Instances share the work:
// each scan leases a disjoint batch (ports.RefreshQueue) and refreshes it
// through the same leased, fenced protocol as a read (RefreshCoordinator).
type RefreshWorker struct {
	refreshes *RefreshCoordinator
	queue     ports.RefreshQueue
	cfg       WorkerConfig
	log       *slog.Logger

	job background
}

// NewRefreshWorker returns the worker; Start runs it. refreshes is the
// service's protocol (TokenService.Refreshes); queue is the storage the
// service's repository uses. log may be nil (discard).
func NewRefreshWorker(cfg WorkerConfig, refreshes *RefreshCoordinator, queue ports.RefreshQueue, log *slog.Logger) *RefreshWorker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RefreshWorker{refreshes: refreshes, queue: queue, cfg: cfg.withDefaults(), log: log}
}

// Start runs scans in the background until Stop. It does nothing when the
// worker is disabled or no provider is configured for refresh.
func (w *RefreshWorker) Start(context.Context) error {
	if !w.cfg.Enabled || len(w.refreshes.Providers()) == 0 {
		return nil
	}
	w.job.start(w.loop)
	return nil
}

// Stop ends the worker and waits for the scan in progress, whose provider
// calls are bounded by their timeouts, or for ctx to end.
func (w *RefreshWorker) Stop(ctx context.Context) error {
	return w.job.stop(ctx)
}

func (w *RefreshWorker) loop(ctx context.Context) {
	for {
		jitter := 0.8 + 0.4*rand.Float64()
		t := time.NewTimer(time.Duration(float64(w.cfg.Interval) * jitter))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if n, err := w.RunOnce(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("proactive refresh scan failed", "err", err)
		} else if n > 0 {
			w.log.Info("proactive refresh scan", "refreshed", n)
		}
	}
}

// RunOnce marks rows whose refresh lease lapsed (see
// ports.RefreshQueue.MarkLapsedLeases; each marked row records a
// reauth_required event), then refreshes up to Batch tokens
// due for refresh and returns how many were refreshed successfully. It
// claims Concurrency rows at a time and refreshes them at once, so a lease
// never waits for a free slot: a row claimed but started late would see its
// lease lapse, and a lapsed lease means the user must reconnect. A stopped
// worker claims nothing more.
func (w *RefreshWorker) RunOnce(ctx context.Context) (int, error) {
	providers := w.refreshes.Providers()
	if len(providers) == 0 {
		return 0, nil
	}
	if n, err := w.refreshes.markLapsedLeases(ctx, w.queue); err != nil {
		return 0, err
	} else if n > 0 {
		w.log.Warn("refreshes were interrupted after their lease lapsed; those users must reconnect", "rows", n)
	}
	// Providers with the same horizon and revocation share a claim; each
	// group's horizon is domain.RefreshHorizon: the margin plus the
	// lookahead, but only the margin for providers that revoke the previous
	// access token, whose refresh must not come before the expiry reported
	// with the token it kills (domain.RefreshView.ReportedExpiry). The claim
	// caps it per token at the lifetime fraction of its lifetime
	// (domain.EffectiveMargin): the worker refreshes a short-lived token no
	// earlier than a reader would.
	type group struct {
		horizon time.Duration
		revokes bool
	}
	groups := map[group][]domain.Provider{}
	for _, p := range providers {
		revokes := w.refreshes.RevokesPreviousAccessToken(p)
		g := group{domain.RefreshHorizon(w.refreshes.Margin(p), w.cfg.Lookahead, revokes), revokes}
		groups[g] = append(groups[g], p)
	}
	refreshed, claimedTotal := 0, 0
	for g, members := range groups {
		n, claimed, err := w.runGroup(ctx, members, g.horizon, g.revokes, w.cfg.Batch-claimedTotal)
		refreshed += n
		claimedTotal += claimed
		if err != nil {
			return refreshed, err
		}
	}
	return refreshed, nil
}

// runGroup refreshes up to budget due tokens of providers, Concurrency at a
// time. It returns how many it refreshed and how many it claimed.
func (w *RefreshWorker) runGroup(ctx context.Context, providers []domain.Provider, horizon time.Duration, revokes bool, budget int) (int, int, error) {
	refreshed, claimedTotal := 0, 0
	for claimedTotal < budget && ctx.Err() == nil {
		n := min(w.cfg.Concurrency, budget-claimedTotal)
		claimed, err := w.queue.ClaimDueRefreshes(ctx, ports.RefreshClaim{
			Owner: w.refreshes.NewAttempt(), Providers: providers,
			Lease: w.refreshes.Lease(), Horizon: horizon, RevokesPreviousAccessToken: revokes,
			LifetimeFraction: w.refreshes.LifetimeFraction(), Limit: n,
		})
		if err != nil {
			return refreshed, claimedTotal, err
		}
		if len(claimed) == 0 {
			break
		}
		claimedTotal += len(claimed)
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for _, lease := range claimed {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Runs to completion even if the worker is stopped:
				// abandoning it would let the lease lapse.
				if _, err := w.refreshes.RefreshLeased(ctx, lease); err == nil {
					mu.Lock()
					refreshed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(claimed) < n {
			break // nothing more is due
		}
	}
	return refreshed, claimedTotal, nil
}
