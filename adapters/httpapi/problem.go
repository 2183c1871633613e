package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// Problem codes: stable, machine-readable, documented in openapi.yaml.
const (
	CodeInvalidRequest   = "invalid_request"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeUnauthenticated  = "unauthenticated"
	CodeForbidden        = "forbidden"
	CodeOutOfScope       = "out_of_scope" // 403: the user or provider is outside the caller's scope
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeTokenExpired     = "token_expired"
	CodeReauthRequired   = "reauth_required"
	CodeConflict         = "conflict"
	CodeUnavailable      = "unavailable"
	CodeIntegrity        = "integrity_error"
	CodeInternal         = "internal"
)

// statusClientClosedRequest is recorded (never received) when the client
// went away before the answer.
const statusClientClosedRequest = 499

// Problem is an RFC 9457 problem document. It is also an error: a request
// check returns one, and writeError answers it as it is.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`

	header map[string]string // response headers that go with it (Retry-After, Allow...)
}

func newProblem(status int, code, detail string) *Problem {
	return &Problem{
		Type:   "urn:tokenstore:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	}
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

func (p *Problem) withField(f string) *Problem { p.Field = f; return p }

func (p *Problem) withHeader(name, value string) *Problem {
	if p.header == nil {
		p.header = map[string]string{}
	}
	p.header[name] = value
	return p
}

// retryAfter says how many seconds the client should wait before retrying.
func (p *Problem) retryAfter(seconds int) *Problem {
	return p.withHeader("Retry-After", strconv.Itoa(seconds))
}

// writeError is the one place an error becomes an answer: a *Problem is
// written as it is, any other error through problemFor. Every error
// response of the API, from authentication to a use case, goes through it.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := a.problem(r.Context(), err)
	p.RequestID = requestIDFrom(r.Context())
	for name, value := range p.header {
		w.Header().Set(name, value)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// problem is the problem err is answered with: err itself when it is a
// *Problem, else problemFor's.
func (a *api) problem(ctx context.Context, err error) *Problem {
	var p *Problem
	if !errors.As(err, &p) {
		p = a.problemFor(ctx, err)
	}
	return p
}

// problemFor maps a use-case error to its problem. Details never repeat
// input that could be token material; unexpected errors are logged with the
// request id and answered with a generic 500.
func (a *api) problemFor(ctx context.Context, err error) *Problem {
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve):
		return newProblem(http.StatusBadRequest, CodeInvalidRequest, ve.Error()).withField(ve.Field)
	case errors.Is(err, domain.ErrInvalid):
		return newProblem(http.StatusBadRequest, CodeInvalidRequest, err.Error())
	case errors.Is(err, domain.ErrNotFound):
		return newProblem(http.StatusNotFound, CodeNotFound, "nothing is stored there")
	case errors.Is(err, domain.ErrTokenExpired):
		return newProblem(http.StatusConflict, CodeTokenExpired,
			"the access token has expired and cannot be refreshed; store new tokens for this user and provider")
	case errors.Is(err, domain.ErrReauthRequired):
		return newProblem(http.StatusConflict, CodeReauthRequired,
			"the tokens can no longer be refreshed; the user must connect this provider again, then store the new tokens")
	case errors.Is(err, domain.ErrOutcomeUnknown):
		return newProblem(http.StatusServiceUnavailable, CodeUnavailable,
			"the database stopped answering after the write was sent: the write may have been applied; read it back before retrying").retryAfter(2)
	case errors.Is(err, domain.ErrStorageUnavailable):
		return newProblem(http.StatusServiceUnavailable, CodeUnavailable,
			"the database is unavailable or did not answer in time; nothing was changed; retry shortly").retryAfter(2)
	case errors.Is(err, domain.ErrUnavailable):
		// During a back-off, say when it ends: retrying sooner only takes
		// the row's lock to be told the same.
		var at *domain.RetryAtError
		if errors.As(err, &at) {
			return newProblem(http.StatusServiceUnavailable, CodeUnavailable,
				"the provider failed recently; tokenstore retries it after a back-off").
				retryAfter(int(min(max(math.Ceil(time.Until(at.At).Seconds()), 1), 3600)))
		}
		return newProblem(http.StatusServiceUnavailable, CodeUnavailable,
			"the provider did not refresh the token in time; retry shortly").retryAfter(5)
	case errors.Is(err, domain.ErrConflict):
		return newProblem(http.StatusConflict, CodeConflict, "the tokens were changed concurrently; retry")
	case errors.Is(err, domain.ErrBusy), errors.Is(err, context.DeadlineExceeded):
		return newProblem(http.StatusServiceUnavailable, CodeUnavailable, "the tokens are busy; retry shortly").retryAfter(1)
	case errors.Is(err, domain.ErrDecrypt):
		a.log.ErrorContext(ctx, "stored value cannot be decrypted", "err", err)
		return newProblem(http.StatusInternalServerError, CodeIntegrity,
			"a stored value cannot be decrypted with the configured keys")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return newProblem(statusClientClosedRequest, CodeUnavailable, "request canceled")
	default:
		a.log.ErrorContext(ctx, "request failed", "err", err)
		return newProblem(http.StatusInternalServerError, CodeInternal, "internal error; see the server log for the request id")
	}
}
