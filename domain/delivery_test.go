package domain_test

import (
	"math"
	"strconv"
	"testing"

	"github.com/tokenstore/tokenstore/domain"
)

// TestParseWebhookID: ParseWebhookID reads back exactly what WebhookID
// writes, and nothing else.
func TestParseWebhookID(t *testing.T) {
	for _, id := range []int64{1, 9, 10, 123, math.MaxInt64} {
		s := domain.Event{Cursor: domain.EventCursor{Xact: 7, Seq: id}}.WebhookID()
		if s != "ev_"+strconv.FormatInt(id, 10) {
			t.Errorf("WebhookID of %d = %q", id, s)
		}
		got, err := domain.ParseWebhookID(s)
		if err != nil || got != id {
			t.Errorf("ParseWebhookID(%q) = %d, %v; want %d", s, got, err, id)
		}
	}
	for _, s := range []string{"", "ev_", "123", "ev123", "EV_123", "ev_0", "ev_01", "ev_+1", "ev_-1", "ev_1 ", " ev_1",
		"ev_1.5", "ev_9223372036854775808", "ev1.5.123", "msg_123"} {
		if id, err := domain.ParseWebhookID(s); err == nil {
			t.Errorf("ParseWebhookID(%q) = %d, want an error", s, id)
		}
	}
}
