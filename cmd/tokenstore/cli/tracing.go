package cli

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx"
)

// TracingConfigured reports whether the standard variables configure a
// trace exporter: OTEL_TRACES_EXPORTER other than "none", or an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// whose exporter is then otlp), and the SDK not disabled
// (OTEL_SDK_DISABLED=true). Tracing is off otherwise: the SDK's own default
// (otlp to localhost:4318) would send spans nowhere and log errors.
func TracingConfigured(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp != "" {
		return exp != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// newTracerProvider is the service's tracer provider: with tracing
// configured, the SDK exporting in batches through the exporter the
// OTEL_* variables choose (autoexport: otlp over HTTP or gRPC, console),
// flushed on stop; otherwise one that records nothing.
func newTracerProvider(lc fx.Lifecycle, cfg Config, log *slog.Logger) (trace.TracerProvider, error) {
	if !cfg.Tracing {
		return noop.NewTracerProvider(), nil
	}
	ctx := context.Background()
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*): %w", err)
	}
	// service.name defaults to tokenstore; OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES (read later, so they win) may change it.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", "tokenstore"), attribute.String("service.version", Version)),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	lc.Append(fx.StopHook(tp.Shutdown))
	log.Info("tracing on", "exporter", cmp.Or(os.Getenv("OTEL_TRACES_EXPORTER"), "otlp"))
	return tp, nil
}
