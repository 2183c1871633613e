package app

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tokenstore/tokenstore/domain"
)

// Observer is told what the use cases do that an operator counts and
// times: refresh attempts and their outcomes, provider calls, waits for
// another instance's refresh, audit writes. adapters/metrics implements it
// with Prometheus; the app never imports a metrics library. It is called on
// hot paths and must not block. Nothing passed to it identifies a user or
// carries token material.
type Observer interface {
	// RefreshAttempt: one refresh attempt (a lease taken, or a lapsed one
	// found) of provider's tokens ended with outcome: RefreshRefreshed, or
	// the code ClassifyRefresh gives its failure, the same code its audit
	// event carries (domain.CodeGrantRevoked, domain.CodeProviderRejected,
	// domain.CodeRefreshSuperseded, domain.CodeRefreshInterrupted, ...).
	RefreshAttempt(provider domain.Provider, outcome string)
	// ProviderCall: one call to provider's token endpoint (the whole
	// exchange, a retried client authentication included) took d.
	ProviderCall(provider domain.Provider, d time.Duration)
	// LeaseWait: a read waited d for another attempt's lease on provider's
	// tokens, ending with outcome: WaitReleased (the lease ended) or
	// WaitTimedOut (the read gave up: 503) or WaitCanceled (its request
	// ended).
	LeaseWait(provider domain.Provider, d time.Duration, outcome string)
	// AuditWrite: one insert of n audit events (the batcher's) took d and
	// failed with err (nil: committed).
	AuditWrite(n int, d time.Duration, err error)
}

// RefreshRefreshed is the outcome of a refresh attempt that stored new
// tokens; every other outcome is a failure code (ClassifyRefresh).
const RefreshRefreshed = "refreshed"

// The outcomes of a wait for another attempt's lease.
const (
	WaitReleased = "released"
	WaitTimedOut = "timed_out"
	WaitCanceled = "canceled"
)

// NopObserver observes nothing: the Observer of a service without metrics.
type NopObserver struct{}

var _ Observer = NopObserver{}

// RefreshAttempt does nothing.
func (NopObserver) RefreshAttempt(domain.Provider, string) {}

// ProviderCall does nothing.
func (NopObserver) ProviderCall(domain.Provider, time.Duration) {}

// LeaseWait does nothing.
func (NopObserver) LeaseWait(domain.Provider, time.Duration, string) {}

// AuditWrite does nothing.
func (NopObserver) AuditWrite(int, time.Duration, error) {}

// tracerName names the use cases' spans' instrumentation scope.
const tracerName = "github.com/tokenstore/tokenstore/app"

// newTracer is tp's tracer for the use cases; nil tp traces nothing.
func newTracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// Span attribute keys. A span never carries a user id, a token, an error's
// text (errors may name the user) or anything else a caller sent.
const (
	attrProvider = attribute.Key("tokenstore.provider")
	attrOutcome  = attribute.Key("tokenstore.refresh.outcome")
	attrError    = attribute.Key("tokenstore.error")
)

// startSpan starts a use case's span; provider may be "" (offline tokens).
func startSpan(ctx context.Context, t trace.Tracer, name string, provider domain.Provider) (context.Context, trace.Span) {
	var opts []trace.SpanStartOption
	if provider != "" {
		opts = append(opts, trace.WithAttributes(attrProvider.String(string(provider))))
	}
	return t.Start(ctx, name, opts...)
}

// endSpan ends span with err's kind (never its text) as its status.
func endSpan(span trace.Span, err error) {
	if err != nil {
		kind := errorKind(err)
		span.SetAttributes(attrError.String(kind))
		span.SetStatus(codes.Error, kind)
	}
	span.End()
}

// errorKind names the domain sentinel err wraps: a fixed word, safe to
// export where the error's text (which may name a user) is not.
func errorKind(err error) string {
	for _, k := range []struct {
		err  error
		kind string
	}{
		{domain.ErrNotFound, "not_found"},
		{domain.ErrReauthRequired, "reauth_required"},
		{domain.ErrTokenExpired, "token_expired"},
		{domain.ErrDecrypt, "decrypt"},
		{domain.ErrBusy, "busy"},
		{domain.ErrConflict, "conflict"},
		{domain.ErrStorageUnavailable, "storage_unavailable"},
		{domain.ErrUnavailable, "unavailable"},
		{context.DeadlineExceeded, "deadline_exceeded"},
		{context.Canceled, "canceled"},
	} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	var ve *domain.ValidationError
	if errors.As(err, &ve) || errors.Is(err, domain.ErrInvalid) {
		return "invalid"
	}
	return "error"
}
