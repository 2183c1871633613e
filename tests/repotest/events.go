package repotest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// ListAllEvents pages through every event passing f after after, one
// page of size limit at a time, and returns them and the final cursor.
func ListAllEvents(t *testing.T, repo interface {
	ListEvents(context.Context, domain.EventFilter, domain.EventCursor, int) ([]domain.Event, domain.EventCursor, error)
}, f domain.EventFilter, after domain.EventCursor, limit int) ([]domain.Event, domain.EventCursor) {
	t.Helper()
	var out []domain.Event
	for {
		page, next, err := repo.ListEvents(context.Background(), f, after, limit)
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		if len(page) == 0 {
			if next != after {
				t.Fatalf("an empty page moved the cursor from %v to %v", after, next)
			}
			return out, after
		}
		if next != page[len(page)-1].Cursor {
			t.Fatalf("next = %v, want the last event's cursor %v", next, page[len(page)-1].Cursor)
		}
		out, after = append(out, page...), next
	}
}

// WaitEvents is ListAllEvents once it lists at least n events, polling
// until a deadline: a feed lists an event only once every transaction
// that began before its own has ended (PostgreSQL: below the snapshot's
// xmin, cluster-wide), so a write in flight anywhere, even in another
// test's database, may hold it back for a while.
func WaitEvents(t *testing.T, repo interface {
	ListEvents(context.Context, domain.EventFilter, domain.EventCursor, int) ([]domain.Event, domain.EventCursor, error)
}, f domain.EventFilter, after domain.EventCursor, limit, n int) ([]domain.Event, domain.EventCursor) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		events, last := ListAllEvents(t, repo, f, after, limit)
		if len(events) >= n || time.Now().After(deadline) {
			return events, last
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventLine is an event without its cursor and time, for comparing.
func eventLine(e domain.Event) string {
	return fmt.Sprintf("%s %s/%s %s", e.Kind, e.User, e.Provider, e.Reason)
}

func eventLines(events []domain.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = eventLine(e)
	}
	return out
}

// testEventsOfWrites: each write leaves its event, in the order the
// writes committed, and a write that fails leaves none.
func testEventsOfWrites(t *testing.T, repo Repository) {
	ctx := context.Background()
	gl, gh := domain.ProviderGitLab, domain.ProviderGitHub
	start := time.Now().Add(-time.Minute)
	put(t, repo, Sample("ann", gl, "1"))
	put(t, repo, Sample("ann", gl, "2"))                                                                        // stored again
	setRefresh(t, repo, "ann", gl, domain.RefreshState{LeaseOwner: "w", LeaseUntil: time.Now().Add(time.Hour)}) // no event
	setRefresh(t, repo, "ann", gl, domain.RefreshState{ReauthRequired: true, LastError: domain.CodeGrantRevoked})
	setRefresh(t, repo, "ann", gl, domain.RefreshState{ReauthRequired: true, LastError: domain.CodeGrantRevoked}) // still: no event
	put(t, repo, Sample("ann", gl, "3"))                                                                          // recovered
	// A refresh stored (new access token): tokens.refreshed is off by default.
	if _, err := repo.UpdateAuthTokens(ctx, "ann", gl, func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
		cur.AccessToken = []byte("sealed-access-refreshed")
		return &cur, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	// Failing writes leave nothing.
	if _, err := repo.UpdateAuthTokens(ctx, "ann", gl, func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
		cur.Refresh = domain.RefreshState{ReauthRequired: true, LastError: domain.CodeGrantRevoked}
		return &cur, nil, errors.New("fn failed")
	}); err == nil {
		t.Fatal("UpdateAuthTokens with a failing fn succeeded")
	}
	if err := repo.DeleteAuthTokens(ctx, "ann", gh); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("DeleteAuthTokens(missing) = %v", err)
	}
	if err := repo.DeleteOfflineToken(ctx, "ann"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("DeleteOfflineToken(missing) = %v", err)
	}
	if err := repo.DeleteAuthTokens(ctx, "ann", gl); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "ann", KeyID: "k", Token: []byte("sealed-offline")}); err != nil {
		t.Fatal(err)
	}
	if err := repo.DeleteOfflineToken(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"tokens.stored ann/gitlab ", "tokens.stored ann/gitlab ",
		"tokens.reauth_required ann/gitlab invalid_grant", "tokens.recovered ann/gitlab ",
		"tokens.deleted ann/gitlab ", "offline_token.stored ann/ ", "offline_token.deleted ann/ ",
	}
	for _, limit := range []int{100, 1, 3} {
		events, last := WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, limit, len(want))
		if got := eventLines(events); !slices.Equal(got, want) {
			t.Fatalf("events (pages of %d):\n got %q\nwant %q", limit, got, want)
		}
		for i, e := range events {
			if i > 0 && !events[i-1].Cursor.Less(e.Cursor) {
				t.Errorf("cursors out of order: %v then %v", events[i-1].Cursor, e.Cursor)
			}
			if e.OccurredAt.Before(start) || e.OccurredAt.After(time.Now().Add(time.Minute)) {
				t.Errorf("event %d occurred at %v", i, e.OccurredAt)
			}
			if c, err := domain.ParseEventCursor(e.Cursor.String()); err != nil || c != e.Cursor {
				t.Errorf("cursor %v does not survive its text form: %v, %v", e.Cursor, c, err)
			}
		}
		if more, _, err := repo.ListEvents(ctx, domain.EventFilter{}, last, 100); err != nil || len(more) != 0 {
			t.Errorf("after the last cursor: %v, %v", more, err)
		}
	}
}

// testEventsOfLapsedLeases: the sweep's reauth transitions leave their
// events in its statement, whether or not it records audit events.
func testEventsOfLapsedLeases(t *testing.T, repo Repository) {
	gl := domain.ProviderGitLab
	put(t, repo, Sample("lapsed", gl, "1"))
	put(t, repo, Sample("live", gl, "1"))
	setRefresh(t, repo, "lapsed", gl, domain.RefreshState{LeaseOwner: "x", LeaseUntil: time.Now().Add(-time.Minute)})
	setRefresh(t, repo, "live", gl, domain.RefreshState{LeaseOwner: "y", LeaseUntil: time.Now().Add(time.Hour)})
	if _, err := repo.MarkLapsedLeases(context.Background(), domain.AuditEvent{Action: domain.AuditReauthRequired}, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"tokens.stored lapsed/gitlab ", "tokens.stored live/gitlab ", "tokens.reauth_required lapsed/gitlab refresh_interrupted"}
	events, _ := WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 100, len(want))
	if got := eventLines(events); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
}

// testEventFilter: a reader sees only the events in its scope; offline
// token events have no provider and only the user prefix limits them.
func testEventFilter(t *testing.T, repo Repository) {
	ctx := context.Background()
	for _, u := range []domain.UserID{"a/1", "b/1"} {
		put(t, repo, Sample(u, domain.ProviderGitLab, "1"))
		put(t, repo, Sample(u, domain.ProviderGitHub, "1"))
		if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: u, KeyID: "k", Token: []byte("sealed")}); err != nil {
			t.Fatal(err)
		}
	}
	WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 100, 6)
	for _, tc := range []struct {
		f    domain.EventFilter
		want []string
	}{
		{domain.EventFilter{UserPrefix: "a/"}, []string{"tokens.stored a/1/gitlab ", "tokens.stored a/1/github ", "offline_token.stored a/1/ "}},
		{domain.EventFilter{Providers: []domain.Provider{domain.ProviderGitHub}}, []string{"tokens.stored a/1/github ", "offline_token.stored a/1/ ", "tokens.stored b/1/github ", "offline_token.stored b/1/ "}},
		{domain.EventFilter{UserPrefix: "b/", Providers: []domain.Provider{domain.ProviderGitLab}}, []string{"tokens.stored b/1/gitlab ", "offline_token.stored b/1/ "}},
		{domain.EventFilter{UserPrefix: "c/"}, nil},
	} {
		events, _ := ListAllEvents(t, repo, tc.f, domain.EventCursor{}, 2)
		if got := eventLines(events); !slices.Equal(got, tc.want) {
			t.Errorf("filter %+v:\n got %q\nwant %q", tc.f, got, tc.want)
		}
	}
}
