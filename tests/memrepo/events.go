package memrepo

import (
	"context"
	"slices"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var (
	_ ports.EventFeed      = (*Repository)(nil)
	_ ports.EventRetention = (*Repository)(nil)
)

// outbox is the in-memory event outbox: each write is one transaction
// (Xact), committed in the order it ran, so the list is in commit order.
type outbox struct {
	policy     domain.EventPolicy
	xact       uint64
	seq        int64
	events     []domain.Event
	sealed     map[int64]domain.SealedRevocation // by event Seq: tokens kept for revocation
	targets    map[string]*target                // webhook endpoints by name
	deliveries []*domain.Delivery                // in the commit order of their events
}

// target is a webhook endpoint's fan-out state.
type target struct {
	url   string
	after domain.EventCursor
	gone  bool
}

// SetEventPolicy chooses the events the writes store from now on
// (postgres.Options.Events).
func (r *Repository) SetEventPolicy(p domain.EventPolicy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outbox.policy = p
}

// write appends one write's events the policy allows, as one transaction
// at now. r.mu is held.
func (r *Repository) write(now time.Time, events ...domain.Event) {
	o := &r.outbox
	o.xact++
	for _, e := range events {
		if o.policy.Allows(e.Kind) {
			o.append(e, now)
		}
	}
}

// append adds e to the current transaction at now and returns it. r.mu is
// held.
func (o *outbox) append(e domain.Event, now time.Time) domain.Event {
	o.seq++
	e.Cursor, e.OccurredAt = domain.EventCursor{Xact: o.xact, Seq: o.seq}, now
	o.events = append(o.events, e)
	return e
}

// writeRevocation appends, as one transaction, e carrying tokens and its
// delivery to domain.RevocationTarget, whatever the policy. r.mu is held.
func (r *Repository) writeRevocation(now time.Time, e domain.Event, tokens domain.SealedRevocation) {
	o := &r.outbox
	o.xact++
	e = o.append(e, now)
	if o.sealed == nil {
		o.sealed = map[int64]domain.SealedRevocation{}
	}
	o.sealed[e.Cursor.Seq] = tokens
	o.deliveries = append(o.deliveries, &domain.Delivery{Target: domain.RevocationTarget, Event: e, State: domain.DeliveryPending, RetryFrom: e.OccurredAt, NextAttemptAt: now})
}

// ListEvents implements ports.EventFeed.
func (r *Repository) ListEvents(ctx context.Context, f domain.EventFilter, after domain.EventCursor, limit int) ([]domain.Event, domain.EventCursor, error) {
	if err := ctx.Err(); err != nil {
		return nil, after, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []domain.Event{}
	for _, e := range r.outbox.events {
		if len(out) >= min(max(limit, 0), 10_000) {
			break
		}
		if after.Less(e.Cursor) && f.Matches(e) {
			out = append(out, e)
			after = e.Cursor
		}
	}
	return out, after, nil
}

// DeleteExpiredEvents implements ports.EventRetention.
func (r *Repository) DeleteExpiredEvents(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cutoff := r.now().Add(-retention)
	kept := r.outbox.events[:0]
	removed := map[int64]bool{}
	for _, e := range r.outbox.events {
		if len(removed) < min(max(limit, 0), 10_000) && e.OccurredAt.Before(cutoff) {
			removed[e.Cursor.Seq] = true
			delete(r.outbox.sealed, e.Cursor.Seq)
			continue
		}
		kept = append(kept, e)
	}
	r.outbox.events = kept
	r.outbox.deliveries = slices.DeleteFunc(r.outbox.deliveries, func(d *domain.Delivery) bool { return removed[d.Event.Cursor.Seq] })
	return int64(len(removed)), nil
}
