package domain_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tokenstore/tokenstore/domain"
)

func TestSentinelErrorsAreDistinct(t *testing.T) {
	t.Parallel()
	sentinels := map[string]error{
		"ErrNotFound":     domain.ErrNotFound,
		"ErrInvalid":      domain.ErrInvalid,
		"ErrDecrypt":      domain.ErrDecrypt,
		"ErrBusy":         domain.ErrBusy,
		"ErrConflict":     domain.ErrConflict,
		"ErrTokenExpired": domain.ErrTokenExpired,
		"ErrUnavailable":  domain.ErrUnavailable,
		"ErrStorage":      domain.ErrStorageUnavailable,
		"ErrOutcome":      domain.ErrOutcomeUnknown,
	}
	for name, err := range sentinels {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err == nil || err.Error() == "" {
				t.Fatalf("%s is nil or has an empty message", name)
			}
			wrapped := fmt.Errorf("layer: %w", fmt.Errorf("inner: %w", err))
			if !errors.Is(wrapped, err) {
				t.Fatalf("errors.Is(wrapped %s) = false", name)
			}
			for otherName, other := range sentinels {
				if otherName != name && (errors.Is(err, other) || err.Error() == other.Error()) {
					t.Fatalf("%s matches %s", name, otherName)
				}
			}
		})
	}
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *domain.ValidationError
		want string
	}{
		{"user", &domain.ValidationError{Field: "user", Reason: "must not be empty"}, "invalid user: must not be empty"},
		{"access_token", &domain.ValidationError{Field: "access_token", Reason: "x"}, "invalid access_token: x"},
		{"zero", &domain.ValidationError{}, "invalid : "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if got := tc.err.Unwrap(); got != domain.ErrInvalid {
				t.Errorf("Unwrap() = %v, want ErrInvalid", got)
			}
			var err error = tc.err
			if !errors.Is(err, domain.ErrInvalid) {
				t.Error("errors.Is(ErrInvalid) = false")
			}
			if errors.Is(err, domain.ErrNotFound) {
				t.Error("errors.Is(ErrNotFound) = true")
			}
			var ve *domain.ValidationError
			if !errors.As(fmt.Errorf("ctx: %w", err), &ve) || ve != tc.err {
				t.Error("errors.As through a wrap did not return the same *ValidationError")
			}
		})
	}
}
