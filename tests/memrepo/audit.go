package memrepo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// AuditLog is an in-memory audit store for app unit tests: append-only (it
// has no way to change an event) and passing the same contract as the
// PostgreSQL adapter (tests/repotest.RunAudit). Fail, when set, makes
// RecordAuditEvents fail with it (an audit store that is down).
type AuditLog struct {
	mu     sync.Mutex
	events []domain.AuditEvent
	ids    []int64
	nextID int64
	fail   error
}

var (
	_ ports.AuditRecorder  = (*AuditLog)(nil)
	_ ports.AuditReader    = (*AuditLog)(nil)
	_ ports.AuditRetention = (*AuditLog)(nil)
)

// NewAuditLog returns an empty log.
func NewAuditLog() *AuditLog { return &AuditLog{} }

// Fail makes later RecordAuditEvents calls fail with err (nil: succeed).
func (l *AuditLog) Fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
}

// Events returns every stored event, oldest first.
func (l *AuditLog) Events() []domain.AuditEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]domain.AuditEvent(nil), l.events...)
}

// RecordAuditEvents implements ports.AuditRecorder.
func (l *AuditLog) RecordAuditEvents(ctx context.Context, events []domain.AuditEvent) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return l.record(events)
}

// record stores events, all or none (the log failing: none, and an error
// wrapping domain.ErrStorageUnavailable and domain.ErrAuditUnavailable, as
// the PostgreSQL adapter's).
func (l *AuditLog) record(events []domain.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return fmt.Errorf("%w: %w: the audit store refused the event: %w", domain.ErrStorageUnavailable, domain.ErrAuditUnavailable, l.fail)
	}
	for _, e := range events {
		e.Time = time.Now()
		l.nextID++
		l.events = append(l.events, e)
		l.ids = append(l.ids, l.nextID)
	}
	return nil
}

// ListAuditEvents implements ports.AuditReader.
func (l *AuditLog) ListAuditEvents(ctx context.Context, f domain.AuditFilter, after ports.AuditCursor, limit int) ([]domain.AuditEvent, ports.AuditCursor, error) {
	if err := ctx.Err(); err != nil {
		return nil, after, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []domain.AuditEvent{}
	for i, e := range l.events {
		if len(out) >= limit {
			break
		}
		if l.ids[i] <= after.ID || !matches(f, e) {
			continue
		}
		out = append(out, e)
		after = ports.AuditCursor{Time: e.Time, ID: l.ids[i]}
	}
	return out, after, nil
}

func matches(f domain.AuditFilter, e domain.AuditEvent) bool {
	return (f.User == nil || *f.User == e.User) &&
		(f.Provider == nil || *f.Provider == e.Provider) &&
		(f.Caller == nil || *f.Caller == e.Caller) &&
		(f.Action == nil || *f.Action == e.Action) &&
		(f.Since == nil || !e.Time.Before(*f.Since)) &&
		(f.Until == nil || e.Time.Before(*f.Until))
}

// DeleteExpiredAuditEvents implements ports.AuditRetention.
func (l *AuditLog) DeleteExpiredAuditEvents(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := time.Now().Add(-retention)
	n := 0
	for n < len(l.events) && n < limit && l.events[n].Time.Before(cutoff) {
		n++
	}
	l.events, l.ids = l.events[n:], l.ids[n:]
	return int64(n), nil
}
