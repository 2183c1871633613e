package webhook

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tokenstore/tokenstore/adapters/eventjson"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Payload is a webhook's body, the Standard Webhooks payload structure
// ("type", "timestamp", "data"): type is the event's kind, timestamp when
// it occurred (RFC 3339), data the event as the pull feed gives it
// (eventjson.Event), so a receiver parses webhooks and the feed alike.
type Payload struct {
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Data      eventjson.Event `json:"data"`
}

// Body is e's webhook body (Payload as JSON).
func Body(e domain.Event) []byte {
	data := eventjson.From(e)
	b, err := json.Marshal(Payload{Type: data.Kind, Timestamp: data.OccurredAt, Data: data})
	if err != nil { // strings only: cannot fail
		panic(err)
	}
	return b
}

// Target is an Endpoint with the Sender that posts to it: the delivery
// worker's ports.WebhookEndpoint.
type Target struct {
	ep     Endpoint
	sender *Sender
}

var _ ports.WebhookEndpoint = Target{}

// Targets pairs each endpoint with sender.
func Targets(eps []Endpoint, sender *Sender) []ports.WebhookEndpoint {
	out := make([]ports.WebhookEndpoint, len(eps))
	for i, ep := range eps {
		out[i] = Target{ep: ep, sender: sender}
	}
	return out
}

// Name is the endpoint's name.
func (t Target) Name() string { return t.ep.Name }

// URL is the endpoint's URL.
func (t Target) URL() string { return t.ep.URL }

// Kinds are the event kinds the endpoint receives.
func (t Target) Kinds() []domain.EventKind {
	out := make([]domain.EventKind, len(t.ep.Events))
	for i, k := range t.ep.Events {
		out[i] = domain.EventKind(k)
	}
	return out
}

// Timeout bounds one delivery.
func (t Target) Timeout() time.Duration { return t.ep.Timeout }

// Schedule is the endpoint's retry schedule: RetryFirst doubling up to
// domain.DefaultRetryCap, until MaxAge.
func (t Target) Schedule() domain.RetrySchedule {
	return domain.RetrySchedule{First: t.ep.RetryFirst, Cap: max(domain.DefaultRetryCap, t.ep.RetryFirst), MaxAge: t.ep.MaxAge}
}

// Send posts e to the endpoint (Sender.Deliver) with webhook-id
// e.WebhookID(), and reports the status answered.
func (t Target) Send(ctx context.Context, e domain.Event) (int, error) {
	return t.sender.deliver(ctx, t.ep, Message{ID: e.WebhookID(), Body: Body(e)})
}
