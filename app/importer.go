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

// ImportSource is another system's token store, read for an import: its
// rows decrypted, a batch at a time, in a stable order. A row that could
// not be read carries the reason in its Err; an error yielded by a sequence
// means the source itself failed and ends the import.
type ImportSource interface {
	AuthTokenBatches(ctx context.Context, size int) iter.Seq2[[]ports.ImportedAuthTokens, error]
	OfflineTokenBatches(ctx context.Context, size int) iter.Seq2[[]ports.ImportedOfflineToken, error]
}

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
	// ReasonInvalidTokens: the decrypted row breaks another rule (an empty token).
	ReasonInvalidTokens ImportReason = "invalid tokens"
	// ReasonUnreadable: the source could not read the row for another reason.
	ReasonUnreadable ImportReason = "unreadable row"
)

// Tables an ImportFailure names: the source's, which tokenstore's mirror.
const (
	ImportTableAuthTokens    = "auth_tokens"
	ImportTableOfflineTokens = "offline_tokens"
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
	existing ports.TokenRepository // dry runs: what is already stored
	log      *slog.Logger
}

// NewImporter returns the import use case. existing answers what a dry run
// would find already present (usually the same repository as repo).
func NewImporter(log *slog.Logger, crypter ports.TokenCrypter, repo ports.ImportRepository, existing ports.TokenRepository) *Importer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{crypter: crypter, repo: repo, existing: existing, log: log}
}

// Import copies every row src yields: auth tokens, then offline tokens. It
// returns the summary so far with an error when the source or the target
// fails; batches committed before stay committed, and running the import
// again picks up where it stopped (rows already present are skipped).
func (im *Importer) Import(ctx context.Context, src ImportSource, opts ImportOptions) (ImportSummary, error) {
	size := opts.BatchSize
	if size <= 0 {
		size = DefaultImportBatchSize
	}
	if size > MaxImportBatchSize {
		return ImportSummary{}, fmt.Errorf("import batch size %d is above the limit of %d", size, MaxImportBatchSize)
	}
	sum := ImportSummary{DryRun: opts.DryRun}
	for batch, err := range src.AuthTokenBatches(ctx, size) {
		if err != nil {
			return sum, fmt.Errorf("import: read auth tokens: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return sum, fmt.Errorf("import: %w", err)
		}
		if err := im.authBatch(ctx, batch, opts.DryRun, &sum); err != nil {
			return sum, err
		}
	}
	for batch, err := range src.OfflineTokenBatches(ctx, size) {
		if err != nil {
			return sum, fmt.Errorf("import: read offline tokens: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return sum, fmt.Errorf("import: %w", err)
		}
		if err := im.offlineBatch(ctx, batch, opts.DryRun, &sum); err != nil {
			return sum, err
		}
	}
	im.log.Info("import finished", "dry_run", opts.DryRun,
		"imported", sum.Total().Imported, "already_present", sum.Total().AlreadyPresent, "failed", sum.Total().Failed)
	return sum, nil
}

func (im *Importer) authBatch(ctx context.Context, batch []ports.ImportedAuthTokens, dryRun bool, sum *ImportSummary) error {
	if len(batch) == 0 {
		return nil
	}
	rows := make([]domain.SealedAuthTokens, 0, len(batch))
	failed := 0
	for _, rec := range batch {
		sealed, failure, err := im.sealAuthTokens(rec)
		if err != nil {
			return fmt.Errorf("import: auth_tokens row %s: %w", rec.SourceID, err)
		}
		if failure != nil {
			im.fail(sum, *failure)
			failed++
			continue
		}
		rows = append(rows, sealed)
	}
	sum.AuthTokens.Failed += failed

	var inserted []bool
	var err error
	if dryRun {
		inserted, err = im.absentAuthTokens(ctx, rows)
	} else {
		inserted, err = im.repo.InsertAuthTokensBatch(ctx, rows)
	}
	if err != nil {
		return fmt.Errorf("import: auth_tokens batch of source ids %s to %s: %w",
			batch[0].SourceID, batch[len(batch)-1].SourceID, err)
	}
	imported, present := tally(inserted)
	sum.AuthTokens.Imported += imported
	sum.AuthTokens.AlreadyPresent += present
	im.log.Info("import batch", "table", ImportTableAuthTokens, "dry_run", dryRun,
		"first_source_id", batch[0].SourceID, "last_source_id", batch[len(batch)-1].SourceID,
		"imported", imported, "already_present", present, "failed", failed)
	return nil
}

func (im *Importer) offlineBatch(ctx context.Context, batch []ports.ImportedOfflineToken, dryRun bool, sum *ImportSummary) error {
	if len(batch) == 0 {
		return nil
	}
	rows := make([]domain.SealedOfflineToken, 0, len(batch))
	failed := 0
	for _, rec := range batch {
		sealed, failure, err := im.sealOfflineToken(rec)
		if err != nil {
			return fmt.Errorf("import: offline_tokens row %q: %w", rec.SourceID, err)
		}
		if failure != nil {
			im.fail(sum, *failure)
			failed++
			continue
		}
		rows = append(rows, sealed)
	}
	sum.OfflineTokens.Failed += failed

	var inserted []bool
	var err error
	if dryRun {
		inserted, err = im.absentOfflineTokens(ctx, rows)
	} else {
		inserted, err = im.repo.InsertOfflineTokensBatch(ctx, rows)
	}
	if err != nil {
		return fmt.Errorf("import: offline_tokens batch of source ids %q to %q: %w",
			batch[0].SourceID, batch[len(batch)-1].SourceID, err)
	}
	imported, present := tally(inserted)
	sum.OfflineTokens.Imported += imported
	sum.OfflineTokens.AlreadyPresent += present
	im.log.Info("import batch", "table", ImportTableOfflineTokens, "dry_run", dryRun,
		"imported", imported, "already_present", present, "failed", failed)
	return nil
}

// sealAuthTokens checks one row and seals it for storage. A row that cannot
// be imported comes back as a failure; an error means sealing itself broke
// (the keyring), which ends the import.
func (im *Importer) sealAuthTokens(rec ports.ImportedAuthTokens) (domain.SealedAuthTokens, *ImportFailure, error) {
	failure := func(reason ImportReason, detail error) (domain.SealedAuthTokens, *ImportFailure, error) {
		return domain.SealedAuthTokens{}, &ImportFailure{
			Table: ImportTableAuthTokens, SourceID: rec.SourceID, User: rec.User, Provider: rec.Provider,
			Reason: reason, Detail: failureDetail(reason, detail),
		}, nil
	}
	if rec.Err != nil {
		return failure(sourceReason(rec.Err), rec.Err)
	}
	user, err := domain.ParseUserID(rec.User)
	if err != nil {
		return failure(ReasonInvalidUser, err)
	}
	provider, err := domain.ParseProvider(rec.Provider)
	if err != nil {
		return failure(ReasonInvalidProvider, err)
	}
	t := domain.AuthTokens{
		User: user, Provider: provider,
		AccessToken: rec.AccessToken, RefreshToken: rec.RefreshToken,
		AccessExpiry: rec.AccessExpiry, RefreshExpiry: rec.RefreshExpiry,
	}
	if err := t.Validate(); err != nil {
		return failure(ReasonInvalidTokens, err)
	}
	access, err := Seal(im.crypter, AccessTokenPlace(user, provider), t.AccessToken)
	if err != nil {
		return domain.SealedAuthTokens{}, nil, fmt.Errorf("seal access token: %w", err)
	}
	sealed := domain.SealedAuthTokens{
		User: user, Provider: provider, KeyID: access.KeyID, AccessToken: access.Data,
		AccessExpiry: t.AccessExpiry, RefreshExpiry: t.RefreshExpiry,
	}
	if t.HasRefreshToken() {
		refresh, err := Seal(im.crypter, RefreshTokenPlace(user, provider), t.RefreshToken)
		if err != nil {
			return domain.SealedAuthTokens{}, nil, fmt.Errorf("seal refresh token: %w", err)
		}
		if refresh.KeyID != access.KeyID {
			// One key id per row: the keyring's primary changed mid-call.
			return domain.SealedAuthTokens{}, nil, fmt.Errorf("seal tokens: primary key changed from %s to %s", access.KeyID, refresh.KeyID)
		}
		sealed.RefreshToken = refresh.Data
	}
	return sealed, nil, nil
}

func (im *Importer) sealOfflineToken(rec ports.ImportedOfflineToken) (domain.SealedOfflineToken, *ImportFailure, error) {
	failure := func(reason ImportReason, detail error) (domain.SealedOfflineToken, *ImportFailure, error) {
		return domain.SealedOfflineToken{}, &ImportFailure{
			Table: ImportTableOfflineTokens, SourceID: rec.SourceID, User: rec.User,
			Reason: reason, Detail: failureDetail(reason, detail),
		}, nil
	}
	if rec.Err != nil {
		return failure(sourceReason(rec.Err), rec.Err)
	}
	user, err := domain.ParseUserID(rec.User)
	if err != nil {
		return failure(ReasonInvalidUser, err)
	}
	t := domain.OfflineToken{User: user, Token: rec.Token}
	if err := t.Validate(); err != nil {
		return failure(ReasonInvalidTokens, err)
	}
	c, err := Seal(im.crypter, OfflineTokenPlace(user), t.Token)
	if err != nil {
		return domain.SealedOfflineToken{}, nil, fmt.Errorf("seal offline token: %w", err)
	}
	return domain.SealedOfflineToken{User: user, KeyID: c.KeyID, Token: c.Data}, nil, nil
}

// absentAuthTokens answers, for a dry run, which rows a real run would
// insert: those tokenstore holds nothing for.
func (im *Importer) absentAuthTokens(ctx context.Context, rows []domain.SealedAuthTokens) ([]bool, error) {
	absent := make([]bool, len(rows))
	for i, r := range rows {
		_, err := im.existing.GetAuthTokens(ctx, r.User, r.Provider)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			absent[i] = true
		case err != nil:
			return nil, err
		}
	}
	return absent, nil
}

func (im *Importer) absentOfflineTokens(ctx context.Context, rows []domain.SealedOfflineToken) ([]bool, error) {
	absent := make([]bool, len(rows))
	for i, r := range rows {
		_, err := im.existing.GetOfflineToken(ctx, r.User)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			absent[i] = true
		case err != nil:
			return nil, err
		}
	}
	return absent, nil
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
	case errors.As(err, &ve) && (reason == ReasonInvalidUser || reason == ReasonInvalidProvider):
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
