package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

const keysUsage = `Usage: tokenstore keys generate | list | rotate | retire ID  [--dev] [--config FILE]

  generate   print a new random Fernet key (32 bytes from crypto/rand, URL-safe
             base64) and, on stderr, its id. Put it first in TOKENSTORE_KEYS or
             the key file to make it the primary; keep the older keys after it.
  list       the keyring's key ids (never key material), which is primary, and
             how many stored values each seals (deleted tokens kept until their
             upstream revocation included); also ids found in the database
             that the keyring lacks.
  rotate     re-encrypt every stored value not sealed by the primary key, in
             batches, online (the service keeps serving), the tokens kept for
             pending upstream revocations too, in the envelope the envelope
             setting names. Re-run to resume. With --envelopes, also read
             every value already under the primary key and rewrite those in
             the other envelope (the JSON one of earlier releases, unless
             the setting says json): run it once every instance writes
             the envelope the setting names.
             Exits non-zero, naming the rows, if any value could not be
             re-encrypted. Roll the new primary out to every instance first:
             it warns, naming each, when live instances seal with another
             primary.
  retire ID  refuse while any stored value is sealed by key ID or any live
             instance (serve records its keyring every key_heartbeat_interval)
             still seals with it (its primary), naming them; otherwise remove
             it from the key file (or say to remove it from TOKENSTORE_KEYS)
             and name the live instances still holding it as an older key.

The database and keys come from the usual configuration (see tokenstore serve --help);
with --dev, the development database and key file of ` + "`task run`" + `.
`

func runKeys(ctx context.Context, args []string, env Env) error {
	fs := newFlags("keys", keysUsage, env)
	flags := addConfigFlags(fs, true)
	batch := fs.Int("batch-size", 500, "rotate: rows per transaction")
	envelopes := fs.Bool("envelopes", false, "rotate: also rewrite values under the primary key that are in another envelope than the envelope setting's")
	words, err := parseArgs(fs, args, env) // flags may come before or after the action
	if err != nil {
		return err
	}
	if len(words) == 0 {
		fs.Usage()
		return errors.New("keys: say generate, list, rotate or retire")
	}
	action, rest := words[0], words[1:]

	if action == "generate" {
		k, err := fernet.GenerateKey()
		if err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, k.Encode())
		fmt.Fprintf(env.Stderr, "key id %s\n", k.ID())
		return nil
	}
	if action != "list" && action != "rotate" && action != "retire" {
		fs.Usage()
		return fmt.Errorf("keys: unknown action %q", action)
	}
	cfg, log, err := flags.load(env, env.Stderr, false)
	if err != nil {
		return err
	}
	ring, err := cfg.Keyring()
	if err != nil {
		return err
	}
	pool, err := connect(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer pool.Close()
	repo := postgres.New(pool, cfg.Database.Options())
	audit := commandAuditor(cfg, log, repo)
	defer flushAuditor(audit, cfg, log)
	rot, fleet := app.NewReencryption(log, ring, repo, audit), app.NewKeyringFleet(repo)

	switch action {
	case "list":
		return keysList(ctx, rot, env.Stdout)
	case "rotate":
		warnPrimaryDisagreement(ctx, fleet, ring.PrimaryKeyID(), env.Stderr)
		opts := app.ReencryptOptions{BatchSize: *batch, Envelope: cfg.App.Envelope, Envelopes: *envelopes}
		return keysRotate(ctx, rot, opts, env.Stderr, log, env.Stdout)
	default:
		if len(rest) != 1 {
			return errors.New("keys retire: give the key id (see `tokenstore keys list`)")
		}
		return keysRetire(ctx, rot, fleet, cfg, domain.KeyID(rest[0]), env.Stdout)
	}
}

// warnPrimaryDisagreement prints a warning when the live instances do not
// all seal with primary: rotating then leaves their new writes under
// another key. It never stops the rotation.
func warnPrimaryDisagreement(ctx context.Context, fleet *app.KeyringFleet, primary domain.KeyID, out io.Writer) {
	warning, err := fleet.PrimaryWarning(ctx, primary)
	switch {
	case err != nil:
		fmt.Fprintf(out, "warning: cannot tell which primary key the running instances use: %v\n", err)
	case warning != "":
		fmt.Fprintf(out, "warning: %s\n", warning)
	}
}

func keysList(ctx context.Context, rot *app.Reencryption, out io.Writer) error {
	status, err := rot.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-18s %-10s %s\n", "KEY ID", "ROLE", "VALUES")
	for _, s := range status {
		role := "older"
		switch {
		case s.Primary:
			role = "primary"
		case !s.InKeyring:
			role = "MISSING"
		}
		fmt.Fprintf(out, "%-18s %-10s %d\n", s.ID, role, s.Values)
	}
	for _, s := range status {
		if !s.InKeyring {
			fmt.Fprintf(out, "\nkey %s seals %d stored values but is not in the keyring: those values cannot be read until it is added\n", s.ID, s.Values)
		}
	}
	return nil
}

func keysRotate(ctx context.Context, rot *app.Reencryption, opts app.ReencryptOptions, progressOut io.Writer, log *slog.Logger, out io.Writer) error {
	bar := newProgress(progressOut, log)
	opts.Progress = bar.update
	report, err := rot.Run(ctx, opts)
	bar.finish()
	fmt.Fprintf(out, "rotated %d values to primary key %s in %s", report.Reencrypted, report.Primary, report.Elapsed.Round(time.Millisecond))
	if secs := report.Elapsed.Seconds(); secs > 0 && report.Reencrypted > 0 {
		fmt.Fprintf(out, " (%.0f values/s)", float64(report.Reencrypted)/secs)
	}
	fmt.Fprintln(out)
	envelope := opts.Envelope.OrDefault()
	fmt.Fprintf(out, "envelopes: %d values rewritten from another envelope into the %s one", report.Reformatted, envelope)
	if opts.Envelopes {
		fmt.Fprintf(out, "; %d values under the primary key already in it, left as they were", report.Unchanged)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "values per key now:")
	for _, s := range report.After {
		role := ""
		if s.Primary {
			role = " (primary)"
		} else if !s.InKeyring {
			role = " (NOT IN KEYRING)"
		}
		fmt.Fprintf(out, "  %s%s: %d\n", s.ID, role, s.Values)
	}
	if err != nil {
		return fmt.Errorf("rotation stopped: %w (re-run to continue)", err)
	}
	if len(report.Failed) > 0 {
		fmt.Fprintf(out, "%d rows could not be re-encrypted:\n", len(report.Failed))
		for _, f := range report.Failed {
			fmt.Fprintf(out, "  %s\n", f)
		}
		return fmt.Errorf("%d rows could not be re-encrypted", len(report.Failed))
	}
	return nil
}

func keysRetire(ctx context.Context, rot *app.Reencryption, fleet *app.KeyringFleet, cfg Config, id domain.KeyID, out io.Writer) error {
	if err := rot.CheckRetire(ctx, id); err != nil {
		return fmt.Errorf("keys retire: %w", err)
	}
	holders, err := fleet.CheckRetire(ctx, id)
	if err != nil {
		return fmt.Errorf("keys retire: %w", err)
	}
	if cfg.KeySource != "key file "+cfg.KeyFile || cfg.KeyFile == "" {
		fmt.Fprintf(out, "no stored value is sealed by key %s and no live instance seals with it: remove it from %s, then reload (SIGHUP) or restart the service\n", id, cfg.KeySource)
	} else {
		removed, err := removeFromKeyFile(cfg.KeyFile, id)
		if err != nil {
			return fmt.Errorf("keys retire: %w", err)
		}
		if !removed {
			return fmt.Errorf("keys retire: key %s is not in %s", id, cfg.KeyFile)
		}
		fmt.Fprintf(out, "removed key %s from %s; send the service's instances SIGHUP (or restart them) to drop it\n", id, cfg.KeyFile)
	}
	if len(holders) > 0 {
		fmt.Fprintf(out, "live instances still holding key %s as an older key (harmless: no stored value needs it): %s\n",
			id, strings.Join(holders, ", "))
	}
	return nil
}

// removeFromKeyFile rewrites a line-format key file without the key whose
// id is id, atomically and with mode 0600. JSON key files are left to the
// operator.
func removeFromKeyFile(path string, id domain.KeyID) (bool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if t := strings.TrimSpace(string(raw)); strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{") {
		return false, fmt.Errorf("%s is a JSON key file: remove the entry for key %s by hand", path, id)
	}
	var kept strings.Builder
	removed := false
	for line := range strings.Lines(string(raw)) {
		body, _, _ := strings.Cut(line, "#")
		if f := strings.Fields(body); len(f) == 1 {
			if k, err := fernet.ParseKey(f[0]); err == nil && k.ID() == id {
				removed = true
				continue
			}
		}
		kept.WriteString(line)
	}
	if !removed {
		return false, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	if _, err := tmp.WriteString(kept.String()); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}

// progress shows rotation progress: a bar redrawn in place on a terminal,
// a log line every few seconds otherwise.
type progress struct {
	w        io.Writer
	log      *slog.Logger
	terminal bool
	last     time.Time
	drawn    bool
}

func newProgress(w io.Writer, log *slog.Logger) *progress {
	return &progress{w: w, log: log, terminal: isTerminal(w)}
}

func (p *progress) update(done, total int64) {
	if p.terminal {
		const width = 30
		filled := width
		pct := 100.0
		if total > 0 {
			filled = int(int64(width) * done / total)
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d values (%.0f%%)", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), done, total, pct)
		p.drawn = true
		return
	}
	if time.Since(p.last) >= 5*time.Second || done == total {
		p.last = time.Now()
		p.log.Info("rotation progress", "done", done, "total", total)
	}
}

func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
