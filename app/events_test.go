package app_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// events lists the outbox events of the fixture's repository as
// "kind user/provider reason".
func (f *fixture) events() []string {
	f.t.Helper()
	events, _, err := f.repo.ListEvents(context.Background(), domain.EventFilter{}, domain.EventCursor{}, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = string(e.Kind) + " " + string(e.User) + "/" + string(e.Provider) + " " + e.Reason
	}
	return out
}

// The use cases' reauth transitions and recoveries leave their events:
// a revoked grant met by a read, a lapsed lease met by a read, new tokens
// stored afterwards; refreshes only when asked for.
func TestEventsOfRefreshes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	f.repo.SetEventPolicy(domain.EventPolicy{Refreshed: true})
	f.put("alice", gitlab, -time.Minute, "r")
	if _, err := f.get("alice", gitlab); err != nil { // refreshed
		t.Fatal(err)
	}
	f.provider.setAnswer(failing(domain.ErrGrantRevoked))
	f.put("bob", gitlab, -time.Minute, "r")
	_, err := f.get("bob", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)
	f.putFresh("bob", gitlab, time.Hour, "r2")
	f.put("carol", gitlab, -time.Minute, "r")
	f.setRefresh("carol", gitlab, domain.RefreshState{LeaseOwner: "dead", LeaseUntil: time.Now().Add(-time.Minute)})
	_, err = f.get("carol", gitlab)
	wantErr(t, err, domain.ErrReauthRequired)
	want := []string{
		"tokens.stored alice/gitlab ", "tokens.refreshed alice/gitlab ",
		"tokens.stored bob/gitlab ", "tokens.reauth_required bob/gitlab invalid_grant", "tokens.recovered bob/gitlab ",
		"tokens.stored carol/gitlab ", "tokens.reauth_required carol/gitlab refresh_interrupted",
	}
	if got := f.events(); !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

// A waiting feed request returns as soon as an event exists (its wait is
// far longer than the test's deadline), and Stop ends waits at once.
func TestEventFeedWaits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	feed := app.NewEventFeed(f.repo, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type answer struct {
		events []domain.Event
		next   domain.EventCursor
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		events, next, err := feed.Events(ctx, domain.EventFilter{}, domain.EventCursor{}, 10, time.Hour)
		got <- answer{events, next, err}
	}()
	f.putFresh("alice", gitlab, time.Hour, "r")
	a := <-got
	if a.err != nil || len(a.events) != 1 || a.events[0].Kind != domain.EventTokensStored || a.next != a.events[0].Cursor {
		t.Fatalf("Events = %+v, %v, %v; want the stored event (before the test's deadline)", a.events, a.next, a.err)
	}
	// Nothing after it: the wait ends with nothing when asked to stop.
	go func() {
		events, next, err := feed.Events(ctx, domain.EventFilter{}, a.next, 10, time.Hour)
		got <- answer{events, next, err}
	}()
	if err := feed.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	b := <-got
	if b.err != nil || len(b.events) != 0 || b.next != a.next {
		t.Errorf("after Stop: %+v, %v, %v; want an empty page at %v", b.events, b.next, b.err, a.next)
	}
	// A filter that matches nothing, no wait: an empty page at once.
	c, next, err := feed.Events(ctx, domain.EventFilter{UserPrefix: "nobody"}, domain.EventCursor{}, 10, 0)
	if err != nil || len(c) != 0 || next != (domain.EventCursor{}) {
		t.Errorf("no match: %+v, %v, %v", c, next, err)
	}
}
