package ports

import (
	"context"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// EventFeed reads the event outbox the token writes fill
// (domain.EventKind; TokenRepository writes insert them in their own
// transaction).
type EventFeed interface {
	// ListEvents returns up to limit events passing f, in commit order,
	// after the position after (the zero cursor: from the start), and the
	// position of the last one returned (after itself when none). An event
	// listed after a cursor never appears behind it later, whatever
	// commits meanwhile; the cursor is data and stays valid across
	// restarts.
	ListEvents(ctx context.Context, f domain.EventFilter, after domain.EventCursor, limit int) ([]domain.Event, domain.EventCursor, error)
}

// EventRetention removes old events.
type EventRetention interface {
	// DeleteExpiredEvents removes up to limit of the oldest events older
	// than retention by the storage's clock and reports how many it
	// removed (fewer than limit: none older is left).
	DeleteExpiredEvents(ctx context.Context, retention time.Duration, limit int) (int64, error)
}
