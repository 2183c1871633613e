package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors, one per problem code of the API (openapi.yaml, "Problem
// documents"). Every error a method returns for an answer of the server is
// an *Error; errors.Is(err, ErrReauthRequired) holds when its Code is
// reauth_required, and so on.
var (
	// ErrInvalidRequest (400 invalid_request): a path value or a body member
	// broke a rule; Error.Field names it. Also returned, with StatusCode 0,
	// for a user or provider "." or "..", which no URL can carry (they are
	// dot-segments) and which are not sent.
	ErrInvalidRequest = errors.New("tokenstore: invalid_request")
	// ErrUnsupportedMediaType (415 unsupported_media_type): the body was not
	// sent as JSON. The client always sends JSON; seeing it means a proxy
	// changed the request.
	ErrUnsupportedMediaType = errors.New("tokenstore: unsupported_media_type")
	// ErrUnauthenticated (401 unauthenticated): no caller holds the
	// credential, or its caller requires a client certificate that was not
	// presented.
	ErrUnauthenticated = errors.New("tokenstore: unauthenticated")
	// ErrForbidden (403 forbidden): the caller lacks the operation's
	// permission (tokens:read, offline:write...).
	ErrForbidden = errors.New("tokenstore: forbidden")
	// ErrOutOfScope (403 out_of_scope): the user or provider (Error.Field)
	// is outside the caller's scope.
	ErrOutOfScope = errors.New("tokenstore: out_of_scope")
	// ErrNotFound (404 not_found): nothing is stored for the user (and
	// provider).
	ErrNotFound = errors.New("tokenstore: not_found")
	// ErrMethodNotAllowed (405 method_not_allowed): a client and server
	// that disagree on the API.
	ErrMethodNotAllowed = errors.New("tokenstore: method_not_allowed")
	// ErrTokenExpired (409 token_expired): the access token expired and the
	// provider is not configured for refresh; store new tokens.
	ErrTokenExpired = errors.New("tokenstore: token_expired")
	// ErrReauthRequired (409 reauth_required): the tokens can no longer be
	// refreshed (grant revoked, refresh token expired, refresh
	// interrupted); the user must connect again.
	ErrReauthRequired = errors.New("tokenstore: reauth_required")
	// ErrConflict (409 conflict): a concurrent change; retry.
	ErrConflict = errors.New("tokenstore: conflict")
	// ErrUnavailable (503 unavailable, or 429): the provider, the database
	// or the row was not available in time; returned once the client's
	// retries (see WithMaxAttempts) are spent. Error.RetryAfter is the
	// server's last Retry-After.
	ErrUnavailable = errors.New("tokenstore: unavailable")
	// ErrIntegrity (500 integrity_error): a stored value cannot be
	// decrypted with the server's keys.
	ErrIntegrity = errors.New("tokenstore: integrity_error")
	// ErrInternal (500 internal): a bug in tokenstore; quote
	// Error.RequestID.
	ErrInternal = errors.New("tokenstore: internal")
)

// sentinels maps each problem code to its sentinel.
var sentinels = map[string]error{
	"invalid_request":        ErrInvalidRequest,
	"unsupported_media_type": ErrUnsupportedMediaType,
	"unauthenticated":        ErrUnauthenticated,
	"forbidden":              ErrForbidden,
	"out_of_scope":           ErrOutOfScope,
	"not_found":              ErrNotFound,
	"method_not_allowed":     ErrMethodNotAllowed,
	"token_expired":          ErrTokenExpired,
	"reauth_required":        ErrReauthRequired,
	"conflict":               ErrConflict,
	"unavailable":            ErrUnavailable,
	"integrity_error":        ErrIntegrity,
	"internal":               ErrInternal,
}

// Error is an answer of the server other than the operation's success: its
// problem document (RFC 9457) as the server sent it. Get it with errors.As;
// compare it with the sentinels with errors.Is. It holds no token material
// and never the credential: the server's detail never contains token
// material.
type Error struct {
	// Op is the client method that failed, e.g. "GetAccessToken".
	Op string
	// StatusCode is the HTTP status (409...); 0 when the request was not
	// sent (see ErrInvalidRequest).
	StatusCode int
	// Code is the problem's stable code (reauth_required...); "" when the
	// answer was not a problem document (a proxy's error page): Is then
	// matches the sentinel of the status (401, 403, 404, 429 and 503 only).
	Code string
	// Title is the status text, Detail the server's explanation for humans.
	Title, Detail string
	// Field names the path parameter, body member or header at fault, when
	// the problem names one (user, provider, access_token...).
	Field string
	// RequestID is the request's id, as in the server's log line for it.
	RequestID string
	// RetryAfter is the server's Retry-After on a 503 or 429 (0 when absent).
	RetryAfter time.Duration
	// Attempts is how many times the request was sent (more than 1 after
	// retries on 503 or 429).
	Attempts int
}

// Error reads like "tokenstore GetAccessToken: 409 reauth_required: detail
// (field provider, request_id 5f0c...)".
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tokenstore %s: ", e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "%d ", e.StatusCode)
	}
	code := e.Code
	if code == "" {
		code = "no problem document"
	}
	b.WriteString(code)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	var extra []string
	if e.Field != "" {
		extra = append(extra, "field "+e.Field)
	}
	if e.RequestID != "" {
		extra = append(extra, "request_id "+e.RequestID)
	}
	if e.Attempts > 1 {
		extra = append(extra, fmt.Sprintf("after %d attempts", e.Attempts))
	}
	if len(extra) > 0 {
		b.WriteString(" (" + strings.Join(extra, ", ") + ")")
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's code (or, for an answer
// that is no problem document, of its status).
func (e *Error) Is(target error) bool {
	if s, ok := sentinels[e.Code]; ok {
		return s == target
	}
	if e.Code != "" {
		return false
	}
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return target == ErrUnauthenticated
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusNotFound:
		return target == ErrNotFound
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return target == ErrUnavailable
	}
	return false
}

// problem is the wire form of a problem document.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Field     string `json:"field"`
	RequestID string `json:"request_id"`
}

// newError reads a failed answer. A body that is not a problem document is
// not quoted (a proxy's page could echo anything): Detail is then the
// status text.
func newError(op string, resp *http.Response, body []byte, now time.Time) *Error {
	e := &Error{
		Op:         op,
		StatusCode: resp.StatusCode,
		Title:      http.StatusText(resp.StatusCode),
		RequestID:  resp.Header.Get("X-Request-Id"),
	}
	var p problem
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && mt == "application/problem+json" &&
		json.Unmarshal(body, &p) == nil && p.Code != "" {
		e.Code, e.Detail, e.Field = p.Code, p.Detail, p.Field
		if p.Title != "" {
			e.Title = p.Title
		}
		if p.RequestID != "" {
			e.RequestID = p.RequestID
		}
	} else {
		e.Detail = fmt.Sprintf("the answer (%s) is not a problem document", resp.Header.Get("Content-Type"))
	}
	if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests {
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	}
	return e
}

// retryAfter reads a Retry-After value (RFC 9110 section 10.2.3): seconds,
// or an HTTP date; 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	const longest = 24 * time.Hour // no server means longer; and no overflow
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return time.Duration(min(secs, uint64(longest/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
