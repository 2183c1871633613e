package app

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// Import batch sizes: rows per read and per transaction.
const (
	DefaultImportBatchSize = 500
	MaxImportBatchSize     = 10_000
)

// ImportOptions tune an import. The zero value imports for real in batches
// of DefaultImportBatchSize.
type ImportOptions struct {
	// BatchSize is how many source rows are read, checked and written in one
	// transaction. Zero means DefaultImportBatchSize.
	BatchSize int
	// DryRun reads, decrypts, validates and seals every row but writes
	// nothing: the summary says what a real run would import.
	DryRun bool
	// Envelope is the envelope format the values are sealed in (the
	// envelope setting, Config.Envelope); "" is EnvelopeBinary.
	Envelope EnvelopeFormat
}

// ImportReason says why a source row was not imported.
type ImportReason string

// The reasons an import reports.
const (
	// ReasonWrongSecret: a well-formed ciphertext the source's key does not open.
	ReasonWrongSecret ImportReason = "wrong secret"
	// ReasonBadCiphertext: the value is not a ciphertext of the source's format.
	ReasonBadCiphertext ImportReason = "bad ciphertext"
	// ReasonInvalidUser: the user id breaks domain.ParseUserID's rule.
	ReasonInvalidUser ImportReason = "invalid user id"
	// ReasonInvalidProvider: the provider name breaks domain.ParseProvider's rule.
	ReasonInvalidProvider ImportReason = "invalid provider name"
	// ReasonUndeclaredProvider: the provider is not declared in tokenstore's
	// configuration (the rule TokenService.PutAuthTokens applies).
	ReasonUndeclaredProvider ImportReason = "undeclared provider"
	// ReasonInvalidTokens: the decrypted row breaks another rule (an empty token).
	ReasonInvalidTokens ImportReason = "invalid tokens"
	// ReasonUnreadable: the source could not read the row for another reason.
	ReasonUnreadable ImportReason = "unreadable row"
)

// Tables an ImportFailure names: the source's, which tokenstore's mirror.
const (
	ImportTableAuthTokens    = authTokensTable
	ImportTableOfflineTokens = offlineTokensTable
)

// ImportFailure names a source row that was not imported and why. No field
// holds token material.
type ImportFailure struct {
	Table    string // ImportTableAuthTokens or ImportTableOfflineTokens
	SourceID string // the row's primary key in the source
	User     string // as the source spelled it (it may be invalid)
	Provider string // as the source spelled it; empty for offline tokens
	Reason   ImportReason
	Detail   string // what exactly was wrong
}

// ImportCounts counts one table's rows.
type ImportCounts struct {
	// Imported rows were written (in a dry run: would be).
	Imported int
	// AlreadyPresent rows were left alone: tokenstore already holds tokens
	// for that user (and provider), possibly newer ones.
	AlreadyPresent int
	// Failed rows could not be imported; ImportSummary.Failures names them.
	Failed int
}

// ImportSummary is the outcome of an import.
type ImportSummary struct {
	DryRun        bool
	AuthTokens    ImportCounts
	OfflineTokens ImportCounts
	// Failures lists every failed row, in source order, auth tokens first.
	Failures []ImportFailure
}

// Total adds up both tables.
func (s ImportSummary) Total() ImportCounts {
	return ImportCounts{
		Imported:       s.AuthTokens.Imported + s.OfflineTokens.Imported,
		AlreadyPresent: s.AuthTokens.AlreadyPresent + s.OfflineTokens.AlreadyPresent,
		Failed:         s.AuthTokens.Failed + s.OfflineTokens.Failed,
	}
}

// Importer copies another system's tokens into tokenstore: each value
// re-sealed under the primary key and bound to its place, each batch in one
// transaction, nothing tokenstore already holds replaced. Whether a row can
// be imported is decided before its batch's transaction starts, so a bad row
// never stops the rows around it; a batch is written whole or not at all.
type Importer struct {
	crypter  ports.TokenCrypter
	repo     ports.ImportRepository
	declared []domain.Provider
	log      *slog.Logger
	audit    *Auditor
}

// NewImporter returns the import use case. Auth tokens are imported only
// for the declared providers (Config.Providers), as PutAuthTokens stores
// them; a row of another provider is reported as ReasonUndeclaredProvider.
// log may be nil. audit records one import_batch event per batch written
// (fail-closed in the batch's own transaction; a dry run writes nothing
// and records nothing); nil records none.
func NewImporter(log *slog.Logger, declared []domain.Provider, crypter ports.TokenCrypter, repo ports.ImportRepository, audit *Auditor) *Importer {
	return &Importer{crypter: crypter, repo: repo, declared: declared, log: orDiscard(log), audit: audit}
}

// Import copies every row src yields: auth tokens, then offline tokens. It
// returns the summary so far with an error when the source or the target
// fails; batches committed before stay committed, and running the import
// again picks up where it stopped (rows already present are skipped).
func (im *Importer) Import(ctx context.Context, src ports.ImportSource, opts ImportOptions) (ImportSummary, error) {
	size := opts.BatchSize
	if size <= 0 {
		size = DefaultImportBatchSize
	}
	if size > MaxImportBatchSize {
		return ImportSummary{}, fmt.Errorf("import batch size %d is above the limit of %d", size, MaxImportBatchSize)
	}
	sum := ImportSummary{DryRun: opts.DryRun}
	run := importRun{im: im, dryRun: opts.DryRun, sum: &sum}
	if err := importAll(ctx, run, im.authTokens(&sum.AuthTokens, opts.Envelope), src.AuthTokenBatches(ctx, size)); err != nil {
		return sum, err
	}
	if err := importAll(ctx, run, im.offlineTokens(&sum.OfflineTokens, opts.Envelope), src.OfflineTokenBatches(ctx, size)); err != nil {
		return sum, err
	}
	im.log.Info("import finished", "dry_run", opts.DryRun,
		"imported", sum.Total().Imported, "already_present", sum.Total().AlreadyPresent, "failed", sum.Total().Failed)
	return sum, nil
}

// importRun is one Import's settings and summary, shared by its tables.
type importRun struct {
	im     *Importer
	dryRun bool
	sum    *ImportSummary
}

// importTable is what differs between the source's two tables: Rec is a
// source record, Row the sealed row it becomes.
type importTable[Rec, Row any] struct {
	name     string        // ImportTableAuthTokens or ImportTableOfflineTokens
	counts   *ImportCounts // the table's counts in the run's summary
	sourceID func(Rec) string
	// check validates one record and seals it. A record that cannot be
	// imported comes back as a failure; an error means sealing itself broke
	// (the keyring), which ends the import.
	check func(Rec) (Row, *ImportFailure, error)
	// insert writes rows with the batch's audit events (their Count set to
	// the rows inserted).
	insert func(ctx context.Context, rows []Row, audit ...domain.AuditEvent) ([]bool, error)
	// stored looks a row up for a dry run: domain.ErrNotFound when absent.
	stored func(ctx context.Context, row Row) error
}

func (im *Importer) authTokens(counts *ImportCounts, f EnvelopeFormat) importTable[ports.ImportedAuthTokens, domain.SealedAuthTokens] {
	return importTable[ports.ImportedAuthTokens, domain.SealedAuthTokens]{
		name:     ImportTableAuthTokens,
		counts:   counts,
		sourceID: func(rec ports.ImportedAuthTokens) string { return rec.SourceID },
		check: func(rec ports.ImportedAuthTokens) (domain.SealedAuthTokens, *ImportFailure, error) {
			return im.checkAuthTokens(rec, f)
		},
		insert: im.repo.InsertAuthTokensBatch,
		stored: func(ctx context.Context, r domain.SealedAuthTokens) error {
			_, err := im.repo.GetAuthTokens(ctx, r.User, r.Provider)
			return err
		},
	}
}

func (im *Importer) offlineTokens(counts *ImportCounts, f EnvelopeFormat) importTable[ports.ImportedOfflineToken, domain.SealedOfflineToken] {
	return importTable[ports.ImportedOfflineToken, domain.SealedOfflineToken]{
		name:     ImportTableOfflineTokens,
		counts:   counts,
		sourceID: func(rec ports.ImportedOfflineToken) string { return rec.SourceID },
		check: func(rec ports.ImportedOfflineToken) (domain.SealedOfflineToken, *ImportFailure, error) {
			return im.checkOfflineToken(rec, f)
		},
		insert: im.repo.InsertOfflineTokensBatch,
		stored: func(ctx context.Context, r domain.SealedOfflineToken) error {
			_, err := im.repo.GetOfflineToken(ctx, r.User)
			return err
		},
	}
}

// importAll imports every batch of t that batches yields.
func importAll[Rec, Row any](ctx context.Context, run importRun, t importTable[Rec, Row], batches iter.Seq2[[]Rec, error]) error {
	for batch, err := range batches {
		if err != nil {
			return fmt.Errorf("import: read %s: %w", t.name, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if err := importBatch(ctx, run, t, batch); err != nil {
			return err
		}
	}
	return nil
}

// importBatch checks and seals a batch, then writes what passed in one
// transaction (a dry run only looks up what a real run would find).
func importBatch[Rec, Row any](ctx context.Context, run importRun, t importTable[Rec, Row], batch []Rec) error {
	if len(batch) == 0 {
		return nil
	}
	first, last := t.sourceID(batch[0]), t.sourceID(batch[len(batch)-1])
	rows := make([]Row, 0, len(batch))
	failed := 0
	for _, rec := range batch {
		row, failure, err := t.check(rec)
		if err != nil {
			return fmt.Errorf("import: %s row %q: %w", t.name, t.sourceID(rec), err)
		}
		if failure != nil {
			run.im.fail(run.sum, *failure)
			failed++
			continue
		}
		rows = append(rows, row)
	}
	t.counts.Failed += failed

	var inserted []bool
	var err error
	if run.dryRun {
		inserted, err = absent(ctx, t, rows)
	} else {
		inserted, err = storeBatch(ctx, run.im.audit, domain.AuditImportBatch, rows, t.insert)
	}
	if err != nil {
		return fmt.Errorf("import: %s batch of source ids %q to %q: %w", t.name, first, last, err)
	}
	imported, present := tally(inserted)
	t.counts.Imported += imported
	t.counts.AlreadyPresent += present
	run.im.log.Info("import batch", "table", t.name, "dry_run", run.dryRun,
		"first_source_id", first, "last_source_id", last,
		"imported", imported, "already_present", present, "failed", failed)
	return nil
}

// absent answers, for a dry run, which rows a real run would insert: those
// tokenstore holds nothing for.
func absent[Rec, Row any](ctx context.Context, t importTable[Rec, Row], rows []Row) ([]bool, error) {
	out := make([]bool, len(rows))
	for i, r := range rows {
		err := t.stored(ctx, r)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			out[i] = true
		case err != nil:
			return nil, err
		}
	}
	return out, nil
}

// checkAuthTokens checks one auth_tokens record and seals it in format f.
func (im *Importer) checkAuthTokens(rec ports.ImportedAuthTokens, f EnvelopeFormat) (domain.SealedAuthTokens, *ImportFailure, error) {
	fail := failure(ImportFailure{Table: ImportTableAuthTokens, SourceID: rec.SourceID, User: rec.User, Provider: rec.Provider})
	user, reason, err := checkUser(rec.Err, rec.User)
	if err != nil {
		return domain.SealedAuthTokens{}, fail(reason, err), nil
	}
	provider, err := domain.ParseProvider(rec.Provider)
	if err != nil {
		return domain.SealedAuthTokens{}, fail(ReasonInvalidProvider, err), nil
	}
	if err := checkDeclared(provider, im.declared); err != nil {
		return domain.SealedAuthTokens{}, fail(ReasonUndeclaredProvider, err), nil
	}
	t := domain.AuthTokens{
		User: user, Provider: provider,
		AccessToken: rec.AccessToken, RefreshToken: rec.RefreshToken,
		AccessExpiry: rec.AccessExpiry, RefreshExpiry: rec.RefreshExpiry,
	}
	if err := t.Validate(); err != nil {
		return domain.SealedAuthTokens{}, fail(ReasonInvalidTokens, err), nil
	}
	sealed, err := sealAuthTokens(im.crypter, f, t)
	return sealed, nil, err
}

// checkOfflineToken checks one offline_tokens record and seals it in format f.
func (im *Importer) checkOfflineToken(rec ports.ImportedOfflineToken, f EnvelopeFormat) (domain.SealedOfflineToken, *ImportFailure, error) {
	fail := failure(ImportFailure{Table: ImportTableOfflineTokens, SourceID: rec.SourceID, User: rec.User})
	user, reason, err := checkUser(rec.Err, rec.User)
	if err != nil {
		return domain.SealedOfflineToken{}, fail(reason, err), nil
	}
	t := domain.OfflineToken{User: user, Token: rec.Token}
	if err := t.Validate(); err != nil {
		return domain.SealedOfflineToken{}, fail(ReasonInvalidTokens, err), nil
	}
	sealed, err := sealOfflineToken(im.crypter, f, t)
	return sealed, nil, err
}

// checkUser fails a record the source could not read (readErr) or whose
// user id is invalid, with the reason to report.
func checkUser(readErr error, user string) (domain.UserID, ImportReason, error) {
	if readErr != nil {
		return "", sourceReason(readErr), readErr
	}
	id, err := domain.ParseUserID(user)
	if err != nil {
		return "", ReasonInvalidUser, err
	}
	return id, "", nil
}

// failure returns a constructor of the failures of the record id names
// (its Table, SourceID, User and Provider), by reason.
func failure(id ImportFailure) func(ImportReason, error) *ImportFailure {
	return func(reason ImportReason, err error) *ImportFailure {
		f := id
		f.Reason, f.Detail = reason, failureDetail(reason, err)
		return &f
	}
}

// fail records a failed row and logs it by its identity, never its material.
func (im *Importer) fail(sum *ImportSummary, f ImportFailure) {
	sum.Failures = append(sum.Failures, f)
	im.log.Warn("import: row not imported", "table", f.Table, "source_id", f.SourceID,
		"user", f.User, "provider", f.Provider, "reason", string(f.Reason), "detail", f.Detail)
}

func sourceReason(err error) ImportReason {
	switch {
	case errors.Is(err, ports.ErrWrongSecret):
		return ReasonWrongSecret
	case errors.Is(err, ports.ErrBadCiphertext):
		return ReasonBadCiphertext
	default:
		return ReasonUnreadable
	}
}

// failureDetail is err's message without what the reason already says.
func failureDetail(reason ImportReason, err error) string {
	var ve *domain.ValidationError
	switch {
	case errors.As(err, &ve) && (reason == ReasonInvalidUser || reason == ReasonInvalidProvider || reason == ReasonUndeclaredProvider):
		return ve.Reason
	case errors.As(err, &ve):
		return ve.Field + " " + ve.Reason
	default:
		return strings.TrimPrefix(err.Error(), string(reason)+": ")
	}
}

func tally(inserted []bool) (imported, present int) {
	for _, ok := range inserted {
		if ok {
			imported++
		} else {
			present++
		}
	}
	return imported, present
}
