package domain

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every layer wraps them (fmt.Errorf("...: %w", err)) and
// callers test with errors.Is; the HTTP adapter maps each to a stable code.
var (
	// ErrNotFound: no tokens are stored for that user (and provider).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: input broke a rule; the wrapping *ValidationError names the field.
	ErrInvalid = errors.New("invalid input")
	// ErrDecrypt: a ciphertext could not be decrypted (wrong or unknown key,
	// tampered or truncated data). Its message never contains key or token material.
	ErrDecrypt = errors.New("cannot decrypt")
	// ErrBusy: the row is locked by another writer for longer than the lock timeout.
	ErrBusy = errors.New("busy: the row is locked by another transaction")
	// ErrConflict: a concurrent writer changed the row first.
	ErrConflict = errors.New("conflict: the row was changed concurrently")
	// ErrTokenExpired: the stored access token has expired and cannot be refreshed here.
	ErrTokenExpired = errors.New("access token expired")
)

// ValidationError says which field was wrong and why. It matches ErrInvalid
// with errors.Is.
type ValidationError struct {
	Field  string // the offending field, e.g. "user" or "access_token"
	Reason string // what was wrong and how to fix it; never contains token material
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
