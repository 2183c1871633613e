package httpapi

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// RequestObserver is told of every answered request (adapters/metrics):
// route is the route's pattern as the request log writes it ("unmatched"
// when none matched), never the path, which holds user ids; caller is a
// configured caller's name, "" before authentication.
type RequestObserver interface {
	ObserveRequest(route, method string, status int, caller string, d time.Duration)
}

type nopRequestObserver struct{}

func (nopRequestObserver) ObserveRequest(string, string, int, string, time.Duration) {}

// Option adjusts NewHandler and NewServer.
type Option func(*api)

// WithRequestObserver reports every answered request to o. nil is ignored.
func WithRequestObserver(o RequestObserver) Option {
	return func(a *api) {
		if o != nil {
			a.requests = o
		}
	}
}

// WithTracerProvider makes a server span of every request with tp,
// continuing the caller's W3C trace context (traceparent). nil is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(a *api) {
		if tp != nil {
			a.tracer = tp.Tracer(tracerName)
		}
	}
}

const tracerName = "github.com/tokenstore/tokenstore/adapters/httpapi"

var traceContext = propagation.TraceContext{}

// startServerSpan starts the request's span, named for now by its method:
// the route is known only once the mux has matched it. The span is made
// here rather than by otelhttp, which records url.path: the path holds the
// user id, which no span carries (nor the query, headers or body).
func (a *api) startServerSpan(r *http.Request) (context.Context, trace.Span) {
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return a.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method)))
}

// endServerSpan names the span by its route pattern and records the answer.
func endServerSpan(span trace.Span, route string, status int, caller string) {
	span.SetName(route)
	span.SetAttributes(
		attribute.String("http.route", route),
		attribute.Int("http.response.status_code", status),
		attribute.String("tokenstore.caller", caller),
	)
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

func defaultTracer() trace.Tracer { return noop.NewTracerProvider().Tracer(tracerName) }
