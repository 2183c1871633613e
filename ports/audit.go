package ports

import (
	"context"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// AuditRecorder stores audit events durably.
type AuditRecorder interface {
	// RecordAuditEvents stores events in one transaction: when it returns
	// nil, every event is committed; otherwise none is (or, with
	// domain.ErrOutcomeUnknown, the outcome is unknown). The storage's
	// clock sets each event's time.
	RecordAuditEvents(ctx context.Context, events []domain.AuditEvent) error
}

// AuditReader lists audit events.
type AuditReader interface {
	// ListAuditEvents returns up to limit events matching f, oldest first,
	// after the position after (the zero cursor: from the start), and the
	// position of the last one returned, where the next page starts.
	ListAuditEvents(ctx context.Context, f domain.AuditFilter, after AuditCursor, limit int) ([]domain.AuditEvent, AuditCursor, error)
}

// AuditCursor marks a position in the audit trail (the last event of a
// page). The zero value is the start.
type AuditCursor struct {
	Time time.Time
	ID   int64
}

// AuditRetention removes old audit events, the only way any leave.
type AuditRetention interface {
	// DeleteExpiredAuditEvents removes up to limit of the oldest events
	// older than retention by the storage's clock and reports how many it
	// removed (fewer than limit: none older is left).
	DeleteExpiredAuditEvents(ctx context.Context, retention time.Duration, limit int) (int64, error)
}
