package ports

import (
	"context"
	"errors"
	"iter"

	"github.com/tokenstore/tokenstore/domain"
)

// ImportSource is another system's token store, read for an import: its
// rows decrypted, a batch at a time, in a stable order. A row that could
// not be read carries the reason in its Err; an error yielded by a sequence
// means the source itself failed and ends the import.
type ImportSource interface {
	AuthTokenBatches(ctx context.Context, size int) iter.Seq2[[]ImportedAuthTokens, error]
	OfflineTokenBatches(ctx context.Context, size int) iter.Seq2[[]ImportedOfflineToken, error]
}

// ImportRepository is what an import needs from storage: write one batch of
// rows in one transaction, never replacing what tokenstore already holds
// (it may be newer than the source's copy), so running an import twice
// changes nothing; and, for a dry run, say what it already holds.
type ImportRepository interface {
	// InsertAuthTokensBatch stores each row whose user and provider have no
	// tokens yet, all in one transaction, and reports per row whether it was
	// stored (true) or already present (false). An error means nothing of
	// the batch was stored. The audit events given (the batch's) are stored
	// in the same transaction, each with Count set to the number of rows
	// stored; an audit store that refuses them fails the call with
	// domain.ErrAuditUnavailable and nothing is stored.
	InsertAuthTokensBatch(ctx context.Context, rows []domain.SealedAuthTokens, audit ...domain.AuditEvent) ([]bool, error)
	// InsertOfflineTokensBatch is InsertAuthTokensBatch for offline tokens,
	// keyed by user.
	InsertOfflineTokensBatch(ctx context.Context, rows []domain.SealedOfflineToken, audit ...domain.AuditEvent) ([]bool, error)
	// GetAuthTokens returns domain.ErrNotFound when nothing is stored (as
	// TokenRepository.GetAuthTokens).
	GetAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.SealedAuthTokens, error)
	// GetOfflineToken returns domain.ErrNotFound when nothing is stored.
	GetOfflineToken(ctx context.Context, user domain.UserID) (domain.SealedOfflineToken, error)
}

// Why a row of another system could not be read. An import source wraps
// one of these in the Err of the row's record; the importer names it in its
// summary.
var (
	// ErrWrongSecret: the value is a well-formed Fernet token, but the key
	// derived from the given secret does not open it (another secret, or
	// tampered data).
	ErrWrongSecret = errors.New("wrong secret")
	// ErrBadCiphertext: the value is not a Fernet token at all, or its
	// envelope (JSON around or inside it) is malformed.
	ErrBadCiphertext = errors.New("bad ciphertext")
)

// ImportedAuthTokens is one row of another system's auth token table,
// decrypted but not validated: User and Provider are as the source spelled
// them, for the importer to check.
type ImportedAuthTokens struct {
	// SourceID names the row in the source (its primary key), for reports.
	SourceID string
	User     string
	Provider string
	// AccessToken and RefreshToken are the plaintexts; a zero RefreshToken
	// means the row has none.
	AccessToken   domain.Secret
	RefreshToken  domain.Secret
	AccessExpiry  domain.Expiry
	RefreshExpiry domain.Expiry
	// Err is why the row could not be read (wrapping ErrWrongSecret,
	// ErrBadCiphertext or another reason); the token fields are then zero.
	// Its message never holds token material.
	Err error
}

// ImportedOfflineToken is one row of another system's offline token table,
// decrypted but not validated.
type ImportedOfflineToken struct {
	// SourceID names the row in the source (its primary key), for reports.
	SourceID string
	User     string
	Token    domain.Secret
	// Err: see ImportedAuthTokens.Err.
	Err error
}
