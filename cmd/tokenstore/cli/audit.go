package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

const auditUsage = `Usage: tokenstore audit list [--user ID] [--provider NAME] [--caller NAME] [--action ACTION]
                            [--since TIME] [--until TIME] [--limit N] [--dev] [--config FILE]

  list  the audit trail, oldest first: who (caller, instance) was handed,
        wrote or deleted whose token, refreshed it or marked it for
        re-authorization, re-encrypted or imported a batch (count: its
        rows), when (the database's clock), the outcome and the request id.
        A table on a terminal, JSON lines otherwise. Filters combine;
        --caller "" selects the service's own events. TIME is RFC 3339
        (2026-01-02T15:04:05Z) or a duration ago (24h, 30m).

The database comes from the usual configuration (see tokenstore serve --help);
with --dev, the development database of ` + "`task run`" + `.
`

// auditLine is one event as `audit list` prints it in JSON.
type auditLine struct {
	Time      time.Time `json:"time"`
	Instance  string    `json:"instance"`
	Caller    string    `json:"caller"`
	Action    string    `json:"action"`
	User      string    `json:"user"`
	Provider  string    `json:"provider"`
	Status    int       `json:"status"`
	Code      string    `json:"code"`
	RequestID string    `json:"request_id"`
	Count     int64     `json:"count"`
}

func runAudit(ctx context.Context, args []string, env Env) error {
	fs := newFlags("audit", auditUsage, env)
	flags := addConfigFlags(fs, true)
	user := fs.String("user", "", "only this user's events")
	provider := fs.String("provider", "", "only this provider's events")
	caller := fs.String("caller", "", `only this caller's events ("" for the service's own)`)
	action := fs.String("action", "", "only this action: "+strings.Join(actionNames(), ", "))
	since := fs.String("since", "", "only events at or after TIME")
	until := fs.String("until", "", "only events before TIME")
	limit := fs.Int("limit", 1000, "print at most this many events (1 to 1000000)")
	words, err := parseArgs(fs, args, env) // flags may come before or after the action
	if err != nil {
		return err
	}
	if len(words) == 0 || words[0] != "list" {
		fs.Usage()
		return errors.New("audit: say list")
	}
	if len(words) > 1 {
		fs.Usage()
		return fmt.Errorf("audit list: unexpected argument %q", words[1])
	}
	f, err := auditFilter(fs, *user, *provider, *caller, *action, *since, *until, time.Now())
	if err != nil {
		return fmt.Errorf("audit list: %w", err)
	}
	if *limit < 1 || *limit > 1_000_000 {
		return fmt.Errorf("audit list: --limit %d is not between 1 and 1000000", *limit)
	}
	cfg, _, err := flags.load(env, env.Stderr, false)
	if err != nil {
		return err
	}
	pool, err := connect(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer pool.Close()
	return listAudit(ctx, postgres.New(pool, cfg.Database.Options()), f, *limit, env.Stdout)
}

func actionNames() []string {
	var out []string
	for _, a := range domain.AuditActions() {
		out = append(out, string(a))
	}
	return out
}

// auditFilter turns the flags into a filter; a flag not given filters
// nothing (so --caller "" is a filter, and no --caller is none).
func auditFilter(fs *flag.FlagSet, user, provider, caller, action, since, until string, now time.Time) (domain.AuditFilter, error) {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var f domain.AuditFilter
	if set["user"] {
		u := domain.UserID(user)
		f.User = &u
	}
	if set["provider"] {
		p := domain.Provider(provider)
		f.Provider = &p
	}
	if set["caller"] {
		f.Caller = &caller
	}
	if set["action"] {
		a := domain.AuditAction(action)
		if !slices.Contains(domain.AuditActions(), a) {
			return f, fmt.Errorf("--action %q is not one of %s", action, strings.Join(actionNames(), ", "))
		}
		f.Action = &a
	}
	for _, b := range []struct {
		name, text string
		to         **time.Time
	}{{"since", since, &f.Since}, {"until", until, &f.Until}} {
		if !set[b.name] {
			continue
		}
		t, err := parseWhen(b.text, now)
		if err != nil {
			return f, fmt.Errorf("--%s %q: %w", b.name, b.text, err)
		}
		*b.to = &t
	}
	if f.Since != nil && f.Until != nil && !f.Since.Before(*f.Until) {
		return f, errors.New("--since must be before --until")
	}
	return f, nil
}

// parseWhen reads RFC 3339 or a positive duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errors.New("not an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (24h)")
}

// listAudit prints the events matching f, page by page: a table on a
// terminal, JSON lines otherwise.
func listAudit(ctx context.Context, log ports.AuditReader, f domain.AuditFilter, limit int, out io.Writer) error {
	terminal := isTerminal(out)
	var tw *tabwriter.Writer
	enc := json.NewEncoder(out)
	if terminal {
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tCALLER\tACTION\tUSER\tPROVIDER\tSTATUS\tCODE\tREQUEST ID\tCOUNT\tINSTANCE")
	}
	var cur ports.AuditCursor
	for printed := 0; printed < limit; {
		page, next, err := log.ListAuditEvents(ctx, f, cur, min(limit-printed, 1000))
		if err != nil {
			return fmt.Errorf("audit list: %w", err)
		}
		for _, e := range page {
			if terminal {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", e.Time.UTC().Format(time.RFC3339Nano), orDash(e.Caller),
					e.Action, orDash(string(e.User)), orDash(string(e.Provider)), e.Status, orDash(e.Code), orDash(e.RequestID), e.Count, e.Instance)
				continue
			}
			if err := enc.Encode(auditLine{Time: e.Time.UTC(), Instance: e.Instance, Caller: e.Caller, Action: string(e.Action),
				User: string(e.User), Provider: string(e.Provider), Status: e.Status, Code: e.Code, RequestID: e.RequestID, Count: e.Count}); err != nil {
				return err
			}
		}
		printed += len(page)
		if len(page) == 0 {
			break
		}
		cur = next
	}
	if terminal {
		return tw.Flush()
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// commandAuditor is the audit trail of a command that changes stored
// tokens outside serve (`keys rotate`, `import openhands`): the same
// audit.mode, this process as the instance and no caller.
func commandAuditor(cfg Config, log *slog.Logger, rec ports.AuditRecorder) *app.Auditor {
	return app.NewAuditor(app.AuditConfig{Mode: app.AuditMode(cfg.Audit.Mode), Instance: cfg.App.Refresh.Instance}, log, rec)
}

// flushAuditor writes a command's queued (best-effort) events before it
// exits, waiting at most one database call's deadline.
func flushAuditor(a *app.Auditor, cfg Config, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(cfg.Database.Timeout, postgres.DefaultTimeout)+postgres.ClientGrace)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		log.Error("audit events still queued at exit were lost", "err", err)
	}
}
