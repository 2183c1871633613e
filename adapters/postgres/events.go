package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var (
	_ ports.EventFeed      = (*Repository)(nil)
	_ ports.EventRetention = (*Repository)(nil)
)

// insertEvents inserts, in the change's transaction tx, the outbox events
// of the change that the policy allows (nothing when none).
func (r *Repository) insertEvents(ctx context.Context, tx pgx.Tx, events []domain.Event) error {
	var p db.InsertEventsParams
	for _, e := range events {
		if !r.events.Allows(e.Kind) {
			continue
		}
		p.Kinds = append(p.Kinds, string(e.Kind))
		p.UserIds = append(p.UserIds, string(e.User))
		p.Providers = append(p.Providers, string(e.Provider))
		p.Reasons = append(p.Reasons, e.Reason)
	}
	if len(p.Kinds) == 0 {
		return nil
	}
	if _, err := r.q.InsertEvents(ctx, tx, p); err != nil {
		return fmt.Errorf("write %d outbox events: %w", len(p.Kinds), interpretError(err, noEffect))
	}
	return nil
}

// ListEvents implements ports.EventFeed: one statement, whose snapshot
// both lists the events and bounds them to finished transactions (see
// 00011_events.sql).
func (r *Repository) ListEvents(ctx context.Context, f domain.EventFilter, after domain.EventCursor, limit int) ([]domain.Event, domain.EventCursor, error) {
	providers := make([]string, len(f.Providers))
	for i, p := range f.Providers {
		providers[i] = string(p)
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.ListEvents(ctx, r.pool, db.ListEventsParams{
		AfterXact: int64(after.Xact), AfterID: after.Seq, UserPrefix: f.UserPrefix, Providers: providers,
		MaxRows: int32(min(max(limit, 0), 10_000)),
	})
	if err != nil {
		return nil, after, fmt.Errorf("list events: %w", interpretError(err, noEffect))
	}
	out := make([]domain.Event, len(rows))
	for i, row := range rows {
		out[i] = outboxEvent(row.XactID, row.ID, row.Kind, row.UserID, row.Provider, row.Reason, row.OccurredAt)
		after = out[i].Cursor
	}
	return out, after, nil
}

// outboxEvent is an events row's columns as a domain.Event.
func outboxEvent(xact, id int64, kind, user, provider, reason string, at time.Time) domain.Event {
	return domain.Event{
		Cursor: domain.EventCursor{Xact: uint64(xact), Seq: id},
		Kind:   domain.EventKind(kind), User: domain.UserID(user), Provider: domain.Provider(provider),
		Reason: reason, OccurredAt: at,
	}
}

// DeleteExpiredEvents implements ports.EventRetention.
func (r *Repository) DeleteExpiredEvents(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	n, err := r.q.DeleteExpiredEvents(ctx, r.pool, db.DeleteExpiredEventsParams{
		RetentionSeconds: retention.Seconds(), MaxRows: int32(min(max(limit, 0), 10_000)),
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired events: %w", interpretError(err, mayHaveApplied))
	}
	return n, nil
}
