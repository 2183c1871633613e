package memrepo

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var (
	_ ports.DeliveryQueue = (*Repository)(nil)
	_ ports.DeliveryAdmin = (*Repository)(nil)
)

// RegisterEventTarget implements ports.DeliveryQueue.
func (r *Repository) RegisterEventTarget(ctx context.Context, name, url string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := &r.outbox
	if t, ok := o.targets[name]; ok {
		if t.url != url {
			t.url, t.gone = url, false
		}
		return nil
	}
	if o.targets == nil {
		o.targets = map[string]*target{}
	}
	var end domain.EventCursor
	if n := len(o.events); n > 0 {
		end = o.events[n-1].Cursor
	}
	o.targets[name] = &target{url: url, after: end}
	return nil
}

// MarkEventTargetGone implements ports.DeliveryQueue.
func (r *Repository) MarkEventTargetGone(ctx context.Context, name, lastError string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if t, ok := r.outbox.targets[name]; ok {
		t.gone = true
	}
	var n int64
	for _, d := range r.outbox.deliveries {
		if d.Target == name && d.State == domain.DeliveryPending {
			d.State, d.LastStatus, d.LastError, d.FinishedAt = domain.DeliveryFailed, 410, lastError, now
			d.LeaseOwner, d.LeaseUntil = "", time.Time{}
			n++
		}
	}
	return n, nil
}

// gone reports whether the endpoint name is marked gone. r.mu is held.
func (o *outbox) gone(name string) bool {
	t, ok := o.targets[name]
	return ok && t.gone
}

// FanOutEvents implements ports.DeliveryQueue.
func (r *Repository) FanOutEvents(ctx context.Context, target string, kinds []domain.EventKind, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	o := &r.outbox
	t, ok := o.targets[target]
	if !ok || t.gone {
		return 0, nil
	}
	after := t.after
	scanned := 0
	for _, e := range o.events {
		if scanned >= min(max(limit, 1), 10_000) {
			break
		}
		if !after.Less(e.Cursor) {
			continue
		}
		scanned++
		after = e.Cursor
		if slices.Contains(kinds, e.Kind) && o.delivery(target, e.Cursor.Seq) == nil {
			o.deliveries = append(o.deliveries, &domain.Delivery{Target: target, Event: e, State: domain.DeliveryPending, RetryFrom: e.OccurredAt, NextAttemptAt: r.now()})
		}
	}
	t.after = after
	o.sortDeliveries()
	return scanned, nil
}

// ClaimDeliveries implements ports.DeliveryQueue.
func (r *Repository) ClaimDeliveries(ctx context.Context, target, owner string, lease time.Duration, limit int) ([]domain.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	o := &r.outbox
	if o.gone(target) {
		return nil, nil
	}
	blocked := map[key]bool{} // an earlier delivery of the user and provider is pending
	var out []domain.Delivery
	for _, d := range o.deliveries {
		if d.Target != target || d.State != domain.DeliveryPending {
			continue
		}
		k := key{d.Event.User, d.Event.Provider}
		first := !blocked[k]
		blocked[k] = true
		if !first || d.NextAttemptAt.After(now) || (d.LeaseOwner != "" && d.LeaseUntil.After(now)) || len(out) >= min(max(limit, 1), 1000) {
			continue
		}
		d.Attempt++
		d.LeaseOwner, d.LeaseUntil = owner, now.Add(lease)
		// What the PostgreSQL adapter returns of a claim, and no more.
		c := domain.Delivery{Target: d.Target, Event: d.Event, State: d.State, Attempt: d.Attempt, RetryFrom: d.RetryFrom, LeaseOwner: owner}
		if t, ok := o.sealed[d.Event.Cursor.Seq]; ok && d.Target == domain.RevocationTarget {
			c.Tokens = &domain.SealedRevocation{KeyID: t.KeyID, AccessToken: bytes.Clone(t.AccessToken), RefreshToken: bytes.Clone(t.RefreshToken)}
		}
		out = append(out, c)
	}
	return out, nil
}

// FinishDelivery implements ports.DeliveryQueue.
func (r *Repository) FinishDelivery(ctx context.Context, d domain.Delivery, outcome domain.DeliveryOutcome) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := domain.ParseDeliveryState(string(outcome.State)); !ok {
		return false, fmt.Errorf("finish delivery: %w: state %q", domain.ErrInvalid, outcome.State) // PostgreSQL's CHECK refuses it
	}
	o := &r.outbox
	cur := o.delivery(d.Target, d.Event.Cursor.Seq)
	if cur == nil || cur.State != domain.DeliveryPending || cur.Attempt != d.Attempt || !cur.RetryFrom.Equal(d.RetryFrom) {
		return false, nil
	}
	now := r.now()
	cur.State, cur.LastStatus, cur.LastError = outcome.State, outcome.Status, outcome.Error
	cur.LeaseOwner, cur.LeaseUntil = "", time.Time{}
	if outcome.State == domain.DeliveryPending {
		cur.NextAttemptAt = outcome.NextAttemptAt
	} else {
		cur.FinishedAt = now
	}
	if outcome.ForgetTokens {
		delete(o.sealed, d.Event.Cursor.Seq)
	}
	r.write(now, outcome.Events...)
	return true, nil
}

// ListDeliveries implements ports.DeliveryAdmin.
func (r *Repository) ListDeliveries(ctx context.Context, f domain.DeliveryFilter, limit int) ([]domain.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []domain.Delivery{}
	for _, d := range r.outbox.deliveries {
		if len(out) >= min(max(limit, 0), 10_000) {
			break
		}
		if f.Matches(*d) {
			out = append(out, *d)
		}
	}
	return out, nil
}

// RedeliverDeliveries implements ports.DeliveryAdmin.
func (r *Repository) RedeliverDeliveries(ctx context.Context, eventID int64, target string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var n int64
	for _, d := range r.outbox.deliveries {
		_, sealed := r.outbox.sealed[d.Event.Cursor.Seq]
		switch {
		case d.State == domain.DeliveryPending,
			eventID == 0 && d.State != domain.DeliveryFailed,
			eventID != 0 && d.Event.Cursor.Seq != eventID,
			target != "" && d.Target != target,
			d.Target == domain.RevocationTarget && !sealed:
			continue
		}
		*d = domain.Delivery{Target: d.Target, Event: d.Event, State: domain.DeliveryPending, RetryFrom: now, NextAttemptAt: now}
		if t, ok := r.outbox.targets[d.Target]; ok {
			t.gone = false
		}
		n++
	}
	return n, nil
}

// delivery finds target's delivery of event seq, or nil.
func (o *outbox) delivery(target string, seq int64) *domain.Delivery {
	for _, d := range o.deliveries {
		if d.Target == target && d.Event.Cursor.Seq == seq {
			return d
		}
	}
	return nil
}

// sortDeliveries keeps deliveries in their events' commit order, then by
// target, as the PostgreSQL adapter lists them.
func (o *outbox) sortDeliveries() {
	slices.SortStableFunc(o.deliveries, func(a, b *domain.Delivery) int {
		switch {
		case a.Event.Cursor.Less(b.Event.Cursor):
			return -1
		case b.Event.Cursor.Less(a.Event.Cursor):
			return 1
		case a.Target < b.Target:
			return -1
		case a.Target > b.Target:
			return 1
		}
		return 0
	})
}
