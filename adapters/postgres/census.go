package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.StoreCensus = (*Repository)(nil)

// CountRefreshBacklog implements ports.StoreCensus: one query per
// distinct margin (usually one), each reading through the refresh index
// only the rows that are due.
func (r *Repository) CountRefreshBacklog(ctx context.Context, margins map[domain.Provider]time.Duration, lifetimeFraction float64) (map[domain.Provider]int64, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	groups := map[time.Duration][]string{}
	for p, m := range margins {
		groups[m] = append(groups[m], string(p))
	}
	out := make(map[domain.Provider]int64, len(margins))
	for m, providers := range groups {
		rows, err := r.q.CountRefreshBacklog(ctx, r.pool, db.CountRefreshBacklogParams{
			Providers: providers, MarginSeconds: m.Seconds(), LifetimeFraction: lifetimeFraction,
		})
		if err != nil {
			return nil, fmt.Errorf("count refresh backlog: %w", interpretError(err, noEffect))
		}
		for _, row := range rows {
			out[domain.Provider(row.Provider)] = row.Due
		}
	}
	return out, nil
}

// CountReauthRequired implements ports.StoreCensus: one scan of
// auth_tokens (no index covers these rows).
func (r *Repository) CountReauthRequired(ctx context.Context) (map[domain.Provider]int64, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.CountReauthRequired(ctx, r.pool)
	if err != nil {
		return nil, fmt.Errorf("count reauth required: %w", interpretError(err, noEffect))
	}
	out := make(map[domain.Provider]int64, len(rows))
	for _, row := range rows {
		out[domain.Provider(row.Provider)] = row.ReauthRequired
	}
	return out, nil
}

// CountDeliveries implements ports.StoreCensus.
func (r *Repository) CountDeliveries(ctx context.Context) ([]domain.DeliveryCount, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.CountDeliveries(ctx, r.pool)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", interpretError(err, noEffect))
	}
	out := make([]domain.DeliveryCount, len(rows))
	for i, row := range rows {
		out[i] = domain.DeliveryCount{Target: row.Target, State: domain.DeliveryState(row.State), Count: row.Deliveries,
			Oldest: time.Duration(row.OldestSeconds * float64(time.Second))}
	}
	return out, nil
}
