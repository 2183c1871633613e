// Package webhook sends events to the application's webhook receivers, as
// the Standard Webhooks specification (https://www.standardwebhooks.com/,
// spec/standard-webhooks.md) has it, so that receivers can verify them with
// that project's libraries or Svix's: a POST of the event's JSON with the
// headers webhook-id (stable across retries, the receiver's idempotency
// key), webhook-timestamp (the attempt's time, in Unix seconds) and
// webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>", one
// per signing secret, space-separated, so a secret can be rotated without
// downtime).
//
// Signing is the standard-webhooks project's Go library (MIT, from Svix,
// the specification's reference implementation); it depends on nothing
// but the standard library.
//
// This package sends one message to one endpoint and says how it went
// (Deliver); which events to send, when to retry (domain.RetrySchedule) and
// what to record are the delivery worker's.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/adapters/internal/printable"
	"github.com/tokenstore/tokenstore/domain"
)

// maxDrainBytes bounds what is read of a receiver's answer (to reuse the
// connection); the body is never quoted: a receiver may echo anything.
const maxDrainBytes = 64 << 10

// maxIDLen bounds a message id, which is sent in a header.
const maxIDLen = 256

// Errors of Deliver, found with errors.Is.
var (
	// ErrUndelivered: the receiver did not take the message (no 2xx
	// answer, a redirect, a timeout, a connection failure); try again later,
	// as domain.RetrySchedule says. A *domain.RetryAtError wraps it when the
	// receiver said when (Retry-After).
	ErrUndelivered = errors.New("webhook not delivered")
	// ErrEndpointGone: the receiver answered 410 Gone, which the Standard
	// Webhooks specification reserves for "no longer interested in receiving
	// webhooks": stop sending to this endpoint until its configuration
	// changes.
	ErrEndpointGone = errors.New("webhook endpoint gone (HTTP 410): it asks not to be sent webhooks any more")
	// ErrInvalidMessage: the message cannot be sent (an empty id or one with
	// a '.' or a character a header cannot carry); retrying will not help.
	ErrInvalidMessage = errors.New("invalid webhook message")
)

// DeliveryError says why one delivery failed. It wraps ErrUndelivered or
// ErrEndpointGone, and for a transport failure the transport's error (its
// text carries no URL: an endpoint's query may hold a token of the
// receiver's).
type DeliveryError struct {
	Endpoint string // the endpoint's name
	Status   int    // the HTTP status answered, 0 when there was no answer
	Reason   string // what happened, in the operator's words
	err      error  // ErrUndelivered or ErrEndpointGone
	cause    error  // the transport's error, or nil
}

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("webhook %s: %s", e.Endpoint, e.Reason)
}

// Unwrap returns ErrUndelivered or ErrEndpointGone, and the transport's
// error when there was one.
func (e *DeliveryError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.err, e.cause}
	}
	return []error{e.err}
}

// Message is one delivery attempt of an event.
type Message struct {
	// ID is the event's webhook-id: the same for every attempt of one event
	// (receivers deduplicate with it); no '.', printable ASCII, at most
	// 256 bytes (Standard Webhooks: "not allowed to include any .").
	ID string
	// Timestamp is the attempt's time, sent in whole seconds; zero is the
	// sender's clock now. The specification signs the attempt's time, not
	// the event's, so that receivers can refuse replays.
	Timestamp time.Time
	// Body is the event's JSON, sent and signed byte for byte.
	Body []byte
}

// Sender posts messages to endpoints. It is safe for concurrent use.
type Sender struct {
	client *http.Client
	now    func() time.Time
}

// Option adjusts New.
type Option func(*Sender)

// WithHTTPClient sends through a copy of c (its Transport: a proxy, a CA
// pool), which never follows a redirect: a receiver that redirects is
// misconfigured, and following it would hand the event to another URL.
// Each delivery's time limit is its endpoint's Timeout, not c.Timeout.
// nil is ignored.
func WithHTTPClient(c *http.Client) Option {
	return func(s *Sender) {
		if c != nil {
			cp := *c
			s.client = &cp
		}
	}
}

// WithClock sets the clock of a Message without a Timestamp (default
// time.Now). nil is ignored.
func WithClock(now func() time.Time) Option {
	return func(s *Sender) {
		if now != nil {
			s.now = now
		}
	}
}

// New returns a Sender using http.DefaultTransport unless WithHTTPClient
// says otherwise.
func New(opts ...Option) *Sender {
	s := &Sender{client: &http.Client{}, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	s.client.Timeout = 0 // each delivery's context carries its endpoint's timeout
	s.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return s
}

// Deliver posts m to ep, signed with each of ep's secrets, within
// ep.Timeout, and reports how it went:
//
//   - nil: the receiver answered 2xx; the event is delivered.
//   - ErrEndpointGone (HTTP 410): stop sending to ep.
//   - ErrUndelivered, in a *DeliveryError naming the status or the failure,
//     for everything else, which the Standard Webhooks specification counts
//     as a failure to retry ("non-2xx response status codes (e.g: 404 and
//     500), request timeouts, connection resets"): 4xx included, since a
//     receiver answering 401 or 404 is usually mid-deploy or misconfigured
//     and fixed within the retry window, and the retry window ends it
//     anyway; a 3xx is a refused redirect. When the answer carries
//     Retry-After (429, 503 or any other), a *domain.RetryAtError wraps it
//     with the time the receiver asked for.
//   - ErrInvalidMessage: m cannot be sent.
//   - the context's error (wrapped in ErrUndelivered) when ctx ended first.
//
// The answer's body is read (at most 64 KiB) and discarded, never quoted.
func (s *Sender) Deliver(ctx context.Context, ep Endpoint, m Message) error {
	_, err := s.deliver(ctx, ep, m)
	return err
}

// deliver is Deliver, also reporting the HTTP status answered (0: none).
func (s *Sender) deliver(ctx context.Context, ep Endpoint, m Message) (int, error) {
	if err := checkID(m.ID); err != nil {
		return 0, fmt.Errorf("webhook %s: %w: id %w", ep.Name, ErrInvalidMessage, err)
	}
	if len(ep.signers) == 0 {
		return 0, fmt.Errorf("webhook %s: %w: the endpoint has no signing secret (build it with NewEndpoints)", ep.Name, ErrInvalidMessage)
	}
	ts := m.Timestamp
	if ts.IsZero() {
		ts = s.now()
	}
	sigs := make([]string, 0, len(ep.signers))
	for _, w := range ep.signers {
		sig, err := w.Sign(m.ID, ts, m.Body)
		if err != nil { // the library never fails to sign; never quote it anyway
			return 0, fmt.Errorf("webhook %s: %w: signing failed", ep.Name, ErrInvalidMessage)
		}
		sigs = append(sigs, sig)
	}

	ctx, cancel := context.WithTimeout(ctx, ep.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(m.Body))
	if err != nil {
		return 0, &DeliveryError{Endpoint: ep.Name, Reason: "building the request failed", err: ErrUndelivered}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tokenstore-webhook")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", strings.Join(sigs, " "))

	resp, err := s.client.Do(req)
	if err != nil {
		return 0, transportError(ep, ctx, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrainBytes))

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return code, nil
	case code == http.StatusGone:
		return code, &DeliveryError{Endpoint: ep.Name, Status: code, Reason: ErrEndpointGone.Error(), err: ErrEndpointGone}
	}
	de := &DeliveryError{Endpoint: ep.Name, Status: code, Reason: fmt.Sprintf("answered HTTP %d", code), err: ErrUndelivered}
	if code >= 300 && code < 400 {
		de.Reason = fmt.Sprintf("answered HTTP %d, a redirect, which is never followed: set the endpoint's url to where it points", code)
	}
	if at, ok := retryAfter(resp.Header.Get("Retry-After"), s.now()); ok {
		de.Reason += ", asking to retry after " + at.UTC().Format(time.RFC3339)
		return code, &domain.RetryAtError{At: at, Err: de}
	}
	return code, de
}

// transportError names a failure without an answer. The *url.Error's text
// (which quotes the URL) is dropped; its cause is kept.
func transportError(ep Endpoint, ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	de := &DeliveryError{Endpoint: ep.Name, err: ErrUndelivered, cause: err}
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		de.Reason = fmt.Sprintf("no answer within its timeout (%s)", ep.Timeout)
	case ctx.Err() != nil:
		de.Reason = "cancelled: " + ctx.Err().Error()
	default:
		de.Reason = "connection failed: " + printable.Clip(err.Error(), 200)
	}
	return de
}

// retryAfter reads a Retry-After header (RFC 9110 §10.2.3: delay-seconds or
// an HTTP-date) into a time after now; ok is false when absent or invalid.
func retryAfter(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return now.Add(time.Duration(secs) * time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t, true
	}
	return time.Time{}, false
}

// checkID refuses an id that is empty, too long, holds a '.' (it delimits
// the signed content) or anything but printable ASCII.
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("is empty")
	case len(id) > maxIDLen:
		return fmt.Errorf("is longer than %d bytes", maxIDLen)
	case strings.Contains(id, "."):
		return errors.New("contains '.', which delimits the signed content")
	case strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
		return errors.New("holds a character other than printable ASCII")
	}
	return nil
}
