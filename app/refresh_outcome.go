package app

import (
	"context"
	"errors"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// RefreshOutcome is how one refresh attempt ended: what the audit trail
// records for it (action refresh) and what anything counting refreshes
// should count.
type RefreshOutcome struct {
	// Status is HTTP-like: 200 refreshed; 409 the tokens now need
	// re-authorization; 503 a back-off (the provider failed, rejected the
	// request or is not configured) or an attempt whose result could not
	// be stored; 500 the stored refresh token cannot be decrypted.
	Status int
	// Code is the refresh failure code (domain.CodeGrantRevoked...), as
	// stored in the row's refresh state; "" when refreshed.
	Code string
	// Reauth: the attempt marks the tokens as needing re-authorization
	// (also recorded as action reauth_required).
	Reauth bool
}

// Attempt results that are not the provider's: the provider's answer
// could not be stored (sealing or the fenced write failed; the lease is
// left to lapse), or the row changed under the attempt (new tokens stored
// or deleted meanwhile; the answer is dropped).
var (
	errNotStored  = errors.New("the refreshed tokens could not be stored")
	errSuperseded = errors.New("the tokens changed during the refresh")
)

// ClassifyRefresh is the one place an attempt's result becomes its
// outcome: err is nil for a refresh stored, else what the provider's
// refresher returned (domain.ErrGrantRevoked, ErrProviderRejected,
// ErrProviderNotConfigured, ErrProviderOutcomeUnknown, anything else a
// transient failure), an error wrapping domain.ErrDecrypt for a refresh
// token that cannot be opened, or the protocol's own errNotStored and
// errSuperseded.
func ClassifyRefresh(err error) RefreshOutcome {
	switch {
	case err == nil:
		return RefreshOutcome{Status: 200}
	case errors.Is(err, domain.ErrGrantRevoked):
		return RefreshOutcome{Status: 409, Code: domain.CodeGrantRevoked, Reauth: true}
	case errors.Is(err, errSuperseded):
		return RefreshOutcome{Status: 409, Code: domain.CodeRefreshSuperseded}
	case errors.Is(err, errNotStored):
		return RefreshOutcome{Status: 503, Code: domain.CodeRefreshInterrupted}
	case errors.Is(err, domain.ErrDecrypt):
		return RefreshOutcome{Status: 500, Code: domain.CodeRefreshUndecryptable}
	case errors.Is(err, domain.ErrProviderRejected), errors.Is(err, domain.ErrProviderNotConfigured):
		return RefreshOutcome{Status: 503, Code: domain.CodeProviderRejected}
	case errors.Is(err, domain.ErrProviderOutcomeUnknown):
		return RefreshOutcome{Status: 503, Code: domain.CodeProviderOutcomeUnknown}
	default:
		return RefreshOutcome{Status: 503, Code: domain.CodeProviderUnavailable}
	}
}

// refreshEvents are the audit events of an attempt on user's provider
// tokens that ended with out: the attempt (refresh) and, when it marks
// the tokens for re-authorization, that transition (reauth_required), by
// whoever ctx names (the caller whose read started it; none for the
// worker).
func (c *RefreshCoordinator) refreshEvents(ctx context.Context, user domain.UserID, provider domain.Provider, out RefreshOutcome) []domain.AuditEvent {
	events := []domain.AuditEvent{c.audit.outcome(ctx, domain.AuditRefresh, user, provider, out.Status, out.Code)}
	if out.Reauth {
		events = append(events, c.reauthEvent(ctx, user, provider, out.Code))
	}
	return events
}

// reauthEvent is the audit event of tokens marked as needing
// re-authorization for code.
func (c *RefreshCoordinator) reauthEvent(ctx context.Context, user domain.UserID, provider domain.Provider, code string) domain.AuditEvent {
	return c.audit.outcome(ctx, domain.AuditReauthRequired, user, provider, 409, code)
}

// markLapsedLeases sweeps queue's lapsed leases (the tokens need
// re-authorization, domain.CodeRefreshInterrupted) and reports how many
// rows it marked. Each marked row records a reauth_required event by this
// instance and no caller: fail-closed in the sweep's own statement (no row
// is marked unrecorded), best-effort queued after it.
func (c *RefreshCoordinator) markLapsedLeases(ctx context.Context, queue ports.RefreshQueue) (int, error) {
	record := c.audit.Mode() == AuditFailClosed
	marked, err := queue.MarkLapsedLeases(ctx, c.reauthEvent(ctx, "", "", domain.CodeRefreshInterrupted), record)
	if record && (err != nil || len(marked) > 0) {
		c.audit.committed(max(len(marked), 1), err)
	}
	if err != nil {
		return 0, err
	}
	c.audit.afterTx(marked...)
	return len(marked), nil
}
