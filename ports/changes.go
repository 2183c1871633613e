package ports

import (
	"context"
	"errors"

	"github.com/tokenstore/tokenstore/domain"
)

// TokenChangeSink hears of changes to stored tokens as the database
// commits them, in commit order (PostgreSQL's LISTEN/NOTIFY; see
// sql/migrations/00013_token_changes.sql and postgres.ChangeListener):
// the read cache (adapters/readcache) drops what it hears changed. Its
// methods are called from one goroutine, one at a time, and must not block.
type TokenChangeSink interface {
	// TokensChanged: the stored row of user's tokens for provider (provider
	// "": the user's offline token) was written or deleted, reaching
	// version (the version after the change; before it, for a delete).
	TokensChanged(user domain.UserID, provider domain.Provider, version int64)
	// AllTokensChanged: any stored row may have changed (a statement that
	// changed many rows, a TRUNCATE, a notification that could not be
	// read, a listener that has just started listening and may have missed
	// changes before).
	AllTokensChanged()
	// Disconnected: changes go unheard from now until the listener is back
	// (it says so with AllTokensChanged).
	Disconnected()
}

// ErrSyncLate is ChangeBarrier.Sync's error when the proof did not come
// within the barrier's time: the listener lags.
var ErrSyncLate = errors.New("the proof that every change was heard is late")

// ChangeBarrier proves a TokenChangeSink is up to date.
type ChangeBarrier interface {
	// Sync returns nil once every change committed before the call has
	// been reported to the sink. It fails at once when nobody listens,
	// with ErrSyncLate when the proof takes longer than the barrier allows,
	// and with ctx's error when ctx ends first.
	Sync(ctx context.Context) error
}

// ReadCache is implemented by a TokenRepository that may answer reads
// of a row's servable part from memory (adapters/readcache); the token
// service finds it by asserting its repository to it. The service answers
// from a kept row only when the refresh rule serves it as it is; any other
// decision is taken by the refresh protocol on the database's row, under
// its lock. GetAuthTokens keeps its contract (the whole row, as the
// database has it).
type ReadCache interface {
	// ServableAuthTokens returns the part of user's tokens for provider
	// that serving the access token reads, from memory when the cache may
	// answer (as fresh as a database read made when the call began), else
	// from the database. domain.ErrNotFound when nothing is stored. The
	// returned AccessToken may be shared with concurrent callers (misses
	// share one read): the caller may keep it and must not modify it.
	ServableAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) (domain.ServableAuthTokens, error)
	// AuthTokensChanged returns a channel closed when the next change to
	// the row of user's tokens for provider is heard (or changes may go
	// unheard: a lost listener): a caller waiting for another instance's
	// refresh wakes when it commits instead of at its next poll. The caller
	// calls stop when it no longer waits (once or more; after the change
	// too), so the cache forgets waits given up.
	AuthTokensChanged(user domain.UserID, provider domain.Provider) (changed <-chan struct{}, stop func())
}
