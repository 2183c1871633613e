package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// TestEventsTable: on a terminal, `events list` is a table with one
// line per delivery, "-" for what is empty, the next attempt of a pending
// delivery and the end of a finished one, and no control character of an
// error breaking the columns.
func TestEventsTable(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	list := []domain.Delivery{
		{Target: "crm", State: domain.DeliveryPending, Attempt: 2, NextAttemptAt: at.Add(time.Hour), LastStatus: 503, LastError: "webhook crm:\tHTTP 503\nagain",
			Event: domain.Event{Cursor: domain.EventCursor{Xact: 9, Seq: 41}, Kind: domain.EventOfflineTokenStored, User: "alice", OccurredAt: at}},
		{Target: domain.RevocationTarget, State: domain.DeliveryDelivered, Attempt: 1, FinishedAt: at.Add(time.Minute),
			Event: domain.Event{Cursor: domain.EventCursor{Xact: 9, Seq: 42}, Kind: domain.EventTokensDeleted, User: "bob", Provider: "gitlab", OccurredAt: at}},
	}
	var out bytes.Buffer
	if err := writeDeliveries(&out, true, list); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", out.String())
	}
	want := [][]string{
		{"WEBHOOK", "ID", "ENDPOINT", "KIND", "USER", "PROVIDER", "REASON", "STATE", "ATTEMPTS", "LAST", "STATUS", "NEXT", "ATTEMPT/FINISHED", "OCCURRED", "AT", "LAST", "ERROR"},
		{"ev_41", "crm", "offline_token.stored", "alice", "-", "-", "pending", "2", "503", "2026-01-02T04:04:05Z", "2026-01-02T03:04:05Z", "webhook", "crm:", "HTTP", "503", "again"},
		{"ev_42", "revocation", "tokens.deleted", "bob", "gitlab", "-", "delivered", "1", "0", "2026-01-02T03:05:05Z", "2026-01-02T03:04:05Z", "-"},
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d: %q, want the fields %q", i, l, want[i])
		}
	}
}
