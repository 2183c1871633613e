// Package eventjson is the one JSON form of an outbox event, shared by the
// pull feed (GET /v1/events, adapters/httpapi) and the webhooks' data
// (adapters/webhook), so a receiver parses both with one type. It is the
// OpenAPI document's Event schema.
package eventjson

import (
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// Event is an event as JSON: cursor (its feed position, opaque), kind,
// user, provider (null for the offline token's events), reason (a machine
// code, null when none) and occurred_at (RFC 3339 in UTC, to the
// nanosecond the database recorded).
type Event struct {
	Cursor     string  `json:"cursor"`
	Kind       string  `json:"kind"`
	User       string  `json:"user"`
	Provider   *string `json:"provider"`
	Reason     *string `json:"reason"`
	OccurredAt string  `json:"occurred_at"`
}

// From is e's JSON form.
func From(e domain.Event) Event {
	return Event{
		Cursor: e.Cursor.String(), Kind: string(e.Kind), User: string(e.User),
		Provider: optional(string(e.Provider)), Reason: optional(e.Reason),
		OccurredAt: e.OccurredAt.UTC().Format(time.RFC3339Nano),
	}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
