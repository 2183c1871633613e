package observe_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// TestOneTraceFromRequestToProvider: a read that refreshes makes one trace,
// continuing the caller's traceparent: the server span, the use case under
// it, the refresh, the SQL, and the provider call, each a descendant of the
// one before; and no span holds a token, a credential, the client secret
// or the user id, in any attribute, event, status or name.
func TestOneTraceFromRequestToProvider(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	e := start(t, servicetest.Options{TracerProvider: tp}, nil)

	alice := e.user("alice")
	e.putTokens(alice, "refresh-"+randHex(12))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if status, body := e.do("GET", "/v1/users/"+alice+"/providers/"+provider+"/tokens", nil,
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"); status != 200 {
		t.Fatalf("GET: %d %s", status, body)
	}

	// The server span ends after the answer is written: poll for it.
	const route = "GET /v1/users/{user}/providers/{provider}/tokens"
	var got tracetest.SpanStubs
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = spans.GetSpans()
		if slices.ContainsFunc(got, func(s tracetest.SpanStub) bool { return s.Name == route }) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range got {
		byID[s.SpanContext.SpanID()] = s
	}
	find := func(what string, match func(tracetest.SpanStub) bool) tracetest.SpanStub {
		t.Helper()
		for _, s := range got {
			if match(s) && s.SpanContext.TraceID().String() == traceID {
				return s
			}
		}
		t.Fatalf("no %s span in the trace %s; spans:\n%s", what, traceID, describe(got))
		return tracetest.SpanStub{}
	}
	named := func(name string) func(tracetest.SpanStub) bool {
		return func(s tracetest.SpanStub) bool { return s.Name == name }
	}
	// under reports whether s descends from ancestor.
	under := func(s, ancestor tracetest.SpanStub) bool {
		for id := s.Parent.SpanID(); id.IsValid(); id = byID[id].Parent.SpanID() {
			if id == ancestor.SpanContext.SpanID() {
				return true
			}
			if _, ok := byID[id]; !ok {
				return false
			}
		}
		return false
	}
	server := find("server", named(route))
	if server.SpanKind != trace.SpanKindServer || server.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("server span: kind %v, parent %s; want a server span continuing the caller's traceparent", server.SpanKind, server.Parent.SpanID())
	}
	useCase := find("use case", named("TokenService.GetAccessToken"))
	refresh := find("refresh", named("RefreshCoordinator.Refresh"))
	call := find("provider call", named("POST token endpoint"))
	sql := find("SQL", func(s tracetest.SpanStub) bool {
		return s.InstrumentationScope.Name == "github.com/exaring/otelpgx" && under(s, refresh) && s.Name != "acquire" && !strings.Contains(s.Name, "connect")
	})
	for _, link := range []struct {
		child, parent tracetest.SpanStub
	}{{useCase, server}, {refresh, useCase}, {sql, refresh}, {call, refresh}} {
		if !under(link.child, link.parent) {
			t.Errorf("span %q is not under %q", link.child.Name, link.parent.Name)
		}
	}
	if call.SpanKind != trace.SpanKindClient {
		t.Errorf("provider call span kind %v, want client", call.SpanKind)
	}

	if s, enc := testlog.FindSecret(describe(got), e.forbidden()...); s != "" {
		t.Errorf("a span holds a secret or the user id (%d bytes, as %q)", len(s), enc)
	}
}

// describe writes every span's name, attributes, events and status as text.
func describe(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s [%s] kind=%v status=%v %q", s.Name, s.InstrumentationScope.Name, s.SpanKind, s.Status.Code, s.Status.Description)
		for _, a := range s.Attributes {
			fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
		}
		for _, ev := range s.Events {
			fmt.Fprintf(&b, " event:%s", ev.Name)
			for _, a := range ev.Attributes {
				fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
