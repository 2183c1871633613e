package app

import (
	"context"
	"sync"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Limits of the pull feed (GET /v1/events).
const (
	// MaxEventWait is the longest a feed request may wait for events
	// (EventFeed.Events' wait); the API also keeps it below its write
	// timeout.
	MaxEventWait = 25 * time.Second
	// DefaultEventPoll is how often a waiting feed request looks for new
	// events: a plain query through the pool, so it works behind a
	// transaction-mode pooler, with no LISTEN connection to keep.
	DefaultEventPoll = 250 * time.Millisecond
	// MaxEventLimit bounds one page; DefaultEventLimit is a page's size
	// when none is asked for.
	MaxEventLimit     = 1000
	DefaultEventLimit = 100
)

// EventFeed is the pull feed of the event outbox, for applications that
// cannot receive webhooks: pages of events in commit order, each page
// continuing at the cursor the last one returned.
type EventFeed struct {
	store    ports.EventFeed
	poll     time.Duration
	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
}

// NewEventFeed returns the feed on store; poll is how often a waiting
// request looks again (0: DefaultEventPoll).
func NewEventFeed(store ports.EventFeed, poll time.Duration) *EventFeed {
	if poll <= 0 {
		poll = DefaultEventPoll
	}
	return &EventFeed{store: store, poll: poll, stopping: make(chan struct{})}
}

// Stop ends every wait in progress and every later one at once (each
// request answers with what it has, possibly nothing), so a server
// shutting down need not sit out its long polls.
func (e *EventFeed) Stop(context.Context) error {
	e.stopOnce.Do(func() { close(e.stopping) })
	return nil
}

// Events returns up to limit events passing f after the cursor after, and
// the cursor to continue from (after itself when none). With none yet and
// wait > 0, it looks again every poll interval and returns as soon as some
// exist, or with none once wait has passed or Stop was called. Errors are the store's
// (domain.ErrStorageUnavailable...) or ctx's.
func (e *EventFeed) Events(ctx context.Context, f domain.EventFilter, after domain.EventCursor, limit int, wait time.Duration) ([]domain.Event, domain.EventCursor, error) {
	deadline := time.Now().Add(wait)
	for {
		events, next, err := e.store.ListEvents(ctx, f, after, limit)
		left := time.Until(deadline)
		if err != nil || len(events) > 0 || left <= 0 {
			return events, next, err
		}
		t := time.NewTimer(min(e.poll, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, after, ctx.Err()
		case <-e.stopping:
			t.Stop()
			return events, next, nil
		case <-t.C:
		}
	}
}
