package domain

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// EventKind names what an event tells the application about a user's
// tokens. Events are written to the outbox in the same transaction as the
// change they report (an event exists if and only if its change committed)
// and read back through the pull feed (GET /v1/events).
type EventKind string

// The event kinds.
const (
	// EventTokensStored: a caller stored tokens for a provider (PUT) over
	// nothing or over tokens that did not need re-authorization.
	EventTokensStored EventKind = "tokens.stored"
	// EventTokensRefreshed: a refresh stored new tokens from the provider.
	// Off by default (one per refresh: high volume); EventPolicy.Refreshed.
	EventTokensRefreshed EventKind = "tokens.refreshed"
	// EventTokensReauthRequired: the tokens now need re-authorization (the
	// user must reconnect); Reason says why (CodeGrantRevoked,
	// CodeRefreshInterrupted).
	EventTokensReauthRequired EventKind = "tokens.reauth_required"
	// EventTokensRecovered: a caller stored new tokens over tokens that
	// needed re-authorization (the user reconnected).
	EventTokensRecovered EventKind = "tokens.recovered"
	// EventTokensDeleted: a caller deleted the tokens.
	EventTokensDeleted EventKind = "tokens.deleted"
	// EventOfflineTokenStored and EventOfflineTokenDeleted: a caller
	// stored or deleted the user's offline token (Provider is empty).
	EventOfflineTokenStored  EventKind = "offline_token.stored"
	EventOfflineTokenDeleted EventKind = "offline_token.deleted"
	// EventRevocationSucceeded: deleted tokens were revoked at their
	// provider (revoke_on_delete), or the provider already held them
	// invalid.
	EventRevocationSucceeded EventKind = "revocation.succeeded"
	// EventRevocationFailed: deleted tokens could not be revoked at their
	// provider; Reason says why (CodeRevocationRejected,
	// CodeRevocationNotSupported, CodeProviderUnavailable once the retry
	// window ended). They may still work there.
	EventRevocationFailed EventKind = "revocation.failed"
)

// EventKinds lists every kind.
func EventKinds() []EventKind {
	return []EventKind{EventTokensStored, EventTokensRefreshed, EventTokensReauthRequired, EventTokensRecovered,
		EventTokensDeleted, EventOfflineTokenStored, EventOfflineTokenDeleted, EventRevocationSucceeded, EventRevocationFailed}
}

// Event is one outbox event: what happened (Kind) to whose tokens (User,
// Provider; Provider empty for the offline token), why (Reason, a refresh
// failure code for EventTokensReauthRequired, else empty) and when
// (OccurredAt, the database's clock when the change was written). It never
// holds token material. Cursor is its position in the feed.
type Event struct {
	Cursor     EventCursor
	Kind       EventKind
	User       UserID
	Provider   Provider
	Reason     string
	OccurredAt time.Time
}

// EventPolicy chooses which events the store writes. The zero value writes
// every kind but EventTokensRefreshed.
type EventPolicy struct {
	// Off writes no events at all (the outbox is not used).
	Off bool
	// Refreshed also writes EventTokensRefreshed.
	Refreshed bool
}

// Allows reports whether the policy writes events of kind k.
func (p EventPolicy) Allows(k EventKind) bool {
	return !p.Off && (k != EventTokensRefreshed || p.Refreshed)
}

// StoredEvent is the kind of event a caller storing tokens writes over a
// row that needed re-authorization (priorReauth: EventTokensRecovered) or
// over nothing or a row that did not (EventTokensStored).
func StoredEvent(priorReauth bool) EventKind {
	if priorReauth {
		return EventTokensRecovered
	}
	return EventTokensStored
}

// UpdateEvents are the events of a unit of work that turned row before into
// after (ports.TokenRepository.UpdateAuthTokens), as (kind, reason) pairs:
// EventTokensReauthRequired with after's LastError when after needs
// re-authorization and before did not; EventTokensRefreshed when the
// access token changed (a refresh stored the provider's answer). Lease
// taking and releasing, back-off and retries write none.
func UpdateEvents(before, after SealedAuthTokens) []Event {
	var out []Event
	if after.Refresh.ReauthRequired && !before.Refresh.ReauthRequired {
		out = append(out, Event{Kind: EventTokensReauthRequired, Reason: after.Refresh.LastError})
	}
	if !bytes.Equal(after.AccessToken, before.AccessToken) && !after.Refresh.ReauthRequired {
		out = append(out, Event{Kind: EventTokensRefreshed})
	}
	return out
}

// EventCursor is a position in the event feed, in commit order: the
// position of the last event a reader has, and where the next page
// starts. The zero cursor is the start. Its text form (String,
// ParseEventCursor) is opaque to callers and survives restarts: it is the
// event's own data, not a reader's memory.
//
// In PostgreSQL, Xact is the writing transaction's id (pg_current_xact_id)
// and Seq the event's row id; feeds are ordered by (Xact, Seq) and list only
// transactions below the snapshot's xmin, all of them finished, so no event
// can commit later behind a cursor already handed out (see the migration
// 00011_events.sql). The in-memory store counts both.
type EventCursor struct {
	Xact uint64
	Seq  int64
}

const eventCursorPrefix = "ev1."

// String is the cursor's text form, "ev1.<xact>.<seq>" in decimal; the zero
// cursor (the start) is "ev1.0.0".
func (c EventCursor) String() string {
	return eventCursorPrefix + strconv.FormatUint(c.Xact, 10) + "." + strconv.FormatInt(c.Seq, 10)
}

// ParseEventCursor parses String's form: anything but exactly
// "ev1.<xact>.<seq>" (canonical decimal, no sign, no leading zero, seq
// positive but in the zero cursor "ev1.0.0") is an error.
func ParseEventCursor(s string) (EventCursor, error) {
	bad := errors.New("not a cursor from this feed's next")
	rest, ok := strings.CutPrefix(s, eventCursorPrefix)
	if !ok {
		return EventCursor{}, bad
	}
	xs, ss, ok := strings.Cut(rest, ".")
	if !ok {
		return EventCursor{}, bad
	}
	x, err1 := strconv.ParseUint(xs, 10, 64)
	q, err2 := strconv.ParseInt(ss, 10, 64)
	c := EventCursor{Xact: x, Seq: q}
	if err1 != nil || err2 != nil || q < 0 || (q == 0 && x != 0) || c.String() != s {
		return EventCursor{}, bad
	}
	return c, nil
}

// Less orders cursors (commit order).
func (c EventCursor) Less(d EventCursor) bool {
	return c.Xact < d.Xact || (c.Xact == d.Xact && c.Seq < d.Seq)
}

// EventFilter selects the events a reader may see (its scope): users
// whose id starts with UserPrefix ("" any) and, when Providers is not
// empty, events of those providers only. Offline token events belong to no
// provider: like the offline token routes, only the user prefix limits
// them.
type EventFilter struct {
	UserPrefix string
	Providers  []Provider
}

// Matches reports whether e passes f.
func (f EventFilter) Matches(e Event) bool {
	if !strings.HasPrefix(string(e.User), f.UserPrefix) {
		return false
	}
	return len(f.Providers) == 0 || e.Provider == "" || slices.Contains(f.Providers, e.Provider)
}
