package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Reencryption re-encrypts stored values under the primary key, online
// (operators run it as `tokenstore keys rotate`): auth tokens, offline
// tokens, and the deleted tokens events keep for upstream revocation
// (domain.KeptTokens), so that retiring a key never waits for pending
// revocations. Each batch is its own short transaction, rows are walked by
// key in id order (keyset pagination), and a row is rewritten only if it
// is unchanged since it was read and no refresh holds it (an event: only
// while it still keeps the tokens read), so nothing the service writes
// meanwhile is ever overwritten with older content, and tokens the
// delivery worker revoked and forgot never come back. Re-running continues
// where a previous run stopped: rows already under the primary key are not
// visited again, unless ReencryptOptions.Envelopes asks to read them for
// the envelope they are in.
type Reencryption struct {
	keyring ports.Keyring
	repo    ports.ReencryptionRepository
	log     *slog.Logger
	audit   *Auditor
}

// NewReencryption returns the use case. log may be nil. audit records one
// reencrypt_batch event per batch (fail-closed in the batch's own
// transaction); nil records none.
func NewReencryption(log *slog.Logger, keyring ports.Keyring, repo ports.ReencryptionRepository, audit *Auditor) *Reencryption {
	return &Reencryption{keyring: keyring, repo: repo, log: orDiscard(log), audit: audit}
}

// orDiscard lets a use case's caller pass a nil logger for silence.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// KeyStatus describes one key: in the keyring, in storage, or both.
type KeyStatus struct {
	ID        domain.KeyID
	Primary   bool
	InKeyring bool  // false: values sealed by a key the keyring lacks (unreadable)
	Values    int64 // stored values it seals
}

// Status lists the keyring's keys (primary first) and any other key id
// found in storage, with how many values each seals.
func (k *Reencryption) Status(ctx context.Context) ([]KeyStatus, error) {
	usage, err := k.repo.CountValuesByKey(ctx)
	if err != nil {
		return nil, err
	}
	counts := map[domain.KeyID]int64{}
	for _, u := range usage {
		counts[u.KeyID] = u.Values
	}
	var out []KeyStatus
	for i, id := range k.keyring.Keys() {
		out = append(out, KeyStatus{ID: id, Primary: i == 0, InKeyring: true, Values: counts[id]})
		delete(counts, id)
	}
	var unknown []domain.KeyID
	for id := range counts {
		unknown = append(unknown, id)
	}
	slices.Sort(unknown)
	for _, id := range unknown {
		out = append(out, KeyStatus{ID: id, Values: counts[id]})
	}
	return out, nil
}

// ReencryptOptions tune a re-encryption. The zero value uses the defaults.
type ReencryptOptions struct {
	// BatchSize rows per transaction. Default 500.
	BatchSize int
	// Passes: rows skipped because they changed or a refresh held them are
	// retried in up to this many further passes. Default 5.
	Passes int
	// Progress, if set, is called after each batch with values done so far
	// and the total to do.
	Progress func(done, total int64)
	// Envelope is the envelope format values are rewritten in (the
	// envelope setting, Config.Envelope); "" is EnvelopeBinary.
	Envelope EnvelopeFormat
	// Envelopes also walks the values already under the primary key and
	// rewrites those sealed in another envelope format than Envelope (such
	// as the JSON envelope of releases before the binary one), leaving
	// the others as they are. It reads and decrypts every stored value, so
	// it is asked for, not the default; values under older keys are
	// always rewritten in Envelope's format.
	Envelopes bool
}

// ReencryptionFailure names a row that could not be re-encrypted, and why.
// Table "*" marks a failure of many rows (a missing key, rows that stayed
// busy); Reason then says which.
type ReencryptionFailure struct {
	Table    string
	Event    int64 // the event's id, for tokens an event keeps (table events); else 0
	User     domain.UserID
	Provider domain.Provider // empty for offline tokens
	Reason   string
}

func (f ReencryptionFailure) String() string {
	if f.Table == "*" {
		return f.Reason
	}
	if f.Event != 0 {
		return fmt.Sprintf("%s id %d user %q provider %s: %s", f.Table, f.Event, f.User, f.Provider, f.Reason)
	}
	if f.Provider == "" {
		return fmt.Sprintf("%s user %q: %s", f.Table, f.User, f.Reason)
	}
	return fmt.Sprintf("%s user %q provider %s: %s", f.Table, f.User, f.Provider, f.Reason)
}

// row identifies the failed row, so that it is not tried again.
func (f ReencryptionFailure) row() string {
	return fmt.Sprintf("%s\x00%d\x00%s\x00%s", f.Table, f.Event, f.User, f.Provider)
}

// ReencryptionReport is the outcome of a re-encryption.
type ReencryptionReport struct {
	Primary domain.KeyID
	// Reencrypted is how many values were re-encrypted under the primary
	// key (rewritten).
	Reencrypted int64
	// Reformatted counts the values among Reencrypted that were sealed in
	// another envelope format than ReencryptOptions.Envelope.
	Reformatted int64
	// Unchanged counts the values ReencryptOptions.Envelopes found under
	// the primary key in the envelope format asked for, and left alone.
	Unchanged int64
	// Failed lists rows that could not be re-encrypted (undecryptable,
	// misplaced, or sealed by a key missing from the keyring), and rows
	// still busy after every pass.
	Failed []ReencryptionFailure
	// After lists every key's remaining values once the run ended.
	After []KeyStatus
	// Elapsed is the run's wall time.
	Elapsed time.Duration
}

// Run re-encrypts every value not sealed by the primary key, and with
// opts.Envelopes every value under it in another envelope format.
func (k *Reencryption) Run(ctx context.Context, opts ReencryptOptions) (ReencryptionReport, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Passes <= 0 {
		opts.Passes = 5
	}
	run := &reencryptRun{
		k: k, batch: opts.BatchSize, onProgress: opts.Progress, start: time.Now(),
		failed: map[string]ReencryptionFailure{}, busy: map[string]bool{},
	}
	primary := k.keyring.PrimaryKeyID()
	run.report.Primary = primary
	status, err := k.Status(ctx)
	if err != nil {
		return run.report, err
	}
	for _, s := range status {
		if s.ID != primary || opts.Envelopes {
			run.total += s.Values
		}
	}
	run.progress(0, 0, 0)

	// The primary key's values first (Status lists it first), so that
	// values this run moves under it are not read a second time.
	f := opts.Envelope
	auth, offline, kept := k.authTokens(f), k.offlineTokens(f), k.keptTokens(f)
	for pass := 0; pass <= opts.Passes; pass++ {
		skipped := 0
		for _, s := range status {
			underPrimary := s.ID == primary
			if underPrimary && !opts.Envelopes {
				continue
			}
			if !s.InKeyring {
				run.failed["key:"+string(s.ID)] = ReencryptionFailure{Table: "*", User: "*",
					Reason: fmt.Sprintf("%d values are sealed by key %s, which is not in the keyring: add it as an older key", s.Values, s.ID)}
				continue
			}
			sk, err := reencrypt(ctx, run, auth, s.ID, underPrimary)
			skipped += sk
			if err != nil {
				return run.finish(ctx, err)
			}
			sk, err = reencrypt(ctx, run, offline, s.ID, underPrimary)
			skipped += sk
			if err != nil {
				return run.finish(ctx, err)
			}
			sk, err = reencrypt(ctx, run, kept, s.ID, underPrimary)
			skipped += sk
			if err != nil {
				return run.finish(ctx, err)
			}
		}
		// A later pass looks again at the primary key's rows that were
		// busy in this one only: the others were all seen.
		run.retry, run.busy = run.busy, map[string]bool{}
		if skipped == 0 {
			break
		}
		k.log.Info("rows changed or were being refreshed during the pass; retrying them", "rows", skipped, "pass", pass+1)
		select {
		case <-ctx.Done():
			return run.finish(ctx, ctx.Err())
		case <-time.After(time.Duration(pass+1) * 200 * time.Millisecond):
		}
		if pass == opts.Passes {
			run.failed["busy"] = ReencryptionFailure{Table: "*", User: "*",
				Reason: fmt.Sprintf("%d rows kept changing or stayed under a refresh lease; run `tokenstore keys rotate` again", skipped)}
		}
	}
	return run.finish(ctx, nil)
}

// reencryptRun is the state of one Run that every batch updates.
type reencryptRun struct {
	k          *Reencryption
	batch      int
	onProgress func(done, total int64) // ReencryptOptions.Progress
	start      time.Time
	total      int64                          // values to re-encrypt (or, with Envelopes, to look at)
	done       int64                          // values re-encrypted or left unchanged so far
	failed     map[string]ReencryptionFailure // never retried; by row, or "key:ID", "busy"
	// busy names the rows (ReencryptionFailure.row) a store skipped this
	// pass; retry, those of the pass before, which are all a later pass
	// reads again under the primary key (nil in the first pass).
	busy, retry map[string]bool
	report      ReencryptionReport
}

// progress counts more values re-encrypted (written, reformatted of them)
// and left unchanged.
func (run *reencryptRun) progress(written, reformatted, unchanged int64) {
	run.report.Reencrypted += written
	run.report.Reformatted += reformatted
	run.report.Unchanged += unchanged
	run.done += written + unchanged
	if run.onProgress != nil {
		run.onProgress(min(run.done, run.total), run.total)
	}
}

// finish completes the report: failures in table, user, provider, reason order,
// wall time, and the keys' remaining values (even when ctx was canceled).
func (run *reencryptRun) finish(ctx context.Context, err error) (ReencryptionReport, error) {
	report := run.report
	for _, f := range run.failed {
		report.Failed = append(report.Failed, f)
	}
	slices.SortFunc(report.Failed, func(a, b ReencryptionFailure) int {
		return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.User, b.User), cmp.Compare(a.Provider, b.Provider),
			cmp.Compare(a.Event, b.Event), cmp.Compare(a.Reason, b.Reason))
	})
	report.Elapsed = time.Since(run.start)
	if after, serr := run.k.Status(context.WithoutCancel(ctx)); serr == nil {
		report.After = after
	}
	return report, err
}

func (k *Reencryption) authTokens(f EnvelopeFormat) reencryptTable[domain.SealedAuthTokens, int64] {
	return reencryptTable[domain.SealedAuthTokens, int64]{
		page:   k.repo.AuthTokensByKey,
		cursor: func(r domain.SealedAuthTokens) int64 { return r.ID },
		reseal: func(r domain.SealedAuthTokens, onlyFormat bool) (domain.SealedAuthTokens, resealed, error) {
			return k.resealAuthTokens(f, r, onlyFormat)
		},
		store: k.repo.StoreReencryptedAuthTokens,
		identify: func(r domain.SealedAuthTokens) ReencryptionFailure {
			return ReencryptionFailure{Table: authTokensTable, User: r.User, Provider: r.Provider}
		},
		values: func(r domain.SealedAuthTokens) int64 {
			if r.RefreshToken != nil {
				return 2
			}
			return 1
		},
	}
}

func (k *Reencryption) offlineTokens(f EnvelopeFormat) reencryptTable[domain.SealedOfflineToken, domain.UserID] {
	return reencryptTable[domain.SealedOfflineToken, domain.UserID]{
		page:   k.repo.OfflineTokensByKey,
		cursor: func(r domain.SealedOfflineToken) domain.UserID { return r.User },
		reseal: func(r domain.SealedOfflineToken, onlyFormat bool) (domain.SealedOfflineToken, resealed, error) {
			return k.resealOfflineToken(f, r, onlyFormat)
		},
		store: k.repo.StoreReencryptedOfflineTokens,
		identify: func(r domain.SealedOfflineToken) ReencryptionFailure {
			return ReencryptionFailure{Table: offlineTokensTable, User: r.User}
		},
		values: func(domain.SealedOfflineToken) int64 { return 1 },
	}
}

// keptTokens walks the tokens events keep for upstream revocation. They
// are resealed at the places of the auth_tokens row they came from
// (AccessTokenPlace, RefreshTokenPlace of the event's user and provider),
// where the delivery worker opens them.
func (k *Reencryption) keptTokens(f EnvelopeFormat) reencryptTable[domain.KeptTokens, int64] {
	return reencryptTable[domain.KeptTokens, int64]{
		page:   k.repo.KeptTokensByKey,
		cursor: func(r domain.KeptTokens) int64 { return r.Event },
		reseal: func(r domain.KeptTokens, onlyFormat bool) (domain.KeptTokens, resealed, error) {
			return k.resealKeptTokens(f, r, onlyFormat)
		},
		store: k.repo.StoreReencryptedKeptTokens,
		identify: func(r domain.KeptTokens) ReencryptionFailure {
			return ReencryptionFailure{Table: eventsTable, Event: r.Event, User: r.User, Provider: r.Provider}
		},
		values: func(r domain.KeptTokens) int64 {
			if r.Tokens.RefreshToken != nil {
				return 2
			}
			return 1
		},
	}
}

// reencryptTable is what differs between the tables a run walks: Row is
// the sealed row, Cursor the column its pages are ordered by.
type reencryptTable[Row, Cursor any] struct {
	// page reads up to limit rows sealed by key, after the cursor.
	page   func(ctx context.Context, key domain.KeyID, after Cursor, limit int) ([]Row, error)
	cursor func(Row) Cursor
	// reseal re-encrypts a row under the primary key in the run's envelope
	// format; onlyFormat (a row already under the primary key) leaves a
	// row whose values are all in that format as it is (write false).
	reseal func(row Row, onlyFormat bool) (Row, resealed, error)
	// store writes resealed rows, each only if unchanged since it was
	// read, with the batch's audit events (their Count set to the rows
	// written).
	store    func(ctx context.Context, rows []Row, audit ...domain.AuditEvent) ([]bool, error)
	identify func(Row) ReencryptionFailure // the row's identity, no Reason
	values   func(Row) int64               // sealed values in the row
}

// resealed is what resealing one row did.
type resealed struct {
	write       bool  // false: the row stays as it is
	reformatted int64 // values of the row in another envelope format than the run's
}

// reencrypt walks t's rows sealed by key in cursor order and rewrites them
// under the primary key; onlyFormat (key is the primary) rewrites only
// those with values in another envelope format. It returns how many rows
// it skipped because they changed or were leased since read; a row that
// cannot be resealed is recorded in run.failed and not tried again.
func reencrypt[Row, Cursor any](ctx context.Context, run *reencryptRun, t reencryptTable[Row, Cursor], key domain.KeyID, onlyFormat bool) (skipped int, err error) {
	var after Cursor
	for {
		rows, err := t.page(ctx, key, after, run.batch)
		if err != nil || len(rows) == 0 {
			return skipped, err
		}
		after = t.cursor(rows[len(rows)-1])
		next := make([]Row, 0, len(rows))
		outcomes := make([]resealed, 0, len(rows))
		var unchanged int64
		for _, row := range rows {
			f := t.identify(row)
			if _, bad := run.failed[f.row()]; bad {
				continue
			}
			if onlyFormat && run.retry != nil && !run.retry[f.row()] {
				continue // seen in an earlier pass
			}
			again, outcome, err := t.reseal(row, onlyFormat)
			if err != nil {
				f.Reason = err.Error()
				run.failed[f.row()] = f
				run.k.log.Error("cannot re-encrypt a row", "table", f.Table, "user", f.User, "provider", f.Provider, "err", err)
				continue
			}
			if !outcome.write {
				unchanged += t.values(row)
				continue
			}
			next, outcomes = append(next, again), append(outcomes, outcome)
		}
		var written, reformatted int64
		if len(next) > 0 { // a page with nothing to write records no batch
			stored, err := storeBatch(ctx, run.k.audit, domain.AuditReencryptBatch, next, t.store)
			if err != nil {
				return skipped, err
			}
			for i, ok := range stored {
				if !ok {
					skipped++
					run.busy[t.identify(next[i]).row()] = true
					continue
				}
				written += t.values(next[i])
				reformatted += outcomes[i].reformatted
			}
		}
		run.progress(written, reformatted, unchanged)
	}
}

// resealAuthTokens re-encrypts a row's tokens under the primary key, each
// bound to its place as before, in envelope format f; every other column
// stays as read. onlyFormat leaves a row all in format f as it is.
func (k *Reencryption) resealAuthTokens(f EnvelopeFormat, row domain.SealedAuthTokens, onlyFormat bool) (domain.SealedAuthTokens, resealed, error) {
	t, other, err := unsealAuthTokens(k.keyring, f, row)
	if err != nil {
		return row, resealed{}, err
	}
	if onlyFormat && other == 0 {
		return row, resealed{}, nil
	}
	sealed, err := sealAuthTokens(k.keyring, f, t)
	if err != nil {
		return row, resealed{}, err
	}
	row.KeyID, row.AccessToken, row.RefreshToken = sealed.KeyID, sealed.AccessToken, sealed.RefreshToken
	return row, resealed{write: true, reformatted: other}, nil
}

// resealKeptTokens re-encrypts an event's kept tokens under the primary
// key, bound to the places of the auth_tokens row they came from; Read
// stays as read.
func (k *Reencryption) resealKeptTokens(f EnvelopeFormat, row domain.KeptTokens, onlyFormat bool) (domain.KeptTokens, resealed, error) {
	again, outcome, err := k.resealAuthTokens(f, domain.SealedAuthTokens{
		User: row.User, Provider: row.Provider,
		KeyID: row.Tokens.KeyID, AccessToken: row.Tokens.AccessToken, RefreshToken: row.Tokens.RefreshToken,
	}, onlyFormat)
	if err != nil || !outcome.write {
		return row, outcome, err
	}
	row.Tokens = domain.SealedRevocation{KeyID: again.KeyID, AccessToken: again.AccessToken, RefreshToken: again.RefreshToken}
	return row, outcome, nil
}

// resealOfflineToken: see resealAuthTokens.
func (k *Reencryption) resealOfflineToken(f EnvelopeFormat, row domain.SealedOfflineToken, onlyFormat bool) (domain.SealedOfflineToken, resealed, error) {
	token, format, err := unseal(k.keyring, OfflineTokenPlace(row.User), domain.Ciphertext{KeyID: row.KeyID, Data: row.Token})
	if err != nil {
		return row, resealed{}, err
	}
	other := notIn(f, format)
	if onlyFormat && other == 0 {
		return row, resealed{}, nil
	}
	sealed, err := sealOfflineToken(k.keyring, f, domain.OfflineToken{User: row.User, Token: token})
	if err != nil {
		return row, resealed{}, err
	}
	row.KeyID, row.Token = sealed.KeyID, sealed.Token
	return row, resealed{write: true, reformatted: other}, nil
}

// CheckRetire reports why key cannot be retired (removed from the keyring)
// yet, or nil when no stored value needs it.
func (k *Reencryption) CheckRetire(ctx context.Context, key domain.KeyID) error {
	if key == k.keyring.PrimaryKeyID() {
		return fmt.Errorf("key %s is the primary key: make another key primary (put it first) and rotate before retiring this one", key)
	}
	status, err := k.Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range status {
		if s.ID == key && s.Values > 0 {
			return fmt.Errorf("%d stored values are still sealed by key %s: run `tokenstore keys rotate` first", s.Values, key)
		}
	}
	return nil
}

// storeBatch writes one batch of rows with store and its audit event
// (action, Count the rows written, by whoever ctx names): fail-closed in
// the batch's own transaction (an audit store that refuses it fails the
// batch, which writes nothing), best-effort queued once written. It
// returns which rows were written.
func storeBatch[Row any](ctx context.Context, audit *Auditor, action domain.AuditAction, rows []Row,
	store func(ctx context.Context, rows []Row, audit ...domain.AuditEvent) ([]bool, error),
) ([]bool, error) {
	event := audit.event(ctx, action, "", "", 200)
	inTx := audit.inTx(event)
	written, err := store(ctx, rows, inTx...)
	audit.committed(len(inTx), err)
	if err != nil {
		return nil, err
	}
	for _, ok := range written {
		if ok {
			event.Count++
		}
	}
	audit.afterTx(event)
	return written, nil
}
