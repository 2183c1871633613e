package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/tokenstore/tokenstore/domain"
)

// PostgreSQL error codes the repository gives a meaning to.
// https://www.postgresql.org/docs/current/errcodes-appendix.html
const (
	codeUniqueViolation       = "23505"
	codeCheckViolation        = "23514"
	codeStringTooLong         = "22001"
	codeLockNotAvailable      = "55P03"
	codeDeadlockDetected      = "40P01"
	codeSerializationError    = "40001"
	codeQueryCanceled         = "57014" // statement_timeout, or a cancel request
	codeAdminShutdown         = "57P01"
	codeCrashShutdown         = "57P02"
	codeCannotConnectNow      = "57P03"
	codeIdleInTxTimeout       = "25P03"
	codeIdleSessionTimeout    = "57P05"
	codeInvalidStatementName  = "26000" // prepared statement does not exist
	codeDuplicatePrepared     = "42P05" // prepared statement already exists
	classConnectionException  = "08"    // connection_failure, ... (reported by the server or pgconn)
	classInsufficientResource = "53"    // too_many_connections (53300), out_of_memory, disk_full
)

// effect says what a failed call may have changed, which decides whether a
// lost connection leaves its outcome unknown.
type effect int

const (
	// noEffect: a read, or a statement inside a transaction that will not
	// commit (the server rolls it back when the connection is lost).
	noEffect effect = iota
	// mayHaveApplied: a write that commits by itself (one statement outside
	// a transaction, or COMMIT): a failure after it was sent leaves its
	// outcome unknown.
	mayHaveApplied
)

// interpretError is the one place driver errors become domain errors. The
// driver's error stays in the chain for logs; callers match on the domain
// sentinel with errors.Is:
//
//   - no row: domain.ErrNotFound;
//   - lock timeout, deadlock, serialization failure: domain.ErrBusy (the
//     transaction was rolled back; retrying may succeed);
//   - unique violation: domain.ErrConflict; check violation or over-long
//     value: domain.ErrInvalid;
//   - the database unreachable, shutting down, out of connections, a
//     statement or idle timeout, a deadline, a lost connection:
//     domain.ErrStorageUnavailable, and domain.ErrOutcomeUnknown as well when
//     e may have applied and the failure came after it was sent;
//   - the client gone (context.Canceled) and anything else (a bug): as it is.
func interpretError(err error, e effect) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server answered with an error: the statement failed and its
		// transaction is rolled back, so nothing was applied.
		return interpretServerError(err, pgErr)
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if !unavailable(err) {
		return err
	}
	var connectErr *pgconn.ConnectError
	if e == mayHaveApplied && !pgconn.SafeToRetry(err) && !errors.As(err, &connectErr) {
		return fmt.Errorf("%w: %w: %w", domain.ErrStorageUnavailable, domain.ErrOutcomeUnknown, err)
	}
	return fmt.Errorf("%w: %w", domain.ErrStorageUnavailable, err)
}

func interpretServerError(err error, pgErr *pgconn.PgError) error {
	switch code := pgErr.Code; {
	case code == codeLockNotAvailable, code == codeDeadlockDetected, code == codeSerializationError:
		return fmt.Errorf("%w (SQLSTATE %s)", domain.ErrBusy, code)
	case code == codeUniqueViolation:
		return fmt.Errorf("%w (%s)", domain.ErrConflict, pgErr.ConstraintName)
	case code == codeCheckViolation, code == codeStringTooLong:
		return fmt.Errorf("%w: violates %s", domain.ErrInvalid, constraintOrCode(pgErr))
	case code == codeInvalidStatementName, code == codeDuplicatePrepared:
		// pgx's default query mode prepares named statements once per
		// connection; a pooler in transaction mode sends the next
		// statement to another server connection, which lacks them (or
		// already has one of that name).
		return fmt.Errorf("%w: the server's prepared statements do not match this connection's: it goes through a pooler in transaction mode "+
			"(such as PgBouncer); set TOKENSTORE_DATABASE_QUERY_EXEC_MODE (database.query_exec_mode) to exec (README: Poolers)", err)
	case code == codeQueryCanceled, code == codeAdminShutdown, code == codeCrashShutdown,
		code == codeCannotConnectNow, code == codeIdleInTxTimeout, code == codeIdleSessionTimeout,
		len(code) == 5 && (code[:2] == classConnectionException || code[:2] == classInsufficientResource):
		return fmt.Errorf("%w: %w", domain.ErrStorageUnavailable, err)
	}
	return err
}

// unavailable reports whether err (not from the server) means the database
// could not be reached or did not answer: a connection that failed, was
// refused, reset or closed, a timeout or deadline, a closed pool.
func unavailable(err error) bool {
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	return errors.Is(err, context.DeadlineExceeded) ||
		pgconn.Timeout(err) ||
		errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, puddle.ErrClosedPool) ||
		pgconn.SafeToRetry(err) // pgconn's own mark for "failed before anything was sent"
}

func constraintOrCode(e *pgconn.PgError) string {
	if e.ConstraintName != "" {
		return e.ConstraintName
	}
	return "SQLSTATE " + e.Code
}
