package app

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Census counts what the store holds, for the metrics' gauges: the worker's
// backlog, tokens awaiting re-authorization, values per key. It asks the
// database each time it is called; the caller decides how often (the
// metrics cache it).
type Census struct {
	refreshes *RefreshCoordinator
	store     ports.StoreCensus
}

// NewCensus returns the census of store, judging the backlog by refreshes'
// providers, margins and lifetime fraction (TokenService.Refreshes).
func NewCensus(refreshes *RefreshCoordinator, store ports.StoreCensus) *Census {
	return &Census{refreshes: refreshes, store: store}
}

// StoreState is one census: counts by provider or key, no user, no token.
type StoreState struct {
	// RefreshBacklog: tokens due for refresh by the refresh rule and not
	// yet refreshed (in flight, backing off, or waiting for the worker or
	// a read), per provider refreshed here. Every such provider is
	// present, 0 when none is due.
	RefreshBacklog map[domain.Provider]int64
	// ReauthRequired: tokens whose user must reconnect, per provider that
	// has any.
	ReauthRequired map[domain.Provider]int64
	// ValuesByKey: stored values each key seals, deleted tokens kept
	// for a pending upstream revocation included
	// (ports.ReencryptionRepository.CountValuesByKey).
	ValuesByKey []domain.KeyUsage
	// Deliveries: deliveries pending or failed, per target and state
	// (ports.StoreCensus.CountDeliveries).
	Deliveries []domain.DeliveryCount
}

// State takes a census: four aggregate queries.
func (c *Census) State(ctx context.Context) (StoreState, error) {
	providers := c.refreshes.Providers()
	byProvider := make(map[domain.Provider]int64, len(providers))
	if len(providers) > 0 {
		m := make(map[domain.Provider]time.Duration, len(providers))
		for _, p := range providers {
			m[p] = c.refreshes.Margin(p)
		}
		due, err := c.store.CountRefreshBacklog(ctx, m, c.refreshes.LifetimeFraction())
		if err != nil {
			return StoreState{}, fmt.Errorf("refresh backlog: %w", err)
		}
		for _, p := range providers {
			byProvider[p] = due[p]
		}
	}
	reauth, err := c.store.CountReauthRequired(ctx)
	if err != nil {
		return StoreState{}, fmt.Errorf("reauth required: %w", err)
	}
	keys, err := c.store.CountValuesByKey(ctx)
	if err != nil {
		return StoreState{}, fmt.Errorf("values by key: %w", err)
	}
	deliveries, err := c.store.CountDeliveries(ctx)
	if err != nil {
		return StoreState{}, fmt.Errorf("deliveries: %w", err)
	}
	return StoreState{RefreshBacklog: byProvider, ReauthRequired: reauth, ValuesByKey: keys, Deliveries: deliveries}, nil
}
