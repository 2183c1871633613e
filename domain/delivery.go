package domain

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// RevocationTarget is the delivery target of upstream revocation: deleted
// tokens revoked at their provider (revoke_on_delete). Webhook endpoint
// names are the other targets; none can be spelt "revocation" (the
// setting refuses it).
const RevocationTarget = "revocation"

// Machine codes of failed revocations (EventRevocationFailed's Reason).
const (
	// CodeRevocationRejected: the provider refused the revocation request
	// (ErrRevocationRejected: a wrong client or revocation URL).
	CodeRevocationRejected = "revocation_rejected"
	// CodeRevocationNotSupported: the provider has no revocation
	// (ErrRevocationNotSupported), or revoke_on_delete was turned off.
	CodeRevocationNotSupported = "revocation_not_supported"
	// CodeRevocationUndecryptable: the tokens kept for revocation could not
	// be opened (their key left the keyring).
	CodeRevocationUndecryptable = "revocation_tokens_undecryptable"
	// CodeRevocationSuperseded: the user stored tokens for the provider
	// again before the revocation ran, and revoking at this provider
	// would end them too (ports.TokenRevoker.RevokesGrant): nothing was
	// revoked.
	CodeRevocationSuperseded = "revocation_superseded"
)

// MaxDeliveryError is the longest DeliveryOutcome.Error storage takes, in
// characters.
const MaxDeliveryError = 300

// DeliveryState is where a delivery stands.
type DeliveryState string

// The delivery states.
const (
	// DeliveryPending: not yet delivered; due at NextAttemptAt.
	DeliveryPending DeliveryState = "pending"
	// DeliveryDelivered: the target took the event (a 2xx answer; a
	// revocation the provider confirmed).
	DeliveryDelivered DeliveryState = "delivered"
	// DeliveryFailed: given up (the retry window ended, or a permanent
	// refusal); `tokenstore events redeliver` queues it again.
	DeliveryFailed DeliveryState = "failed"
)

// ParseDeliveryState accepts "pending", "delivered" and "failed".
func ParseDeliveryState(s string) (DeliveryState, bool) {
	switch st := DeliveryState(s); st {
	case DeliveryPending, DeliveryDelivered, DeliveryFailed:
		return st, true
	}
	return "", false
}

// Delivery is one event bound for one target (a webhook endpoint's name or
// RevocationTarget), as storage holds it. Deliveries of one target, user
// and provider are attempted in the commit order of their events, one at a
// time.
type Delivery struct {
	Target string
	Event  Event
	State  DeliveryState
	// Attempt is the number of attempts started (a claim starts one); it
	// fences the outcome of an attempt whose lease lapsed.
	Attempt int
	// RetryFrom starts the retry window (RetrySchedule.MaxAge runs from
	// it): the event's time, or when an operator redelivered it.
	RetryFrom     time.Time
	NextAttemptAt time.Time
	LeaseOwner    string // the instance sending it now, or empty
	LeaseUntil    time.Time
	LastStatus    int    // the last attempt's HTTP status, 0 without an answer
	LastError     string // the last attempt's failure, in the operator's words; never token material
	FinishedAt    time.Time
	// Tokens are the deleted tokens a revocation delivery revokes, sealed
	// as they were stored; nil for webhook deliveries and once revoked.
	Tokens *SealedRevocation
}

// WebhookID is the delivery's webhook-id header: the event's, the same for
// every attempt and every endpoint, so receivers deduplicate with it
// (Standard Webhooks: "the same when the message is retried").
func (e Event) WebhookID() string { return webhookIDPrefix + strconv.FormatInt(e.Cursor.Seq, 10) }

const webhookIDPrefix = "ev_"

// ParseWebhookID reads WebhookID's form, "ev_<id>" with the event's id
// (EventCursor.Seq) in canonical decimal: positive, no sign, no leading
// zero. It returns the id; anything else is an error saying the form.
func ParseWebhookID(s string) (int64, error) {
	digits, ok := strings.CutPrefix(s, webhookIDPrefix)
	id, err := strconv.ParseInt(digits, 10, 64)
	if !ok || err != nil || id <= 0 || strconv.FormatInt(id, 10) != digits {
		return 0, errors.New("not a webhook-id: ev_ followed by the event's number, such as ev_123")
	}
	return id, nil
}

// SealedRevocation is what upstream revocation needs of deleted tokens:
// their ciphertexts as auth_tokens held them (still bound to the user and
// provider) and the key id that seals them.
type SealedRevocation struct {
	KeyID        KeyID
	AccessToken  []byte
	RefreshToken []byte // nil: no refresh token was stored
}

// DeliveryOutcome is what one attempt of a delivery came to.
type DeliveryOutcome struct {
	// State: DeliveryDelivered, DeliveryFailed (given up), or
	// DeliveryPending to try again at NextAttemptAt.
	State         DeliveryState
	NextAttemptAt time.Time
	Status        int    // the HTTP status answered, 0 without one
	Error         string // why it failed, at most MaxDeliveryError characters; never token material
	// ForgetTokens clears the event's sealed tokens (a revocation that
	// succeeded).
	ForgetTokens bool
	// Events are written with the outcome, in its transaction (the
	// revocation's outcome event), as the store's event policy allows.
	Events []Event
}

// DeliveryFilter selects deliveries for listing: of Target and in State,
// each when not empty.
type DeliveryFilter struct {
	Target string
	State  DeliveryState
}

// Matches reports whether d passes f.
func (f DeliveryFilter) Matches(d Delivery) bool {
	return (f.Target == "" || d.Target == f.Target) && (f.State == "" || d.State == f.State)
}

// DeliveryCount is how many deliveries of one target are in one state
// (pending or failed), and how old the oldest one's event is.
type DeliveryCount struct {
	Target string
	State  DeliveryState
	Count  int64
	Oldest time.Duration // since the oldest one's event occurred
}
