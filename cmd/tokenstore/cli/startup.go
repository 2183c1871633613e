package cli

import (
	"cmp"
	"log/slog"
	"strings"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// startupSummary is the start-up log line's attributes: what this instance
// will really run with, readable by an operator and never a secret. The
// database shows its effective pool size and redacted URL
// (postgres.Config.LogValue); durations are Go duration strings ("30s");
// each declared provider says whether tokenstore refreshes it; keys appear
// as their count, source and primary key id (an id reveals nothing of the
// key); callers by name.
func startupSummary(cfg Config) []any {
	providers := make([]any, 0, len(cfg.OAuth.Providers))
	for _, p := range cfg.OAuth.Providers {
		mode := "refresh"
		if p.StoreOnly {
			mode = "store-only"
		}
		providers = append(providers, slog.String(string(p.Name), mode))
	}
	callers := make([]string, len(cfg.Callers))
	for i, c := range cfg.Callers {
		callers[i] = c.Name
	}
	primary := "none"
	if len(cfg.Keys.Keys) > 0 { // the primary comes first (fernet.NewKeyringFromConfig)
		primary = string(cfg.Keys.Keys[0].ID())
	}
	tls := "off"
	switch {
	case cfg.HTTP.TLS() && cfg.HTTP.ClientCAFile != "":
		tls = "on, client certificates verified"
	case cfg.HTTP.TLS():
		tls = "on"
	case cfg.HTTP.Plaintext:
		tls = "off (http.plaintext: the transport is protected elsewhere)"
	}
	worker := "off"
	if cfg.Worker.Enabled {
		worker = "every " + cmp.Or(max(cfg.Worker.Interval, 0), app.DefaultWorkerInterval).String()
	}
	metricsAt := "off"
	if cfg.Metrics.Addr != "" {
		metricsAt = cfg.Metrics.Addr
		if cfg.Metrics.Pprof {
			metricsAt += " (with pprof)"
		}
	}
	tracing := "off"
	if cfg.Tracing {
		tracing = "on (OTEL_* variables)"
	}
	retention := "forever"
	if cfg.Audit.Retention > 0 {
		retention = cfg.Audit.Retention.String()
	}
	return []any{
		"version", buildVersion(),
		"dev", cfg.Dev,
		"database", cfg.Database,
		"migrate_on_start", cfg.Migrate,
		"addr", cfg.HTTP.Addr,
		"tls", tls,
		"keys", len(cfg.Keys.Keys), "key_source", cfg.KeySource, "primary_key", primary,
		"envelope", string(cfg.App.Envelope.OrDefault()),
		"callers", strings.Join(callers, ","),
		slog.Group("providers", providers...),
		"refresh_margin", cmp.Or(max(cfg.App.RefreshMargin, 0), domain.DefaultRefreshMargin).String(),
		"refresh_worker", worker,
		"audit_mode", cfg.Audit.Mode,
		"audit_retention", retention,
		"metrics", metricsAt,
		"tracing", tracing,
	}
}
