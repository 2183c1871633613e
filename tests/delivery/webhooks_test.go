package delivery_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/tokenstore/tokenstore/adapters/webhook"
)

// idsOf is the webhook-ids of events, in order.
func idsOf(t *testing.T, events []feedEvent) []string {
	t.Helper()
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = webhookID(t, e.Cursor)
	}
	return out
}

// checkBodies fails t unless every hit's body is the payload of the feed
// event with its webhook-id: same cursor, kind, user, provider, reason and
// time, type and timestamp mirroring them.
func checkBodies(t *testing.T, hits []hit, feed []feedEvent) {
	t.Helper()
	byID := map[string]feedEvent{}
	for _, e := range feed {
		byID[webhookID(t, e.Cursor)] = e
	}
	for _, h := range hits {
		p := h.decode(t)
		e, ok := byID[h.id]
		switch {
		case !ok:
			t.Errorf("webhook %s is no event of the feed: %s", h.id, h.body)
		case !sameEvent(p.Data, e):
			t.Errorf("webhook %s carries %+v, the feed has %+v", h.id, p.Data, e)
		case p.Type != e.Kind || p.Timestamp != e.OccurredAt:
			t.Errorf("webhook %s: type %q timestamp %q, want %q %q", h.id, p.Type, p.Timestamp, e.Kind, e.OccurredAt)
		}
	}
}

func sameEvent(a, b feedEvent) bool {
	return a.Cursor == b.Cursor && a.Kind == b.Kind && a.User == b.User && a.provider() == b.provider() &&
		a.reason() == b.reason() && a.OccurredAt == b.OccurredAt
}

// TestReceiverDownThenBack: events written while the receiver answers 503,
// and while it refuses connections (its listener closed), are all
// delivered once it is back, none lost: the receiver ends up accepting
// exactly the feed's events, each body the feed's event.
func TestReceiverDownThenBack(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	secret := s.newSigningSecret()
	rcv := s.newReceiver(secret)
	rcv.answerAll(http.StatusServiceUnavailable)
	c := s.start(setup{instances: 2, endpoints: []webhook.Endpoint{s.endpoint("crm", rcv.URL(), allKinds(), 5*time.Second, secret)}})
	c.waitRegistered(t, "crm")

	// 503: each event goes to another user, so each is attempted at once
	// (one user's events wait for the earlier ones).
	for i := range 6 {
		c.putTokens(t, i%2, fmt.Sprintf("busy-%d", i), "gitlab", false)
	}
	c.putOffline(t, 1, "busy-0")
	eventually(t, "503 answers to every event", func() (bool, string) {
		n := rcv.countStatus(http.StatusServiceUnavailable)
		return n >= 7, fmt.Sprintf("%d events answered 503", n)
	})

	// Connections refused.
	rcv.down()
	for i := range 6 {
		c.putTokens(t, i%2, fmt.Sprintf("refused-%d", i), "github", false)
	}
	c.deleteTokens(t, 0, "busy-1", "gitlab")
	eventually(t, "refused connections", func() (bool, string) {
		n := c.count(t, `SELECT count(*) FROM deliveries
			WHERE target = 'crm' AND user_id LIKE 'refused-%' AND attempts > 0 AND last_status = 0 AND last_error LIKE '%connection refused%'`)
		return n == 6, fmt.Sprintf("%d of 6 deliveries were last refused a connection", n)
	})

	// Back.
	rcv.answerAll(http.StatusOK)
	rcv.up()
	feed, _ := c.feedUntil(t, 0, "", 14, 5)
	if len(feed) != 14 {
		t.Fatalf("the feed holds %d events, want the 14 written", len(feed))
	}
	want := idsOf(t, feed)
	rcv.waitAccepted(t, want)
	eventually(t, "every delivery recorded", func() (bool, string) {
		n := c.count(t, `SELECT count(*) FROM deliveries WHERE target = 'crm' AND state <> 'delivered'`)
		return n == 0, fmt.Sprintf("%d deliveries not recorded delivered", n)
	})
	hits, accepted := rcv.snapshot()
	if got, w := sorted(accepted), sorted(want); !slices.Equal(got, w) {
		t.Errorf("the receiver accepted %q, the feed holds %q", got, w)
	}
	checkBodies(t, hits, feed)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// TestThreeInstancesDeliverOnce: three instances share one endpoint; with
// none dying, each event reaches the receiver exactly once.
func TestThreeInstancesDeliverOnce(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	secret := s.newSigningSecret()
	rcv := s.newReceiver(secret)
	c := s.start(setup{instances: 3, endpoints: []webhook.Endpoint{s.endpoint("crm", rcv.URL(), allKinds(), 20*time.Second, secret)}})
	c.waitRegistered(t, "crm")

	const perInstance = 20
	var wg sync.WaitGroup
	errs := make(chan error, 3*perInstance)
	for i := range 3 {
		wg.Go(func() {
			for j := range perInstance {
				if err := c.putTokensE(i, fmt.Sprintf("once-%d-%d", i, j%7), "gitlab"); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	feed, _ := c.feedUntil(t, 1, "", 3*perInstance, 50)
	if len(feed) != 3*perInstance {
		t.Fatalf("the feed holds %d events, want the %d written", len(feed), 3*perInstance)
	}
	want := idsOf(t, feed)
	rcv.waitAccepted(t, want)
	// Once every delivery is recorded delivered, none can be sent again.
	eventually(t, "every delivery recorded", func() (bool, string) {
		n := c.count(t, `SELECT count(*) FROM deliveries WHERE target = 'crm' AND state <> 'delivered'`)
		return n == 0, fmt.Sprintf("%d deliveries not recorded delivered", n)
	})
	hits, _ := rcv.snapshot()
	times := map[string]int{}
	for _, h := range hits {
		times[h.id]++
	}
	for _, id := range want {
		if times[id] != 1 {
			t.Errorf("event %s reached the receiver %d times, want once", id, times[id])
		}
	}
	if len(hits) != len(want) {
		t.Errorf("the receiver got %d requests for %d events", len(hits), len(want))
	}
	checkBodies(t, hits, feed)
}

// TestInstanceDiesMidDelivery: the instance sending an event dies while
// the receiver holds the request open (it loses its database, so it never
// records an outcome, and its request ends unanswered at the endpoint's
// timeout); once its lease (timeout + slack) lapses another instance sends
// the same event with the same webhook-id and a byte-identical body, and
// the same user's next event only after it.
func TestInstanceDiesMidDelivery(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	secret := s.newSigningSecret()
	rcv := s.newReceiver(secret)
	held := make(chan struct{})  // the first request arrived
	ended := make(chan struct{}) // ... and its sender gave up
	var first sync.Once
	rcv.setAnswer(func(h *hit, r *http.Request) int {
		hold := false
		first.Do(func() { hold = true })
		if !hold {
			return http.StatusOK
		}
		close(held)
		<-r.Context().Done() // never answered
		close(ended)
		return 0
	})
	ep := s.endpoint("crm", rcv.URL(), allKinds(), 3*time.Second, secret)
	victim := s.start(setup{endpoints: []webhook.Endpoint{ep}})
	victim.waitRegistered(t, "crm")
	victim.putTokens(t, 0, "dies", "gitlab", false)
	victim.putTokens(t, 0, "dies", "gitlab", false)
	select {
	case <-held:
	case <-time.After(within):
		t.Fatal("the first delivery never arrived")
	}

	// The victim dies: it loses the database (its pool closes, as a
	// killed process's connections would), so the outcome of the send in
	// flight can never be recorded.
	victim.run.Instances[0].Pool.Close()
	select {
	case <-ended:
	case <-time.After(within):
		t.Fatal("the held request never ended")
	}
	var (
		state, owner string
		attempts     int
	)
	if err := victim.run.DB.QueryRow(context.Background(), `
		SELECT d.state, coalesce(d.lease_owner, ''), d.attempts FROM deliveries AS d
		WHERE d.target = 'crm' ORDER BY d.xact_id, d.event_id LIMIT 1`).Scan(&state, &owner, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != "pending" || owner != victim.run.Instances[0].Name || attempts != 1 {
		t.Fatalf("after the victim's send ended the delivery is %s, leased to %q, %d attempts; want pending, leased to %s, 1 attempt",
			state, owner, attempts, victim.run.Instances[0].Name)
	}

	others := s.start(setup{instances: 2, dsn: victim.run.DSN, keys: victim.run.Keys, endpoints: []webhook.Endpoint{ep}})
	feed, _ := others.feedUntil(t, 0, "", 2, 10)
	if len(feed) != 2 {
		t.Fatalf("the feed holds %d events, want the 2 written", len(feed))
	}
	want := idsOf(t, feed)
	rcv.waitAccepted(t, want)
	hits, accepted := rcv.snapshot()
	if !slices.Equal(accepted, want) {
		t.Errorf("accepted %q, want the feed's order %q", accepted, want)
	}
	var again []hit
	for _, h := range hits {
		if h.id == want[0] {
			again = append(again, h)
		}
	}
	if len(again) != 2 {
		t.Fatalf("event %s reached the receiver %d times, want 2 (the held request, then another instance's)", want[0], len(again))
	}
	if again[0].status != 0 || again[1].status != http.StatusOK {
		t.Errorf("answers to %s: %d then %d, want none then 200", want[0], again[0].status, again[1].status)
	}
	if !bytes.Equal(again[0].body, again[1].body) {
		t.Errorf("the resent body differs:\n first %s\nresent %s", again[0].body, again[1].body)
	}
	checkBodies(t, hits, feed)
	eventually(t, "every delivery recorded", func() (bool, string) {
		n := others.count(t, `SELECT count(*) FROM deliveries WHERE target = 'crm' AND state <> 'delivered'`)
		return n == 0, fmt.Sprintf("%d deliveries not recorded delivered", n)
	})
	if n := others.count(t, `SELECT attempts FROM deliveries WHERE target = 'crm' AND 'ev_' || event_id = $1`, want[0]); n != 2 {
		t.Errorf("the event's delivery counts %d attempts, want 2", n)
	}
}

// TestSignaturesVerify: every delivery verifies with Svix's verifier; with
// two secrets in the secret file (a rotation), it verifies with either
// alone, and not with a secret the endpoint does not hold.
func TestSignaturesVerify(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	one, old, current := s.newSigningSecret(), s.newSigningSecret(), s.newSigningSecret()
	single := s.newReceiver(one)
	rotating := s.newReceiver(old, current) // each verifier alone must accept every request
	c := s.start(setup{endpoints: []webhook.Endpoint{
		s.endpoint("single", single.URL(), allKinds(), 10*time.Second, one),
		s.endpoint("rotating", rotating.URL(), allKinds(), 10*time.Second, old, current),
	}})
	c.waitRegistered(t, "single")
	c.waitRegistered(t, "rotating")
	c.putTokens(t, 0, "signed", "gitlab", false)
	c.putOffline(t, 0, "signed")
	c.deleteTokens(t, 0, "signed", "gitlab")
	feed, _ := c.feedUntil(t, 0, "", 3, 10)
	want := idsOf(t, feed)
	single.waitAccepted(t, want)
	rotating.waitAccepted(t, want)

	stranger, err := svix.NewWebhook(s.newSigningSecret())
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*receiver{"single": single, "rotating": rotating} {
		hits, _ := r.snapshot()
		for _, h := range hits {
			if err := stranger.Verify(h.body, h.header); err == nil {
				t.Errorf("%s: %s verifies with a secret the endpoint does not hold", name, h.id)
			}
			if n := len(strings.Fields(h.header.Get("webhook-signature"))); n != len(r.verifiers) {
				t.Errorf("%s: %s carries %d signatures, want one per secret (%d)", name, h.id, n, len(r.verifiers))
			}
			tampered := append(bytes.Clone(h.body[:len(h.body)-1]), ' ', '}')
			if err := r.verifiers[0].Verify(tampered, h.header); err == nil {
				t.Errorf("%s: %s verifies with a changed body", name, h.id)
			}
		}
		checkBodies(t, hits, feed)
	}
	// The receivers' own checks (every request against every secret given)
	// run when the test ends.
}

// TestOrderPerUserAndProvider: many concurrent updates for a few users and
// two providers, the receiver failing 30% of the requests at random: for
// each (user, provider) the order in which the receiver first accepted
// the events is the feed's (commit) order.
func TestOrderPerUserAndProvider(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	secret := s.newSigningSecret()
	rcv := s.newReceiver(secret)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	rcv.setAnswer(func(*hit, *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() < 0.3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	c := s.start(setup{instances: 2, endpoints: []webhook.Endpoint{s.endpoint("crm", rcv.URL(), allKinds(), 10*time.Second, secret)}})
	c.waitRegistered(t, "crm")

	users, providers := []string{"ann", "bob", "cy", "dee"}, []string{"gitlab", "github"}
	const writers, writes = 3, 5
	var wg sync.WaitGroup
	errs := make(chan error, len(users)*len(providers)*writers*writes)
	for _, u := range users {
		for _, p := range providers {
			for w := range writers {
				wg.Go(func() {
					for range writes {
						if err := c.putTokensE(w%2, u, p); err != nil {
							errs <- err
						}
					}
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Then each pair is deleted and stored again: other kinds in the chain.
	for _, u := range users {
		for _, p := range providers {
			c.deleteTokens(t, 1, u, p)
			c.putTokens(t, 0, u, p, false)
		}
	}
	n := len(users) * len(providers) * (writers*writes + 2)
	feed, _ := c.feedUntil(t, 0, "", n, 100)
	if len(feed) != n {
		t.Fatalf("the feed holds %d events, want %d", len(feed), n)
	}
	rcv.waitAccepted(t, idsOf(t, feed))
	if got := rcv.countStatus(http.StatusInternalServerError); got == 0 {
		t.Fatal("the receiver never failed: the test proves nothing")
	}

	wantOrder := map[string][]string{}
	for _, e := range feed {
		key := e.User + "/" + e.provider()
		wantOrder[key] = append(wantOrder[key], webhookID(t, e.Cursor))
	}
	hits, accepted := rcv.snapshot()
	pairOf := map[string]string{}
	for _, h := range hits {
		p := h.decode(t)
		pairOf[h.id] = p.Data.User + "/" + p.Data.provider()
	}
	gotOrder := map[string][]string{}
	for _, id := range accepted {
		gotOrder[pairOf[id]] = append(gotOrder[pairOf[id]], id)
	}
	for key, want := range wantOrder {
		if !slices.Equal(gotOrder[key], want) {
			t.Errorf("%s: accepted in the order %q, the feed's is %q", key, gotOrder[key], want)
		}
	}
	checkBodies(t, hits, feed)
}

// TestFeedAcrossRestart: paging through GET /v1/events with a cursor,
// stopping every instance and starting new ones on the same database,
// then continuing from the saved cursor and reading again from the start
// gives the same events in the same order, nothing lost or repeated.
func TestFeedAcrossRestart(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	c := s.start(setup{instances: 2})
	write := func(c *cluster, prefix string, n int) {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				if err := c.putTokensE(i%2, fmt.Sprintf("%s-%d", prefix, i%5), []string{"gitlab", "github"}[i%2]); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	write(c, "before", 24)
	all, _ := c.feedUntil(t, 0, "", 24, 7)
	// Read the first two pages, from the other instance, and keep the cursor.
	p1 := c.feedPage(t, 1, "", 7)
	p2 := c.feedPage(t, 1, p1.Next, 7)
	saved := p2.Next
	read := append(slices.Clone(p1.Events), p2.Events...)
	if !slices.Equal(cursors(read), cursors(all[:14])) {
		t.Fatalf("the two instances page differently:\n%q\n%q", cursors(read), cursors(all[:14]))
	}

	for _, in := range c.run.Instances {
		if err := in.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	c2 := s.start(setup{instances: 2, dsn: c.run.DSN, keys: c.run.Keys})
	write(c2, "after", 10)
	rest, _ := c2.feedUntil(t, 1, saved, 24+10-14, 7)
	fresh, _ := c2.feedUntil(t, 0, "", 34, 7)
	if !slices.Equal(cursors(fresh[:24]), cursors(all)) {
		t.Errorf("after the restart the feed starts with\n%q\nbefore it it held\n%q", cursors(fresh[:24]), cursors(all))
	}
	if !slices.Equal(cursors(append(read, rest...)), cursors(fresh)) {
		t.Errorf("continuing from the saved cursor gives\n%q\nreading from the start\n%q", cursors(append(read, rest...)), cursors(fresh))
	}
	seen := map[string]bool{}
	for _, e := range fresh {
		if seen[e.Cursor] {
			t.Errorf("event %s listed twice", e.Cursor)
		}
		seen[e.Cursor] = true
	}
	// The feed is the events table in commit order, all of it.
	if n := c2.count(t, `SELECT count(*) FROM events`); n != len(fresh) {
		t.Errorf("the feed lists %d events, the table holds %d", len(fresh), n)
	}
}

func cursors(events []feedEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Cursor + " " + e.Kind + " " + e.User + "/" + e.provider()
	}
	return out
}

// TestGivenUpAfterMaxAge: an event the receiver keeps refusing is marked
// failed once its retry window (the endpoint's max_age) ends, and the same
// user's next event, held back behind it until then, is delivered.
func TestGivenUpAfterMaxAge(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	secret := s.newSigningSecret()
	rcv := s.newReceiver(secret)
	var mu sync.Mutex
	refused := "" // the first event's webhook-id
	rcv.setAnswer(func(h *hit, _ *http.Request) int {
		mu.Lock()
		defer mu.Unlock()
		if refused == "" {
			refused = h.id
		}
		if h.id == refused {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	ep := s.endpoint("crm", rcv.URL(), allKinds(), 5*time.Second, secret)
	ep.MaxAge = 2 * time.Second
	c := s.start(setup{endpoints: []webhook.Endpoint{ep}})
	c.waitRegistered(t, "crm")
	c.putTokens(t, 0, "stuck", "gitlab", false)
	c.putTokens(t, 0, "stuck", "gitlab", false)
	feed, _ := c.feedUntil(t, 0, "", 2, 10)
	want := idsOf(t, feed)
	rcv.waitAccepted(t, want[1:])
	var state string
	var attempts int
	if err := c.run.DB.QueryRow(context.Background(), `SELECT state, attempts FROM deliveries WHERE target = 'crm' AND 'ev_' || event_id = $1`,
		want[0]).Scan(&state, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != "failed" || attempts < 2 {
		t.Errorf("the refused event's delivery is %s after %d attempts, want failed after retries", state, attempts)
	}
	hits, _ := rcv.snapshot()
	for i, h := range hits {
		if h.id == want[1] && slices.ContainsFunc(hits[i:], func(h hit) bool { return h.id == want[0] }) {
			t.Errorf("the user's second event was sent while the first was still being retried")
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if refused != want[0] {
		t.Errorf("the first request was for %s, want the first event %s", refused, want[0])
	}
}

// TestStopWaitsForTheSendInFlight: stopping an instance (a deploy, not a
// crash) while it sends lets the send finish and records its outcome, so
// the event is not sent again.
func TestStopWaitsForTheSendInFlight(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	secret := s.newSigningSecret()
	rcv := s.newReceiver(secret)
	held := make(chan struct{}, 1)
	apiAddr := make(chan string, 1)
	rcv.setAnswer(func(*hit, *http.Request) int {
		held <- struct{}{}
		// Answer once the stop is under way: it closes the API first.
		addr := <-apiAddr
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return http.StatusOK
			}
			_ = conn.Close()
			time.Sleep(20 * time.Millisecond)
		}
	})
	c := s.start(setup{endpoints: []webhook.Endpoint{s.endpoint("crm", rcv.URL(), allKinds(), 30*time.Second, secret)}})
	c.waitRegistered(t, "crm")
	c.putTokens(t, 0, "deployed", "gitlab", false)
	select {
	case <-held:
	case <-time.After(within):
		t.Fatal("the delivery never arrived")
	}
	apiAddr <- strings.TrimPrefix(c.run.Instances[0].URL, "http://")
	if err := c.run.Instances[0].Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	var state string
	var attempts int
	if err := c.run.DB.QueryRow(context.Background(), `SELECT state, attempts FROM deliveries WHERE target = 'crm'`).Scan(&state, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != "delivered" || attempts != 1 {
		t.Errorf("after the stop the delivery is %s after %d attempts, want delivered after 1", state, attempts)
	}
	if hits, _ := rcv.snapshot(); len(hits) != 1 || hits[0].status != http.StatusOK {
		t.Errorf("the receiver got %d requests, want 1 answered 200", len(hits))
	}
}
