package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/adapters/webhook"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

const eventsUsage = `Usage: tokenstore events list [--failed | --state STATE] [--endpoint NAME] [--limit N] [--dev] [--config FILE]
       tokenstore events redeliver ID|--failed [--endpoint NAME] [--dev] [--config FILE]

The deliveries of outbox events: to each webhook endpoint (named as in the
webhooks setting), and to the providers for the upstream revocation of
deleted tokens (the endpoint "revocation": revoke_on_delete).

  list       the deliveries, in the commit order of their events, then by
             endpoint: the event's webhook-id (ev_123), the endpoint, the
             event's kind, user, provider and reason, the state (pending,
             delivered or failed), the attempts since it was queued, the
             last attempt's HTTP status (0: no answer) and error, when the
             next attempt is due (pending) or when it finished, and when the
             event occurred. A table on a terminal, JSON lines otherwise.
             --failed is --state failed.
  redeliver  queue finished deliveries again, with a fresh retry window and
             the same webhook-id: the event ID's (its webhook-id, such as
             ev_123; delivered ones are sent again too), or every failed one
             (--failed); to the endpoints this configuration delivers to
             (its webhooks, and revocation when a provider has
             revoke_on_delete), or to --endpoint alone. An endpoint marked
             gone (it answered 410) is sent to again. Deliveries still
             pending are left to their retries, and a revocation whose
             tokens were revoked (or superseded) is not made again. An ID
             with nothing to queue is an error; --failed with nothing
             failed is not.

The database comes from the usual configuration (see tokenstore serve --help);
with --dev, the development database of ` + "`task run`" + `. Run it with the
servers' configuration: it names the endpoints they deliver to.
`

// maxDeliveryList is the most deliveries `events list` prints, the most
// one ports.DeliveryAdmin.ListDeliveries call returns.
const maxDeliveryList = 10_000

// deliveryLine is one delivery as `events list` prints it in JSON.
type deliveryLine struct {
	WebhookID  string `json:"webhook_id"`
	Endpoint   string `json:"endpoint"`
	Kind       string `json:"kind"`
	User       string `json:"user"`
	Provider   string `json:"provider"`
	Reason     string `json:"reason"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status"`
	LastError  string `json:"last_error"`
	// NextAttemptAt is set while pending, FinishedAt once delivered or
	// failed; the other is null.
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	OccurredAt    time.Time  `json:"occurred_at"`
}

func runEvents(ctx context.Context, args []string, env Env) error {
	fs := newFlags("events", eventsUsage, env)
	flags := addConfigFlags(fs, true)
	failed := fs.Bool("failed", false, "list: only failed deliveries; redeliver: every failed delivery")
	state := fs.String("state", "", "list: only deliveries in this state: pending, delivered or failed")
	endpoint := fs.String("endpoint", "", `only deliveries to this webhook endpoint, or "revocation" for upstream revocation`)
	limit := fs.Int("limit", 1000, fmt.Sprintf("list: print at most this many deliveries (1 to %d)", maxDeliveryList))
	words, err := parseArgs(fs, args, env) // flags may come before or after the action
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if len(words) == 0 || words[0] != "list" && words[0] != "redeliver" {
		fs.Usage()
		return errors.New("events: say list or redeliver")
	}
	if set["endpoint"] && !webhook.ValidName(*endpoint) {
		return fmt.Errorf("events %s: --endpoint %q is not an endpoint's name: 1 to 64 characters a-z, 0-9, '-' or '_' "+
			"(a name from the webhooks setting, or %s)", words[0], *endpoint, domain.RevocationTarget)
	}
	// Every flag and word is checked before the configuration is read;
	// check then sees the targets it delivers to, before connecting.
	var check func(targets []string) error
	var do func(admin ports.DeliveryAdmin, targets []string) error
	if words[0] == "list" {
		f, err := deliveryFilter(words, *failed, set["state"], *state, *endpoint, *limit)
		if err != nil {
			return err
		}
		do = func(admin ports.DeliveryAdmin, targets []string) error {
			if f.Target != "" && !slices.Contains(targets, f.Target) {
				fmt.Fprintf(env.Stderr, "note: this configuration does not deliver to %s (it delivers to %s): deliveries listed for it are from an earlier configuration, or the name is misspelt\n",
					f.Target, targetList(targets))
			}
			n, err := listDeliveries(ctx, admin, f, *limit, env.Stdout)
			if err == nil && n == *limit {
				fmt.Fprintf(env.Stderr, "note: printed the first %d deliveries (--limit): more may match\n", n)
			}
			return err
		}
	} else {
		eventID, err := redeliverID(words, *failed, set)
		if err != nil {
			return err
		}
		check = func(targets []string) error {
			switch {
			case len(targets) == 0:
				return errors.New("events redeliver: this configuration has no webhooks and no provider with revoke_on_delete: " +
					"nothing would send a redelivered event (give the servers' configuration: --config, TOKENSTORE_WEBHOOKS, TOKENSTORE_PROVIDERS)")
			case *endpoint != "" && !slices.Contains(targets, *endpoint):
				return fmt.Errorf("events redeliver: --endpoint %s: this configuration delivers to %s: deliveries queued for another would never be sent",
					*endpoint, targetList(targets))
			}
			return nil
		}
		do = func(admin ports.DeliveryAdmin, targets []string) error {
			if *endpoint != "" {
				targets = []string{*endpoint}
			}
			return redeliver(ctx, admin, eventID, targets, env.Stdout)
		}
	}
	cfg, _, err := flags.load(env, env.Stderr, false)
	if err != nil {
		return err
	}
	targets := deliveryTargets(cfg)
	if check != nil {
		if err := check(targets); err != nil {
			return err
		}
	}
	pool, err := connect(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer pool.Close()
	return do(postgres.New(pool, cfg.Database.Options()), targets)
}

// deliveryFilter is the filter of `events list` words and flags (failed
// and stateSet: whether --failed and --state were given).
func deliveryFilter(words []string, failed, stateSet bool, state, endpoint string, limit int) (domain.DeliveryFilter, error) {
	f := domain.DeliveryFilter{Target: endpoint}
	switch {
	case len(words) > 1:
		return f, fmt.Errorf("events list: unexpected argument %q", words[1])
	case failed && stateSet:
		return f, errors.New("events list: --failed is --state failed: give one of them")
	case failed:
		f.State = domain.DeliveryFailed
	case stateSet:
		st, ok := domain.ParseDeliveryState(state)
		if !ok {
			return f, fmt.Errorf("events list: --state %q is not one of %s, %s, %s", state, domain.DeliveryPending, domain.DeliveryDelivered, domain.DeliveryFailed)
		}
		f.State = st
	}
	if limit < 1 || limit > maxDeliveryList {
		return f, fmt.Errorf("events list: --limit %d is not between 1 and %d", limit, maxDeliveryList)
	}
	return f, nil
}

// redeliverID is the event id `events redeliver` words name, or 0 for
// --failed; set holds the flags given.
func redeliverID(words []string, failed bool, set map[string]bool) (int64, error) {
	for _, name := range []string{"state", "limit"} {
		if set[name] {
			return 0, fmt.Errorf("events redeliver: --%s is for events list only", name)
		}
	}
	switch {
	case len(words) > 2:
		return 0, fmt.Errorf("events redeliver: unexpected argument %q: give one event's webhook-id", words[2])
	case len(words) == 2 && failed:
		return 0, errors.New("events redeliver: give an event's webhook-id or --failed, not both")
	case len(words) == 2:
		id, err := domain.ParseWebhookID(words[1])
		if err != nil {
			return 0, fmt.Errorf("events redeliver: %q is %w (the WEBHOOK ID events list prints)", words[1], err)
		}
		return id, nil
	case !failed:
		return 0, errors.New("events redeliver: say which deliveries: an event's webhook-id (ev_123, as events list prints it) or --failed")
	}
	return 0, nil
}

// deliveryTargets are the targets the servers of cfg deliver to: each
// webhook endpoint, and upstream revocation when a provider revokes on
// delete (as the wiring starts the DeliveryWorker).
func deliveryTargets(cfg Config) []string {
	var out []string
	for _, ep := range cfg.Webhooks {
		out = append(out, ep.Name)
	}
	if slices.ContainsFunc(cfg.OAuth.Providers, func(p oauth.ProviderConfig) bool { return p.RevokeOnDelete }) {
		out = append(out, domain.RevocationTarget)
	}
	return out
}

func targetList(targets []string) string {
	if len(targets) == 0 {
		return "nothing"
	}
	return strings.Join(targets, ", ")
}

// redeliver queues the deliveries of event eventID (0: every failed one)
// to each of targets again and says how many; an event with none to queue
// is an error naming why that can be.
func redeliver(ctx context.Context, admin ports.DeliveryAdmin, eventID int64, targets []string, out io.Writer) error {
	var total int64
	var per []string
	for _, t := range targets {
		n, err := admin.RedeliverDeliveries(ctx, eventID, t)
		if err != nil {
			if total > 0 {
				fmt.Fprintf(out, "queued %d again (%s) before the error\n", total, strings.Join(per, ", "))
			}
			return fmt.Errorf("events redeliver: %w", err)
		}
		if n > 0 {
			total += n
			per = append(per, fmt.Sprintf("%s: %d", t, n))
		}
	}
	what := "deliveries"
	if total == 1 {
		what = "delivery"
	}
	if eventID == 0 {
		what = "failed " + what
	} else {
		what += " of " + domain.Event{Cursor: domain.EventCursor{Seq: eventID}}.WebhookID()
	}
	switch {
	case total > 0:
		fmt.Fprintf(out, "queued %d %s again (%s)\n", total, what, strings.Join(per, ", "))
	case eventID == 0:
		fmt.Fprintf(out, "queued nothing: no failed delivery to %s can be made again "+
			"(a failed revocation whose tokens are no longer kept, revocation_superseded, cannot)\n", targetList(targets))
	default:
		return fmt.Errorf("events redeliver: queued nothing for %s to %s: no such event (never written, or removed by events.retention), "+
			"it was not sent to these endpoints (its kind is not among their events), its deliveries are still pending "+
			"(events list shows their next attempt), or it is a revocation already done (revoked or superseded: the tokens are no longer kept)",
			domain.Event{Cursor: domain.EventCursor{Seq: eventID}}.WebhookID(), targetList(targets))
	}
	return nil
}

// listDeliveries prints up to limit deliveries passing f, a table on a
// terminal, JSON lines otherwise, and reports how many it printed.
func listDeliveries(ctx context.Context, admin ports.DeliveryAdmin, f domain.DeliveryFilter, limit int, out io.Writer) (int, error) {
	list, err := admin.ListDeliveries(ctx, f, limit)
	if err != nil {
		return 0, fmt.Errorf("events list: %w", err)
	}
	return len(list), writeDeliveries(out, isTerminal(out), list)
}

// writeDeliveries writes list as a table (terminal) or JSON lines.
func writeDeliveries(out io.Writer, terminal bool, list []domain.Delivery) error {
	if !terminal {
		enc := json.NewEncoder(out)
		for _, d := range list {
			if err := enc.Encode(newDeliveryLine(d)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WEBHOOK ID\tENDPOINT\tKIND\tUSER\tPROVIDER\tREASON\tSTATE\tATTEMPTS\tLAST STATUS\tNEXT ATTEMPT/FINISHED\tOCCURRED AT\tLAST ERROR")
	for _, d := range list {
		l := newDeliveryLine(d)
		when := "-"
		if l.NextAttemptAt != nil {
			when = l.NextAttemptAt.Format(time.RFC3339)
		} else if l.FinishedAt != nil {
			when = l.FinishedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", l.WebhookID, l.Endpoint, l.Kind, cell(l.User), cell(l.Provider), cell(l.Reason),
			l.State, l.Attempts, l.LastStatus, when, l.OccurredAt.Format(time.RFC3339), cell(l.LastError))
	}
	return tw.Flush()
}

func newDeliveryLine(d domain.Delivery) deliveryLine {
	l := deliveryLine{
		WebhookID: d.Event.WebhookID(), Endpoint: d.Target, Kind: string(d.Event.Kind), User: string(d.Event.User),
		Provider: string(d.Event.Provider), Reason: d.Event.Reason, State: string(d.State), Attempts: d.Attempt,
		LastStatus: d.LastStatus, LastError: d.LastError, OccurredAt: d.Event.OccurredAt.UTC(),
	}
	if d.State == domain.DeliveryPending {
		t := d.NextAttemptAt.UTC()
		l.NextAttemptAt = &t
	} else if !d.FinishedAt.IsZero() {
		t := d.FinishedAt.UTC()
		l.FinishedAt = &t
	}
	return l
}

// cell is s for a table cell: "-" when empty, control characters (a tab or
// a line break would break the columns) as spaces.
func cell(s string) string {
	return orDash(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}
