package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenstore/tokenstore/domain"
)

// PostgreSQL error codes the repository gives a meaning to.
// https://www.postgresql.org/docs/current/errcodes-appendix.html
const (
	codeUniqueViolation    = "23505"
	codeCheckViolation     = "23514"
	codeStringTooLong      = "22001"
	codeLockNotAvailable   = "55P03"
	codeDeadlockDetected   = "40P01"
	codeSerializationError = "40001"
)

// interpretError is the one place driver errors become domain errors. The
// driver's error stays in the chain for logs; callers match on the domain
// sentinel with errors.Is.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case codeLockNotAvailable, codeDeadlockDetected:
		return fmt.Errorf("%w (%s)", domain.ErrBusy, pgErr.Code)
	case codeUniqueViolation, codeSerializationError:
		return fmt.Errorf("%w (%s)", domain.ErrConflict, pgErr.ConstraintName)
	case codeCheckViolation, codeStringTooLong:
		return fmt.Errorf("%w: violates %s", domain.ErrInvalid, constraintOrCode(pgErr))
	}
	return err
}

func constraintOrCode(e *pgconn.PgError) string {
	if e.ConstraintName != "" {
		return e.ConstraintName
	}
	return "SQLSTATE " + e.Code
}
