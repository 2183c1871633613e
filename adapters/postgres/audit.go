package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var (
	_ ports.AuditRecorder  = (*Repository)(nil)
	_ ports.AuditReader    = (*Repository)(nil)
	_ ports.AuditRetention = (*Repository)(nil)
)

// RecordAuditEvents implements ports.AuditRecorder with one multi-row
// INSERT, which commits by itself (one statement, one transaction).
func (r *Repository) RecordAuditEvents(ctx context.Context, events []domain.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return withConn(ctx, r.pool, func(conn db.DBTX) error {
		if _, err := r.q.InsertAuditEvents(ctx, conn, auditParams(events)); err != nil {
			return fmt.Errorf("record %d audit events: %w", len(events), auditStoreError(err, mayHaveApplied))
		}
		return nil
	})
}

// writeAudited runs one write: alone, as one statement that commits by
// itself (write runs with mayHaveApplied), when there are no audit events;
// otherwise in one transaction that also inserts the audit events (write
// runs with noEffect: only COMMIT may leave the outcome unknown), so the
// write and its events commit together or not at all.
func (r *Repository) writeAudited(ctx context.Context, audit []domain.AuditEvent, write func(conn db.DBTX, e effect) error) error {
	if len(audit) == 0 {
		return withConn(ctx, r.pool, func(conn db.DBTX) error { return write(conn, mayHaveApplied) })
	}
	return withTx(ctx, r.pool, func(tx pgx.Tx) error {
		if err := write(tx, noEffect); err != nil {
			return err
		}
		return r.recordInTx(ctx, tx, audit)
	})
}

// writeWithEvents runs one write, which returns the outbox events of its
// change: as writeAudited when the outbox is off; otherwise in one
// transaction that also inserts the outbox events the policy allows and
// the audit events, so the write and its events commit together or not at
// all.
func (r *Repository) writeWithEvents(ctx context.Context, audit []domain.AuditEvent, write func(conn db.DBTX, e effect) ([]domain.Event, error)) error {
	if r.events.Off {
		return r.writeAudited(ctx, audit, func(conn db.DBTX, e effect) error { _, err := write(conn, e); return err })
	}
	return withTx(ctx, r.pool, func(tx pgx.Tx) error {
		events, err := write(tx, noEffect)
		if err != nil {
			return err
		}
		if err := r.insertEvents(ctx, tx, events); err != nil {
			return err
		}
		return r.recordInTx(ctx, tx, audit)
	})
}

// recordInTx inserts the audit events of a change in the change's
// transaction tx (nothing when there are none).
func (r *Repository) recordInTx(ctx context.Context, tx pgx.Tx, events []domain.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	if _, err := r.q.InsertAuditEvents(ctx, tx, auditParams(events)); err != nil {
		return fmt.Errorf("record audit event: %w", auditStoreError(err, noEffect))
	}
	return nil
}

// auditStoreError interprets a failed audit insert: whatever the database
// said (a lost connection, a revoked privilege, a trigger refusing), the
// audit store is unavailable, so what needed the event fails as
// domain.ErrStorageUnavailable (503), never as the caller's fault. A
// refusal (the database answered no) is also domain.ErrAuditUnavailable:
// the audit store itself failed, not the connection.
func auditStoreError(err error, e effect) error {
	err = interpretError(err, e)
	if errors.Is(err, domain.ErrStorageUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w: the audit store refused the event: %w", domain.ErrStorageUnavailable, domain.ErrAuditUnavailable, err)
}

func auditParams(events []domain.AuditEvent) db.InsertAuditEventsParams {
	n := len(events)
	p := db.InsertAuditEventsParams{
		Instances: make([]string, n), Callers: make([]string, n), Actions: make([]string, n),
		UserIds: make([]string, n), Providers: make([]string, n), Statuses: make([]int32, n),
		Codes: make([]string, n), RequestIds: make([]string, n), Counts: make([]int64, n),
	}
	for i, e := range events {
		p.Instances[i], p.Callers[i], p.Actions[i] = e.Instance, e.Caller, string(e.Action)
		p.UserIds[i], p.Providers[i], p.Statuses[i] = string(e.User), string(e.Provider), int32(e.Status)
		p.Codes[i], p.RequestIds[i], p.Counts[i] = e.Code, e.RequestID, e.Count
	}
	return p
}

// ListAuditEvents implements ports.AuditReader.
func (r *Repository) ListAuditEvents(ctx context.Context, f domain.AuditFilter, after ports.AuditCursor, limit int) ([]domain.AuditEvent, ports.AuditCursor, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rows, err := r.q.ListAuditEvents(ctx, r.pool, db.ListAuditEventsParams{
		UserID: (*string)(f.User), Provider: (*string)(f.Provider), Caller: f.Caller,
		Action: (*string)(f.Action), Since: f.Since, Until: f.Until,
		AfterTime: after.Time, AfterID: after.ID, MaxRows: int32(min(max(limit, 0), 10_000)),
	})
	if err != nil {
		return nil, after, fmt.Errorf("list audit events: %w", interpretError(err, noEffect))
	}
	out := make([]domain.AuditEvent, len(rows))
	for i, row := range rows {
		out[i] = domain.AuditEvent{
			Time: row.OccurredAt, Instance: row.Instance, Caller: row.Caller,
			Action: domain.AuditAction(row.Action), User: domain.UserID(row.UserID),
			Provider: domain.Provider(row.Provider), Status: int(row.Status), Code: row.Code,
			RequestID: row.RequestID, Count: row.Count,
		}
		after = ports.AuditCursor{Time: row.OccurredAt, ID: row.ID}
	}
	return out, after, nil
}

// DeleteExpiredAuditEvents implements ports.AuditRetention: the only
// transaction that sets tokenstore.audit_retention, which the append-only
// trigger requires for DELETE.
func (r *Repository) DeleteExpiredAuditEvents(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	var n int64
	err := withTx(ctx, r.pool, func(tx pgx.Tx) error {
		if err := r.q.AllowAuditRetention(ctx, tx); err != nil {
			return fmt.Errorf("allow audit retention: %w", interpretError(err, noEffect))
		}
		var err error
		n, err = r.q.DeleteExpiredAuditEvents(ctx, tx, db.DeleteExpiredAuditEventsParams{
			RetentionSeconds: retention.Seconds(), MaxRows: int32(min(max(limit, 0), 10_000)),
		})
		if err != nil {
			return fmt.Errorf("delete expired audit events: %w", interpretError(err, noEffect))
		}
		return nil
	})
	return n, err
}
