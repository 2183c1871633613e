package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var (
	_ ports.DeliveryQueue = (*Repository)(nil)
	_ ports.DeliveryAdmin = (*Repository)(nil)
)

// RegisterEventTarget implements ports.DeliveryQueue.
// The URL is stored as its SHA-256 (event_targets.url_sha256): enough to
// see it change, and a URL's query may hold the receiver's own token.
func (r *Repository) RegisterEventTarget(ctx context.Context, target, url string) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	sum := sha256.Sum256([]byte(url))
	if err := r.q.RegisterEventTarget(ctx, r.pool, db.RegisterEventTargetParams{Name: target, UrlSha256: hex.EncodeToString(sum[:])}); err != nil {
		return fmt.Errorf("register event target %s: %w", target, interpretError(err, mayHaveApplied))
	}
	return nil
}

// MarkEventTargetGone implements ports.DeliveryQueue.
func (r *Repository) MarkEventTargetGone(ctx context.Context, target, lastError string) (int64, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var n int64
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		if err := r.q.MarkEventTargetGone(ctx, tx, target); err != nil {
			return interpretError(err, noEffect)
		}
		var err error
		n, err = r.q.FailGoneDeliveries(ctx, tx, db.FailGoneDeliveriesParams{Target: target, LastError: lastError})
		return interpretError(err, noEffect)
	})
	if err != nil {
		return 0, fmt.Errorf("mark event target %s gone: %w", target, err)
	}
	return n, nil
}

// FanOutEvents implements ports.DeliveryQueue in one statement (see
// sql/queries/deliveries.sql).
func (r *Repository) FanOutEvents(ctx context.Context, target string, kinds []domain.EventKind, limit int) (int, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	row, err := r.q.FanOutEvents(ctx, r.pool, db.FanOutEventsParams{Target: target, Kinds: names, MaxRows: int32(min(max(limit, 1), 10_000))})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("queue events for %s: %w", target, interpretError(err, mayHaveApplied))
	}
	return int(row.Scanned), nil
}

// ClaimDeliveries implements ports.DeliveryQueue.
func (r *Repository) ClaimDeliveries(ctx context.Context, target, owner string, lease time.Duration, limit int) ([]domain.Delivery, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.ClaimDeliveries(ctx, r.pool, db.ClaimDeliveriesParams{
		Target: target, Owner: owner, LeaseSeconds: lease.Seconds(), MaxRows: int32(min(max(limit, 1), 1000)),
	})
	if err != nil {
		// A claim that may have committed leaves leases that lapse: the
		// deliveries are sent later, never lost.
		return nil, fmt.Errorf("claim deliveries for %s: %w", target, interpretError(err, mayHaveApplied))
	}
	out := make([]domain.Delivery, len(rows))
	for i, row := range rows {
		d := domain.Delivery{
			Target: row.Target, State: domain.DeliveryPending, Attempt: int(row.Attempts),
			RetryFrom: row.RetryFrom, LeaseOwner: owner,
			Event: outboxEvent(row.XactID, row.EventID, row.Kind, row.UserID, row.Provider, row.Reason, row.OccurredAt),
		}
		if row.KeyID != nil && row.Target == domain.RevocationTarget { // never down a webhook's path
			d.Tokens = &domain.SealedRevocation{KeyID: domain.KeyID(*row.KeyID), AccessToken: row.AccessToken, RefreshToken: row.RefreshToken}
		}
		out[i] = d
	}
	return out, nil
}

// FinishDelivery implements ports.DeliveryQueue.
func (r *Repository) FinishDelivery(ctx context.Context, d domain.Delivery, o domain.DeliveryOutcome) (bool, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	recorded := false
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		n, err := r.q.FinishDelivery(ctx, tx, db.FinishDeliveryParams{
			Target: d.Target, EventID: d.Event.Cursor.Seq, Attempt: int32(d.Attempt), RetryFrom: d.RetryFrom,
			State: string(o.State), NextAttemptAt: o.NextAttemptAt,
			LastStatus: int32(o.Status), LastError: o.Error,
		})
		if err != nil {
			return interpretError(err, noEffect)
		}
		if n == 0 {
			return nil
		}
		recorded = true
		if o.ForgetTokens {
			if err := r.q.ForgetRevokedTokens(ctx, tx, d.Event.Cursor.Seq); err != nil {
				return interpretError(err, noEffect)
			}
		}
		return r.insertEvents(ctx, tx, o.Events)
	})
	if err != nil {
		return false, fmt.Errorf("record the delivery of event %d to %s: %w", d.Event.Cursor.Seq, d.Target, err)
	}
	return recorded, nil
}

// ListDeliveries implements ports.DeliveryAdmin.
func (r *Repository) ListDeliveries(ctx context.Context, f domain.DeliveryFilter, limit int) ([]domain.Delivery, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.ListDeliveries(ctx, r.pool, db.ListDeliveriesParams{
		Target: f.Target, State: string(f.State), MaxRows: int32(min(max(limit, 0), 10_000)),
	})
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", interpretError(err, noEffect))
	}
	out := make([]domain.Delivery, len(rows))
	for i, row := range rows {
		out[i] = domain.Delivery{
			Target: row.Target, State: domain.DeliveryState(row.State), Attempt: int(row.Attempts),
			RetryFrom: row.RetryFrom, NextAttemptAt: row.NextAttemptAt,
			LeaseOwner: deref(row.LeaseOwner), LeaseUntil: deref(row.LeaseUntil),
			LastStatus: int(row.LastStatus), LastError: row.LastError, FinishedAt: deref(row.FinishedAt),
			Event: outboxEvent(row.XactID, row.EventID, row.Kind, row.UserID, row.Provider, row.Reason, row.OccurredAt),
		}
	}
	return out, nil
}

// RedeliverDeliveries implements ports.DeliveryAdmin.
func (r *Repository) RedeliverDeliveries(ctx context.Context, eventID int64, target string) (int64, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	n, err := r.q.RedeliverDeliveries(ctx, r.pool, db.RedeliverDeliveriesParams{EventID: eventID, Target: target})
	if err != nil {
		return 0, fmt.Errorf("redeliver: %w", interpretError(err, mayHaveApplied))
	}
	return n, nil
}
