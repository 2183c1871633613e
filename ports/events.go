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

// DeliveryQueue is the outbox's delivery side, shared by every instance's
// delivery worker: events fanned out into deliveries per target, claimed
// under a lease so each is sent by one instance at a time, and their
// outcomes recorded.
type DeliveryQueue interface {
	// RegisterEventTarget creates the webhook endpoint target's fan-out
	// position at the feed's current end, the first time it is called
	// for target; later calls change nothing but a new url, which also
	// ends the endpoint's gone mark (MarkEventTargetGone).
	RegisterEventTarget(ctx context.Context, target, url string) error
	// MarkEventTargetGone records that the endpoint target answered 410
	// Gone: its pending deliveries fail with lastError, and none are
	// queued or claimed for it until RegisterEventTarget gets a new URL or
	// RedeliverDeliveries requeues some of its deliveries. It reports how
	// many deliveries failed.
	MarkEventTargetGone(ctx context.Context, target, lastError string) (int64, error)
	// FanOutEvents queues a delivery to target of every event of one of
	// kinds among the next limit events after target's position (finished
	// transactions, commit order) and moves the position past them; it
	// reports how many events it looked at (0: the feed has nothing new,
	// or another instance is fanning out target right now).
	FanOutEvents(ctx context.Context, target string, kinds []domain.EventKind, limit int) (int, error)
	// ClaimDeliveries leases up to limit of target's due deliveries to
	// owner for lease, oldest first, each the earliest pending one of its
	// user and provider, and starts an attempt of each (Attempt counts
	// it). A delivery whose lease lapsed (its owner died mid-send) can be
	// claimed again.
	ClaimDeliveries(ctx context.Context, target, owner string, lease time.Duration, limit int) ([]domain.Delivery, error)
	// FinishDelivery records the outcome of d's attempt (d as claimed) and
	// writes o.Events in the same transaction. It reports false, writing
	// nothing, when the attempt is no longer the latest (another instance
	// claimed the delivery after d's lease lapsed) or d is not pending.
	FinishDelivery(ctx context.Context, d domain.Delivery, o domain.DeliveryOutcome) (bool, error)
}

// DeliveryAdmin is the operators' view of deliveries (tokenstore events).
type DeliveryAdmin interface {
	// ListDeliveries returns up to limit deliveries passing f, in the
	// commit order of their events, then by target.
	ListDeliveries(ctx context.Context, f domain.DeliveryFilter, limit int) ([]domain.Delivery, error)
	// RedeliverDeliveries queues finished deliveries again as new ones (a
	// fresh retry window, the same webhook-id): those of the event eventID
	// (0: every failed delivery), of target (empty: any). A revocation
	// whose tokens were revoked is not queued again; an endpoint marked
	// gone that gets a delivery back is no longer gone. It reports how
	// many deliveries it queued.
	RedeliverDeliveries(ctx context.Context, eventID int64, target string) (int64, error)
}

// EventRetention removes old events.
type EventRetention interface {
	// DeleteExpiredEvents removes up to limit of the oldest events older
	// than retention by the storage's clock, with their deliveries, and
	// reports how many it removed (fewer than limit: none older is left).
	DeleteExpiredEvents(ctx context.Context, retention time.Duration, limit int) (int64, error)
}

// WebhookEndpoint is one webhook receiver as the delivery worker sees it
// (adapters/webhook.Target).
type WebhookEndpoint interface {
	// Name is the endpoint's delivery target name (a-z, 0-9, '-', '_').
	Name() string
	// URL is where it receives events; a new URL ends a gone mark.
	URL() string
	// Kinds are the event kinds it receives.
	Kinds() []domain.EventKind
	// Timeout bounds one Send.
	Timeout() time.Duration
	// Schedule is its retry schedule (its max_age ends the retries).
	Schedule() domain.RetrySchedule
	// Send posts e, signed, within Timeout, and reports the HTTP status
	// answered (0: none). nil: delivered (2xx). Status 410: the receiver
	// wants no more events. Other errors: not delivered, try again later,
	// at the time a wrapped *domain.RetryAtError gives when the receiver
	// said (Retry-After). Errors never carry the URL or a secret.
	Send(ctx context.Context, e domain.Event) (status int, err error)
}
