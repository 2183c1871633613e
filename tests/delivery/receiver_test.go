package delivery_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	svix "github.com/svix/svix-webhooks/go"
)

// hit is one request a receiver got.
type hit struct {
	id     string // webhook-id
	header http.Header
	body   []byte
	// status is what the receiver answered; 0 while it holds the request
	// (or when it never answered: the sender gave up).
	status int
}

// payload is a webhook body (webhook.Payload).
type payload struct {
	Type      string    `json:"type"`
	Timestamp string    `json:"timestamp"`
	Data      feedEvent `json:"data"`
}

// receiver is a webhook endpoint started by a test: it records every
// request, verifies each signature with Svix's verifier (an implementation
// independent of the standard-webhooks library tokenstore signs with) for
// every secret it was given, and answers what answer says.
type receiver struct {
	t *testing.T
	*server
	verifiers []*svix.Webhook

	mu       sync.Mutex
	answer   func(h *hit, r *http.Request) int
	hits     []*hit
	accepted []string       // webhook-ids in the order of their first 2xx
	taken    map[string]int // webhook-id → number of 2xx answers
	badSigs  []string       // what failed verification
}

// newReceiver starts a receiver verifying with each of signing, answering
// 200 until told otherwise.
func (s *suite) newReceiver(signing ...string) *receiver {
	s.t.Helper()
	r := &receiver{t: s.t, taken: map[string]int{}, answer: func(*hit, *http.Request) int { return http.StatusOK }}
	for _, secret := range signing {
		wh, err := svix.NewWebhook(secret)
		if err != nil {
			s.t.Fatal(err)
		}
		r.verifiers = append(r.verifiers, wh)
	}
	r.server = serve(s.t, http.HandlerFunc(r.serveHTTP))
	s.t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.badSigs) > 0 {
			s.t.Errorf("signatures that Svix's verifier refused: %q", r.badSigs)
		}
		// No webhook carries token material or a signing secret.
		var all strings.Builder
		for _, h := range r.hits {
			_ = h.header.Write(&all)
			all.Write(h.body)
		}
		s.checkNoSecretIn(s.t, "a webhook request", all.String())
	})
	return r
}

func (r *receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return // the sender gave up
	}
	h := &hit{id: req.Header.Get("webhook-id"), header: req.Header.Clone(), body: body}
	r.mu.Lock()
	r.hits = append(r.hits, h)
	for i, v := range r.verifiers {
		if err := v.Verify(body, req.Header); err != nil {
			r.badSigs = append(r.badSigs, fmt.Sprintf("%s with secret #%d: %v", h.id, i+1, err))
		}
	}
	answer := r.answer
	r.mu.Unlock()

	status := answer(h, req) // may hold the request
	if req.Context().Err() != nil {
		return // the sender gave up: it never sees an answer
	}
	r.mu.Lock()
	h.status = status
	if status >= 200 && status < 300 {
		if r.taken[h.id] == 0 {
			r.accepted = append(r.accepted, h.id)
		}
		r.taken[h.id]++
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

// setAnswer changes how the receiver answers from now on.
func (r *receiver) setAnswer(f func(h *hit, req *http.Request) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

// answerAll answers every request with status.
func (r *receiver) answerAll(status int) {
	r.setAnswer(func(*hit, *http.Request) int { return status })
}

// snapshot returns copies of the hits and of the first-acceptance order.
func (r *receiver) snapshot() (hits []hit, accepted []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hits {
		hits = append(hits, *h)
	}
	return hits, slices.Clone(r.accepted)
}

// acceptedSet is the webhook-ids answered 2xx at least once.
func (r *receiver) acceptedSet() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, id := range r.accepted {
		out[id] = true
	}
	return out
}

// countStatus is how many distinct webhook-ids were answered status.
func (r *receiver) countStatus(status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := map[string]bool{}
	for _, h := range r.hits {
		if h.status == status {
			ids[h.id] = true
		}
	}
	return len(ids)
}

// decode parses a hit's body.
func (h hit) decode(t *testing.T) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal(h.body, &p); err != nil {
		t.Fatalf("webhook %s: body is not the payload: %v: %s", h.id, err, h.body)
	}
	return p
}

// waitAccepted waits until the receiver has accepted every id of want.
func (r *receiver) waitAccepted(t *testing.T, want []string) {
	t.Helper()
	eventually(t, fmt.Sprintf("delivery of %d events", len(want)), func() (bool, string) {
		got := r.acceptedSet()
		missing := 0
		for _, id := range want {
			if !got[id] {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d not yet accepted", missing, len(want))
	})
}
