package memrepo

import (
	"context"
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
	policy domain.EventPolicy
	xact   uint64
	seq    int64
	events []domain.Event
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
		if !o.policy.Allows(e.Kind) {
			continue
		}
		o.seq++
		e.Cursor, e.OccurredAt = domain.EventCursor{Xact: o.xact, Seq: o.seq}, now
		o.events = append(o.events, e)
	}
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
	var n int64
	for _, e := range r.outbox.events {
		if n < int64(min(max(limit, 0), 10_000)) && e.OccurredAt.Before(cutoff) {
			n++
			continue
		}
		kept = append(kept, e)
	}
	r.outbox.events = kept
	return n, nil
}
