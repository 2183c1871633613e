package repotest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// AuditLog is audit storage as the service, the CLI and the retention
// worker see it.
type AuditLog interface {
	ports.AuditRecorder
	ports.AuditReader
	ports.AuditRetention
}

// RunAudit runs the audit storage contract against the logs setup returns
// (each fresh and empty).
func RunAudit(t *testing.T, setup func(t *testing.T) AuditLog) {
	tests := []struct {
		name string
		fn   func(t *testing.T, log AuditLog)
	}{
		{"RecordThenList", testAuditRecordThenList},
		{"Filters", testAuditFilters},
		{"Pages", testAuditPages},
		{"RetentionInBatches", testAuditRetention},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, setup(t))
		})
	}
}

// AuditSample is an event with every field set.
func AuditSample(i int) domain.AuditEvent {
	return domain.AuditEvent{
		Instance: "i-1", Caller: fmt.Sprintf("caller-%d", i%2), Action: domain.AuditReadAccessToken,
		User: domain.UserID(fmt.Sprintf("user-%d", i%3)), Provider: domain.ProviderGitLab,
		Status: 200, RequestID: fmt.Sprintf("req-%d", i),
	}
}

func listAll(t *testing.T, log AuditLog, f domain.AuditFilter) []domain.AuditEvent {
	t.Helper()
	got, _, err := log.ListAuditEvents(context.Background(), f, ports.AuditCursor{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func testAuditRecordThenList(t *testing.T, log AuditLog) {
	ctx := context.Background()
	if err := log.RecordAuditEvents(ctx, nil); err != nil {
		t.Fatalf("no events: %v", err)
	}
	var want []domain.AuditEvent
	for i := range 5 {
		want = append(want, AuditSample(i))
	}
	want[4].Status, want[4].Code, want[4].Caller = 503, "storage_unavailable", ""
	before := time.Now().Add(-time.Minute)
	if err := log.RecordAuditEvents(ctx, want[:3]); err != nil {
		t.Fatal(err)
	}
	if err := log.RecordAuditEvents(ctx, want[3:]); err != nil {
		t.Fatal(err)
	}
	got := listAll(t, log, domain.AuditFilter{})
	if len(got) != len(want) {
		t.Fatalf("listed %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, e := range got {
		if e.Time.Before(before) || e.Time.After(time.Now().Add(time.Minute)) {
			t.Errorf("event %d time %v: not the storage's clock at recording", i, e.Time)
		}
		if i > 0 && e.Time.Before(got[i-1].Time) {
			t.Errorf("event %d listed before an older one", i)
		}
		e.Time = time.Time{}
		if e != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, e, want[i])
		}
	}
}

func testAuditFilters(t *testing.T, log AuditLog) {
	ctx := context.Background()
	var events []domain.AuditEvent
	for i := range 6 {
		events = append(events, AuditSample(i))
	}
	events[5].Action, events[5].Provider = domain.AuditDeleteTokens, domain.ProviderGitHub
	if err := log.RecordAuditEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	user, caller := domain.UserID("user-1"), "caller-0"
	action, provider := domain.AuditDeleteTokens, domain.ProviderGitHub
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, c := range []struct {
		name string
		f    domain.AuditFilter
		want []string // request ids
	}{
		{"user", domain.AuditFilter{User: &user}, []string{"req-1", "req-4"}},
		{"caller", domain.AuditFilter{Caller: &caller}, []string{"req-0", "req-2", "req-4"}},
		{"action", domain.AuditFilter{Action: &action}, []string{"req-5"}},
		{"provider", domain.AuditFilter{Provider: &provider}, []string{"req-5"}},
		{"user and caller", domain.AuditFilter{User: &user, Caller: &caller}, []string{"req-4"}},
		{"since past", domain.AuditFilter{Since: &past}, []string{"req-0", "req-1", "req-2", "req-3", "req-4", "req-5"}},
		{"since future", domain.AuditFilter{Since: &future}, nil},
		{"until past", domain.AuditFilter{Until: &past}, nil},
		{"until future", domain.AuditFilter{Until: &future, User: &user}, []string{"req-1", "req-4"}},
	} {
		var got []string
		for _, e := range listAll(t, log, c.f) {
			got = append(got, e.RequestID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: listed %v, want %v", c.name, got, c.want)
		}
	}
}

func testAuditPages(t *testing.T, log AuditLog) {
	ctx := context.Background()
	for i := range 5 {
		if err := log.RecordAuditEvents(ctx, []domain.AuditEvent{AuditSample(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var cur ports.AuditCursor
	for range 10 {
		page, next, err := log.ListAuditEvents(ctx, domain.AuditFilter{}, cur, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			got = append(got, e.RequestID)
		}
		cur = next
	}
	if want := "[req-0 req-1 req-2 req-3 req-4]"; fmt.Sprint(got) != want {
		t.Errorf("pages listed %v, want %s", got, want)
	}
}

func testAuditRetention(t *testing.T, log AuditLog) {
	ctx := context.Background()
	var events []domain.AuditEvent
	for i := range 5 {
		events = append(events, AuditSample(i))
	}
	if err := log.RecordAuditEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	if n, err := log.DeleteExpiredAuditEvents(ctx, time.Hour, 10); n != 0 || err != nil {
		t.Fatalf("retention of an hour removed %d events (%v), want none", n, err)
	}
	time.Sleep(2 * time.Millisecond) // the storage's clock moves past the events
	var removed []int64
	for range 5 {
		n, err := log.DeleteExpiredAuditEvents(ctx, time.Nanosecond, 2)
		if err != nil {
			t.Fatal(err)
		}
		removed = append(removed, n)
		if n < 2 {
			break
		}
	}
	if fmt.Sprint(removed) != "[2 2 1]" {
		t.Errorf("batches of 2 removed %v, want [2 2 1]", removed)
	}
	if got := listAll(t, log, domain.AuditFilter{}); len(got) != 0 {
		t.Errorf("%d events left after retention", len(got))
	}
}
