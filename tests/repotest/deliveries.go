package repotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// deliveryLine is a delivery as "target kind user/provider state attempt".
func deliveryLine(d domain.Delivery) string {
	return fmt.Sprintf("%s %s %s/%s %s %d", d.Target, d.Event.Kind, d.Event.User, d.Event.Provider, d.State, d.Attempt)
}

func deliveryLines(ds []domain.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = deliveryLine(d)
	}
	return out
}

// fanOutAll fans out target until the feed has nothing new (or until a
// deadline: the feed lists a transaction only once every older one has
// ended, cluster-wide).
func fanOutAll(t *testing.T, repo Repository, target string, kinds []domain.EventKind, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := repo.FanOutEvents(context.Background(), target, kinds, 2); err != nil {
			t.Fatalf("FanOutEvents: %v", err)
		}
		ds, err := repo.ListDeliveries(context.Background(), domain.DeliveryFilter{Target: target}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) >= want || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func claimDeliveries(t *testing.T, repo Repository, target, owner string, lease time.Duration, limit int) []domain.Delivery {
	t.Helper()
	ds, err := repo.ClaimDeliveries(context.Background(), target, owner, lease, limit)
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	return ds
}

func finish(t *testing.T, repo Repository, d domain.Delivery, o domain.DeliveryOutcome) bool {
	t.Helper()
	ok, err := repo.FinishDelivery(context.Background(), d, o)
	if err != nil {
		t.Fatalf("FinishDelivery: %v", err)
	}
	return ok
}

var delivered = domain.DeliveryOutcome{State: domain.DeliveryDelivered, Status: 204}

// testFanOut: a target starts at the feed's end, queues each event of its
// kinds once, in commit order, and skips the others.
func testFanOut(t *testing.T, repo Repository) {
	ctx := context.Background()
	gl := domain.ProviderGitLab
	put(t, repo, Sample("before", gl, "1"))
	WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 100, 1)
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	put(t, repo, Sample("ann", gl, "1"))
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "ann", KeyID: "k", Token: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
	if err := repo.DeleteAuthTokens(ctx, "ann", gl); err != nil {
		t.Fatal(err)
	}
	kinds := []domain.EventKind{domain.EventTokensStored, domain.EventTokensDeleted}
	fanOutAll(t, repo, "crm", kinds, 2)
	fanOutAll(t, repo, "crm", kinds, 2) // again: nothing new
	ds, err := repo.ListDeliveries(ctx, domain.DeliveryFilter{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"crm tokens.stored ann/gitlab pending 0", "crm tokens.deleted ann/gitlab pending 0"}
	if got := deliveryLines(ds); !slices.Equal(got, want) {
		t.Fatalf("deliveries:\n got %q\nwant %q", got, want)
	}
	if !ds[0].Event.Cursor.Less(ds[1].Event.Cursor) || ds[0].Event.WebhookID() == ds[1].Event.WebhookID() {
		t.Errorf("deliveries not in commit order or sharing an id: %v, %v", ds[0].Event.Cursor, ds[1].Event.Cursor)
	}
	// Registering again keeps the position; an unknown target fans out nothing.
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	if n, err := repo.FanOutEvents(ctx, "unknown", kinds, 100); err != nil || n != 0 {
		t.Errorf("FanOutEvents(unregistered) = %d, %v; want 0", n, err)
	}
}

// testClaimOrder: a claim takes each user's and provider's earliest
// pending delivery only, so a receiver sees them in commit order, retries
// included; a delivery waiting for its retry holds the later ones back.
func testClaimOrder(t *testing.T, repo Repository) {
	ctx := context.Background()
	gl, gh := domain.ProviderGitLab, domain.ProviderGitHub
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"1", "2", "3"} {
		put(t, repo, Sample("ann", gl, tag))
	}
	put(t, repo, Sample("ann", gh, "1"))
	put(t, repo, Sample("bob", gl, "1"))
	fanOutAll(t, repo, "crm", []domain.EventKind{domain.EventTokensStored}, 5)

	first := claimDeliveries(t, repo, "crm", "i1", time.Minute, 10)
	if got, want := deliveryLines(first), []string{
		"crm tokens.stored ann/gitlab pending 1", "crm tokens.stored ann/github pending 1", "crm tokens.stored bob/gitlab pending 1",
	}; !slices.Equal(got, want) {
		t.Fatalf("first claim:\n got %q\nwant %q", got, want)
	}
	if again := claimDeliveries(t, repo, "crm", "i2", time.Minute, 10); len(again) != 0 {
		t.Fatalf("leased deliveries or their successors claimed again: %q", deliveryLines(again))
	}
	// ann/gitlab's first fails and waits an hour: her second stays behind it.
	if !finish(t, repo, first[0], domain.DeliveryOutcome{State: domain.DeliveryPending, NextAttemptAt: time.Now().Add(time.Hour), Status: 503, Error: "answered HTTP 503"}) {
		t.Fatal("outcome of a live lease not recorded")
	}
	if got := claimDeliveries(t, repo, "crm", "i2", time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed past a delivery waiting for its retry: %q", deliveryLines(got))
	}
	// Delivering ann/github's first lets nothing new through (it was her only one there).
	finish(t, repo, first[1], delivered)
	// Retried now: it is claimed again (attempt 2), then its successor.
	ds, err := repo.ListDeliveries(ctx, domain.DeliveryFilter{State: domain.DeliveryPending}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].LastStatus != 503 || ds[0].LastError != "answered HTTP 503" || ds[0].Attempt != 1 {
		t.Errorf("failed attempt recorded as %+v", ds[0])
	}
	// Make the retry due now: an outcome of the same attempt, as a late
	// record of it would be (the attempt number still matches).
	if !finish(t, repo, ds[0], domain.DeliveryOutcome{State: domain.DeliveryPending, NextAttemptAt: time.Now().Add(-time.Second)}) {
		t.Fatal("rescheduling not recorded")
	}
	second := claimDeliveries(t, repo, "crm", "i2", time.Minute, 10)
	if got, want := deliveryLines(second), []string{"crm tokens.stored ann/gitlab pending 2"}; !slices.Equal(got, want) {
		t.Fatalf("after the retry came due:\n got %q\nwant %q", got, want)
	}
	if second[0].Event.Cursor != first[0].Event.Cursor || !second[0].RetryFrom.Equal(first[0].Event.OccurredAt) {
		t.Fatalf("the retry is another event, or its retry window does not start at the event's time: %+v", second[0])
	}
	finish(t, repo, second[0], delivered)
	third := claimDeliveries(t, repo, "crm", "i2", time.Minute, 10)
	if len(third) != 1 || !first[0].Event.Cursor.Less(third[0].Event.Cursor) || third[0].Event.User != "ann" {
		t.Fatalf("after delivering ann's first, claimed %q", deliveryLines(third))
	}
}

// testLapsedLease: an attempt whose lease lapsed is claimed again by
// another owner (its owner died mid-send), with the next attempt number,
// and the first attempt's late outcome is not recorded over it.
func testLapsedLease(t *testing.T, repo Repository) {
	ctx := context.Background()
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	put(t, repo, Sample("ann", domain.ProviderGitLab, "1"))
	fanOutAll(t, repo, "crm", []domain.EventKind{domain.EventTokensStored}, 1)
	dead := claimDeliveries(t, repo, "crm", "dead", 50*time.Millisecond, 10)
	if len(dead) != 1 {
		t.Fatalf("claimed %d", len(dead))
	}
	var taken []domain.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(taken) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		taken = claimDeliveries(t, repo, "crm", "alive", time.Minute, 10)
	}
	if len(taken) != 1 || taken[0].Attempt != 2 || taken[0].Event.Cursor != dead[0].Event.Cursor || taken[0].Event.WebhookID() != dead[0].Event.WebhookID() {
		t.Fatalf("after the lease lapsed, claimed %+v; want the same event, attempt 2", taken)
	}
	if finish(t, repo, dead[0], delivered) {
		t.Error("the lapsed attempt's outcome was recorded over the live one")
	}
	if !finish(t, repo, taken[0], delivered) {
		t.Error("the live attempt's outcome was not recorded")
	}
	if finish(t, repo, taken[0], delivered) {
		t.Error("a finished delivery took a second outcome")
	}
}

// testConcurrentDeliveryClaims: owners claiming at once never share a
// delivery.
func testConcurrentDeliveryClaims(t *testing.T, repo Repository) {
	ctx := context.Background()
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	const users = 40
	for i := range users {
		put(t, repo, Sample(domain.UserID(fmt.Sprint("u", i)), domain.ProviderGitLab, "1"))
	}
	fanOutAll(t, repo, "crm", []domain.EventKind{domain.EventTokensStored}, users)
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		owner := fmt.Sprint("w", w)
		wg.Go(func() {
			for {
				ds, err := repo.ClaimDeliveries(ctx, "crm", owner, time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if prev, dup := seen[d.Event.Cursor.Seq]; dup {
						t.Errorf("event %d claimed by %s and %s", d.Event.Cursor.Seq, prev, owner)
					}
					seen[d.Event.Cursor.Seq] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != users {
		t.Errorf("claimed %d deliveries, want %d", len(seen), users)
	}
}

// testRedeliver: failed deliveries are listed and queued again as new;
// a delivered one by its event id; pending ones are left alone.
func testRedeliver(t *testing.T, repo Repository) {
	ctx := context.Background()
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	put(t, repo, Sample("ann", domain.ProviderGitLab, "1"))
	put(t, repo, Sample("bob", domain.ProviderGitLab, "1"))
	fanOutAll(t, repo, "crm", []domain.EventKind{domain.EventTokensStored}, 2)
	ds := claimDeliveries(t, repo, "crm", "i", time.Minute, 10)
	finish(t, repo, ds[0], domain.DeliveryOutcome{State: domain.DeliveryFailed, Status: 500, Error: "answered HTTP 500"})
	finish(t, repo, ds[1], delivered)
	failed, err := repo.ListDeliveries(ctx, domain.DeliveryFilter{State: domain.DeliveryFailed}, 10)
	if err != nil || len(failed) != 1 || failed[0].Event.User != "ann" || failed[0].FinishedAt.IsZero() || failed[0].LastStatus != 500 {
		t.Fatalf("failed deliveries = %+v, %v", failed, err)
	}
	if n, err := repo.RedeliverDeliveries(ctx, 0, "other"); err != nil || n != 0 {
		t.Errorf("redeliver another target's = %d, %v", n, err)
	}
	if n, err := repo.RedeliverDeliveries(ctx, 0, ""); err != nil || n != 1 {
		t.Fatalf("redeliver --failed = %d, %v; want 1", n, err)
	}
	if n, err := repo.RedeliverDeliveries(ctx, 0, ""); err != nil || n != 0 {
		t.Errorf("redeliver --failed again (now pending) = %d, %v; want 0", n, err)
	}
	again := claimDeliveries(t, repo, "crm", "i", time.Minute, 10)
	if len(again) != 1 || again[0].Attempt != 1 || again[0].Event.Cursor != ds[0].Event.Cursor {
		t.Fatalf("redelivered claim = %+v; want ann's event as a first attempt", again)
	}
	if !again[0].RetryFrom.After(again[0].Event.OccurredAt) {
		t.Errorf("a redelivery's retry window starts at %v, not after its event (%v): it would be given up at once", again[0].RetryFrom, again[0].Event.OccurredAt)
	}
	// The redelivery restarted the attempts at 1: an attempt from before
	// it, stalled until now, carries the same number but must not record
	// over the live one.
	if finish(t, repo, ds[0], delivered) {
		t.Error("a stalled attempt from before the redelivery recorded its outcome over the live attempt")
	}
	if !finish(t, repo, again[0], delivered) {
		t.Error("the live attempt's outcome was not recorded")
	}
	if n, err := repo.RedeliverDeliveries(ctx, ds[1].Event.Cursor.Seq, "crm"); err != nil || n != 1 {
		t.Errorf("redeliver a delivered event = %d, %v; want 1", n, err)
	}
	if n, err := repo.RedeliverDeliveries(ctx, 1<<40, ""); err != nil || n != 0 {
		t.Errorf("redeliver an unknown event = %d, %v; want 0", n, err)
	}
}

// testTargetGone: an endpoint marked gone fails its pending deliveries and
// is neither fanned out nor claimed until its URL changes or a delivery
// of it is redelivered.
func testTargetGone(t *testing.T, repo Repository) {
	ctx := context.Background()
	kinds := []domain.EventKind{domain.EventTokensStored}
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	put(t, repo, Sample("ann", domain.ProviderGitLab, "1"))
	put(t, repo, Sample("bob", domain.ProviderGitLab, "1"))
	fanOutAll(t, repo, "crm", kinds, 2)
	if n, err := repo.MarkEventTargetGone(ctx, "crm", "the endpoint answered 410 Gone"); err != nil || n != 2 {
		t.Fatalf("MarkEventTargetGone = %d, %v; want 2 failed", n, err)
	}
	put(t, repo, Sample("cid", domain.ProviderGitLab, "1"))
	WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 100, 3)
	if _, err := repo.FanOutEvents(ctx, "crm", kinds, 100); err != nil {
		t.Fatal(err)
	}
	if ds := claimDeliveries(t, repo, "crm", "i", time.Minute, 10); len(ds) != 0 {
		t.Fatalf("claimed for a gone endpoint: %q", deliveryLines(ds))
	}
	failed, _ := repo.ListDeliveries(ctx, domain.DeliveryFilter{State: domain.DeliveryFailed}, 10)
	if len(failed) != 2 || failed[0].LastStatus != 410 {
		t.Fatalf("failed = %q", deliveryLines(failed))
	}
	// The same URL again: still gone. A new URL: deliveries resume, the
	// events written meanwhile included.
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/a"); err != nil {
		t.Fatal(err)
	}
	if ds := claimDeliveries(t, repo, "crm", "i", time.Minute, 10); len(ds) != 0 {
		t.Fatalf("claimed after re-registering the same URL: %q", deliveryLines(ds))
	}
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/b"); err != nil {
		t.Fatal(err)
	}
	fanOutAll(t, repo, "crm", kinds, 3)
	if ds := claimDeliveries(t, repo, "crm", "i", time.Minute, 10); len(ds) != 1 || ds[0].Event.User != "cid" {
		t.Fatalf("after a new URL, claimed %q; want cid's event", deliveryLines(ds))
	}
	// Gone again; redelivering ann's failed delivery revives the endpoint.
	if _, err := repo.MarkEventTargetGone(ctx, "crm", "gone"); err != nil {
		t.Fatal(err)
	}
	if n, err := repo.RedeliverDeliveries(ctx, failed[0].Event.Cursor.Seq, ""); err != nil || n != 1 {
		t.Fatalf("redeliver = %d, %v", n, err)
	}
	if ds := claimDeliveries(t, repo, "crm", "i", time.Minute, 10); len(ds) != 1 || ds[0].Event.User != "ann" {
		t.Fatalf("after redelivering to a gone endpoint, claimed %q; want ann's", deliveryLines(ds))
	}
}

// testRevocationDelivery: deleting with revocation moves the ciphertexts
// into the tokens.deleted event and queues a revocation; its outcome
// writes its event and forgets the tokens, after which it cannot be
// redelivered.
func testRevocationDelivery(t *testing.T, repo Repository) {
	ctx := context.Background()
	gl := domain.ProviderGitLab
	if err := repo.DeleteAuthTokensRevoking(ctx, "ann", gl); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("DeleteAuthTokensRevoking(missing) = %v", err)
	}
	stored := put(t, repo, Sample("ann", gl, "1"))
	if err := repo.DeleteAuthTokensRevoking(ctx, "ann", gl); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.GetAuthTokens(ctx, "ann", gl); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("after the delete: %v", err)
	}
	var ds []domain.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(ds) == 0 && time.Now().Before(deadline) {
		ds = claimDeliveries(t, repo, domain.RevocationTarget, "i", time.Minute, 10)
	}
	if got, want := deliveryLines(ds), []string{"revocation tokens.deleted ann/gitlab pending 1"}; !slices.Equal(got, want) {
		t.Fatalf("revocations:\n got %q\nwant %q", got, want)
	}
	tok := ds[0].Tokens
	if tok == nil || tok.KeyID != stored.KeyID || !bytes.Equal(tok.AccessToken, stored.AccessToken) || !bytes.Equal(tok.RefreshToken, stored.RefreshToken) {
		t.Fatalf("kept tokens %+v; want the deleted row's ciphertexts", tok)
	}
	if !finish(t, repo, ds[0], domain.DeliveryOutcome{State: domain.DeliveryDelivered, ForgetTokens: true,
		Events: []domain.Event{{Kind: domain.EventRevocationSucceeded, User: "ann", Provider: gl}}}) {
		t.Fatal("revocation outcome not recorded")
	}
	want := []string{"tokens.stored ann/gitlab ", "tokens.deleted ann/gitlab ", "revocation.succeeded ann/gitlab "}
	events, _ := WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 100, len(want))
	if got := eventLines(events); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
	if n, err := repo.RedeliverDeliveries(ctx, ds[0].Event.Cursor.Seq, ""); err != nil || n != 0 {
		t.Errorf("redeliver a revocation whose tokens were forgotten = %d, %v; want 0", n, err)
	}
	// A failed revocation keeps its tokens and can be redelivered.
	put(t, repo, Sample("bob", gl, "1"))
	if err := repo.DeleteAuthTokensRevoking(ctx, "bob", gl); err != nil {
		t.Fatal(err)
	}
	ds = nil
	for len(ds) == 0 && time.Now().Before(deadline) {
		ds = claimDeliveries(t, repo, domain.RevocationTarget, "i", time.Minute, 10)
	}
	if len(ds) != 1 {
		t.Fatalf("bob's revocation: %q", deliveryLines(ds))
	}
	finish(t, repo, ds[0], domain.DeliveryOutcome{State: domain.DeliveryFailed, Error: "rejected",
		Events: []domain.Event{{Kind: domain.EventRevocationFailed, User: "bob", Provider: gl, Reason: domain.CodeRevocationRejected}}})
	if n, err := repo.RedeliverDeliveries(ctx, ds[0].Event.Cursor.Seq, domain.RevocationTarget); err != nil || n != 1 {
		t.Fatalf("redeliver a failed revocation = %d, %v; want 1", n, err)
	}
	again := claimDeliveries(t, repo, domain.RevocationTarget, "i", time.Minute, 10)
	if len(again) != 1 || again[0].Tokens == nil {
		t.Fatalf("redelivered revocation = %+v; want it with its tokens", again)
	}
}
