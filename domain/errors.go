package domain

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every layer wraps them (fmt.Errorf("...: %w", err)) and
// callers test with errors.Is; the HTTP adapter maps each to a stable code.
var (
	// ErrNotFound: no tokens are stored for that user (and provider).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: input broke a rule; the wrapping *ValidationError names the field.
	ErrInvalid = errors.New("invalid input")
	// ErrDecrypt: a ciphertext could not be decrypted (wrong or unknown key,
	// tampered or truncated data). Its message never contains key or token material.
	ErrDecrypt = errors.New("cannot decrypt")
	// ErrBusy: the row is locked by another writer for longer than the lock timeout.
	ErrBusy = errors.New("busy: the row is locked by another transaction")
	// ErrConflict: a concurrent writer changed the row first.
	ErrConflict = errors.New("conflict: the row was changed concurrently")
	// ErrTokenExpired: the stored access token has expired and cannot be refreshed here.
	ErrTokenExpired = errors.New("access token expired")
	// ErrReauthRequired: the tokens cannot be refreshed any more (the grant
	// was revoked, the refresh token expired, or a refresh was interrupted
	// after the provider may have rotated it); the user must connect again.
	ErrReauthRequired = errors.New("re-authorization required")
	// ErrUnavailable: a refresh could not complete in time or the provider is
	// failing transiently; retrying later may succeed.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrStorageUnavailable: the database could not be reached or did not
	// answer in time (restarting, shutting down, out of connections, frozen,
	// connection lost). Transient: retrying later may succeed. The call was
	// not applied, unless the error also matches ErrOutcomeUnknown.
	ErrStorageUnavailable = errors.New("database unavailable")
	// ErrOutcomeUnknown qualifies ErrStorageUnavailable: a write (or its
	// COMMIT) had been sent when the connection was lost or the deadline
	// passed, so it may have been applied. Read it back before retrying.
	ErrOutcomeUnknown = errors.New("the write may have been applied")
	// ErrAuditUnavailable qualifies ErrStorageUnavailable: the audit store
	// refused the events of a change (a revoked privilege, a trigger, a
	// full disk), so the change, which must not happen unrecorded, was not
	// applied either. Storage wraps both, so callers that only know
	// ErrStorageUnavailable still answer 503.
	ErrAuditUnavailable = errors.New("the audit trail could not be written")
)

// Errors a ports.TokenRefresher returns, wrapped with the provider's detail.
var (
	// ErrGrantRevoked: the provider rejected the refresh token itself
	// (invalid_grant, bad_refresh_token). Permanent: the user must reconnect.
	ErrGrantRevoked = errors.New("provider rejected the refresh token")
	// ErrProviderRejected: the provider refused the request for another
	// reason (a 4xx such as invalid_client): permanent until the
	// configuration is fixed.
	ErrProviderRejected = errors.New("provider rejected the refresh request")
	// ErrProviderUnavailable: 5xx, timeout or network failure: transient.
	// A ports.TokenRevoker returns it too; wrapped in a *RetryAtError when
	// the provider said when to come back (Retry-After on a 429 or 503).
	ErrProviderUnavailable = errors.New("provider unavailable")
	// ErrProviderOutcomeUnknown qualifies ErrProviderUnavailable: the request
	// had been sent when it failed (timeout, 5xx, connection lost), so the
	// provider may have refreshed: rotated the refresh token and revoked the
	// previous access token.
	ErrProviderOutcomeUnknown = errors.New("the provider may have refreshed")
	// ErrProviderNotConfigured: no refresh configuration for this provider.
	ErrProviderNotConfigured = errors.New("provider not configured for refresh")
)

// Errors a ports.TokenRevoker returns besides ErrProviderUnavailable
// (transient: retry) and ErrInvalid (nothing to revoke). A token the
// provider already considers invalid is no error: RFC 7009 §2.2 answers 200
// for it, and the goal, a token nobody can use, is met.
var (
	// ErrRevocationRejected: the provider refused the revocation request
	// (invalid_client, unauthorized_client, unsupported_token_type, a wrong
	// URL, a redirect): permanent until the configuration is fixed.
	ErrRevocationRejected = errors.New("provider rejected the revocation request")
	// ErrRevocationNotSupported: nothing can be revoked at this provider: its
	// kind has no revocation API (Bitbucket Cloud, Azure DevOps through
	// Entra ID), it does not revoke this token type, or revoke_on_delete is
	// off for it (or it is not declared). Permanent: retrying cannot help.
	ErrRevocationNotSupported = errors.New("upstream revocation not available for this provider")
)

// ValidationError says which field was wrong and why. It matches ErrInvalid
// with errors.Is.
type ValidationError struct {
	Field  string // the offending field, e.g. "user" or "access_token"
	Reason string // what was wrong and how to fix it; never contains token material
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// RetryAtError says when retrying may succeed (the end of a back-off). It
// wraps the error it qualifies; find it with errors.As.
type RetryAtError struct {
	At  time.Time
	Err error
}

func (e *RetryAtError) Error() string { return e.Err.Error() }

// Unwrap returns the qualified error.
func (e *RetryAtError) Unwrap() error { return e.Err }
