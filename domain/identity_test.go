package domain_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/domain"
)

// assertValidationError checks that err is a *ValidationError for field,
// matches ErrInvalid (also when wrapped), and matches no other sentinel.
func assertValidationError(t *testing.T, err error, field string) *domain.ValidationError {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want a validation error for %q", field)
	}
	for _, e := range []error{err, fmt.Errorf("wrapped: %w", err)} {
		if !errors.Is(e, domain.ErrInvalid) {
			t.Fatalf("errors.Is(%v, ErrInvalid) = false", e)
		}
		for _, other := range []error{domain.ErrNotFound, domain.ErrDecrypt, domain.ErrBusy, domain.ErrConflict, domain.ErrTokenExpired} {
			if errors.Is(e, other) {
				t.Fatalf("errors.Is(%v, %v) = true", e, other)
			}
		}
	}
	var ve *domain.ValidationError
	if !errors.As(fmt.Errorf("wrapped: %w", err), &ve) {
		t.Fatalf("errors.As(%v, *ValidationError) = false (type %T)", err, err)
	}
	if ve.Field != field {
		t.Fatalf("Field = %q, want %q (err: %v)", ve.Field, field, err)
	}
	if ve.Reason == "" {
		t.Fatalf("Reason is empty")
	}
	if want := "invalid " + field + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Error() = %q, want prefix %q", err.Error(), want)
	}
	return ve
}

func TestParseUserID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr bool
		// reason, if set, must appear in the error message.
		reason string
	}{
		// valid
		{name: "uuid", in: "f47ac10b-58cc-4372-a567-0e02b2c3d479"},
		{name: "email-like", in: "alice@example.com"},
		{name: "single byte", in: "a"},
		{name: "unicode", in: "ユーザー名"},
		{name: "accented", in: "Ünïcödé-ñ"},
		{name: "emoji", in: "user😀"},
		{name: "inner spaces", in: "John Doe"},
		{name: "punctuation", in: `a/b\c:d;e|f"g'h<i>&`},
		{name: "NBSP U+00A0 is first non-control after C1", in: "a\u00a0b"},
		{name: "zero-width space", in: "a\u200bb", wantErr: true},
		{name: "255 ASCII bytes", in: strings.Repeat("a", 255)},
		{name: "253 ASCII + 2-byte rune = 255", in: strings.Repeat("a", 253) + "é"},
		{name: "252 ASCII + 3-byte rune = 255", in: strings.Repeat("a", 252) + "€"},
		{name: "251 ASCII + 4-byte rune = 255", in: strings.Repeat("a", 251) + "😀"},
		{name: "85 three-byte runes = 255 bytes", in: strings.Repeat("€", 85)},

		// invalid: empty and length (bytes, not runes)
		{name: "empty", in: "", wantErr: true, reason: "empty"},
		{name: "dot", in: ".", wantErr: true, reason: "dot-segment"},
		{name: "dot dot", in: "..", wantErr: true, reason: "dot-segment"},
		{name: "three dots are a name", in: "..."},
		{name: "dot-prefixed name", in: ".alice"},
		{name: "256 ASCII bytes", in: strings.Repeat("a", 256), wantErr: true, reason: "256 bytes"},
		{name: "254 ASCII + 2-byte rune = 256", in: strings.Repeat("a", 254) + "é", wantErr: true, reason: "256 bytes"},
		{name: "253 ASCII + 3-byte rune = 256", in: strings.Repeat("a", 253) + "€", wantErr: true, reason: "256 bytes"},
		{name: "252 ASCII + 4-byte rune = 256", in: strings.Repeat("a", 252) + "😀", wantErr: true, reason: "256 bytes"},
		{name: "64 four-byte runes = 256 bytes", in: strings.Repeat("😀", 64), wantErr: true, reason: "256 bytes"},
		{name: "very long", in: strings.Repeat("x", 1<<20), wantErr: true},

		// invalid UTF-8
		{name: "lone 0xff", in: "\xff", wantErr: true, reason: "UTF-8"},
		{name: "truncated 2-byte sequence", in: "abc\xc3", wantErr: true, reason: "UTF-8"},
		{name: "overlong slash", in: "\xc0\xaf", wantErr: true, reason: "UTF-8"},
		{name: "UTF-16 surrogate", in: "\xed\xa0\x80", wantErr: true, reason: "UTF-8"},
		{name: "valid prefix then invalid", in: "alice\x80", wantErr: true, reason: "UTF-8"},
		{name: "255 bytes ending in broken rune", in: strings.Repeat("a", 254) + "\xe2", wantErr: true, reason: "UTF-8"},

		// invalid: control characters
		{name: "NUL", in: "a\x00b", wantErr: true, reason: "U+0000"},
		{name: "newline", in: "alice\n", wantErr: true, reason: "U+000A"},
		{name: "carriage return", in: "alice\rbob", wantErr: true, reason: "U+000D"},
		{name: "tab", in: "\talice", wantErr: true, reason: "U+0009"},
		{name: "escape", in: "a\x1b[31mb", wantErr: true, reason: "U+001B"},
		{name: "unit separator 0x1f", in: "a\x1fb", wantErr: true, reason: "U+001F"},
		{name: "DEL 0x7f", in: "a\x7fb", wantErr: true, reason: "U+007F"},
		{name: "C1 U+0080", in: "a\u0080b", wantErr: true, reason: "U+0080"},
		{name: "NEL U+0085", in: "a\u0085b", wantErr: true, reason: "U+0085"},
		{name: "C1 U+009F", in: "a\u009fb", wantErr: true, reason: "U+009F"},
		{name: "only a control char", in: "\x00", wantErr: true, reason: "U+0000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseUserID(tc.in)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("ParseUserID(%q) error: %v", tc.in, err)
				}
				if string(got) != tc.in || got.String() != tc.in {
					t.Fatalf("ParseUserID(%q) = %q, want the input unchanged", tc.in, got)
				}
				return
			}
			if got != "" {
				t.Errorf("ParseUserID(%q) returned %q with an error; want empty", tc.in, got)
			}
			assertValidationError(t, err, "user")
			if tc.reason != "" && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("Error() = %q, want it to mention %q", err.Error(), tc.reason)
			}
			// A user id may be personal data: the message must not echo it.
			if len(tc.in) > 1 && strings.Contains(err.Error(), tc.in) {
				t.Errorf("Error() = %q echoes the input", err.Error())
			}
		})
	}
}

func TestMaxUserIDLen(t *testing.T) {
	t.Parallel()
	if domain.MaxUserIDLen != 255 {
		t.Fatalf("MaxUserIDLen = %d, want 255", domain.MaxUserIDLen)
	}
}

func TestParseProvider(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		// valid
		{name: "github", in: "github"},
		{name: "gitlab", in: "gitlab"},
		{name: "bitbucket", in: "bitbucket"},
		{name: "azure_devops", in: "azure_devops"},
		{name: "keycloak", in: "keycloak"},
		{name: "hyphen", in: "a-b"},
		{name: "digit first", in: "0x"},
		{name: "single letter", in: "a"},
		{name: "single digit", in: "0"},
		{name: "all digits", in: "123"},
		{name: "deployment-specific", in: "gitlab-internal"},
		{name: "trailing underscore", in: "a_"},
		{name: "trailing hyphen", in: "a-"},
		{name: "double separators", in: "a--b__c"},
		{name: "64 chars", in: strings.Repeat("a", 64)},
		{name: "64 chars mixed", in: "z" + strings.Repeat("9_-", 21)},

		// invalid
		{name: "empty", in: "", wantErr: true},
		{name: "capitalised", in: "GitHub", wantErr: true},
		{name: "upper case", in: "GITHUB", wantErr: true},
		{name: "upper case last", in: "githuB", wantErr: true},
		{name: "leading underscore", in: "_github", wantErr: true},
		{name: "leading hyphen", in: "-github", wantErr: true},
		{name: "only underscore", in: "_", wantErr: true},
		{name: "only hyphen", in: "-", wantErr: true},
		{name: "65 chars", in: strings.Repeat("a", 65), wantErr: true},
		{name: "space inside", in: "git hub", wantErr: true},
		{name: "leading space", in: " github", wantErr: true},
		{name: "trailing space", in: "github ", wantErr: true},
		{name: "dot", in: "gitlab.example.com", wantErr: true},
		{name: "slash", in: "a/b", wantErr: true},
		{name: "colon", in: "a:b", wantErr: true},
		{name: "newline", in: "github\n", wantErr: true},
		{name: "NUL", in: "github\x00", wantErr: true},
		{name: "unicode letter", in: "gïthub", wantErr: true},
		{name: "fullwidth letter", in: "ｇithub", wantErr: true},
		{name: "cyrillic homoglyph", in: "githuЬ", wantErr: true},
		{name: "invalid UTF-8", in: "git\xffhub", wantErr: true},
		{name: "33 two-byte runes", in: strings.Repeat("é", 33), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseProvider(tc.in)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("ParseProvider(%q) error: %v", tc.in, err)
				}
				if string(got) != tc.in || got.String() != tc.in {
					t.Fatalf("ParseProvider(%q) = %q, want the input unchanged", tc.in, got)
				}
				if !providerRE.MatchString(tc.in) {
					t.Fatalf("accepted %q, which does not match %s", tc.in, providerRE)
				}
				return
			}
			if got != "" {
				t.Errorf("ParseProvider(%q) returned %q with an error; want empty", tc.in, got)
			}
			assertValidationError(t, err, "provider")
			if providerRE.MatchString(tc.in) {
				t.Fatalf("rejected %q, which matches %s", tc.in, providerRE)
			}
		})
	}
}

func TestWellKnownProvidersParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    domain.Provider
		want string
	}{
		{domain.ProviderGitHub, "github"},
		{domain.ProviderGitLab, "gitlab"},
		{domain.ProviderBitbucket, "bitbucket"},
		{domain.ProviderAzureDevOps, "azure_devops"},
		{domain.ProviderKeycloak, "keycloak"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			if string(tc.p) != tc.want {
				t.Fatalf("constant = %q, want %q", tc.p, tc.want)
			}
			got, err := domain.ParseProvider(tc.want)
			if err != nil || got != tc.p {
				t.Fatalf("ParseProvider(%q) = %q, %v", tc.want, got, err)
			}
		})
	}
}

func TestMaxProviderLen(t *testing.T) {
	t.Parallel()
	if domain.MaxProviderLen != 64 {
		t.Fatalf("MaxProviderLen = %d, want 64", domain.MaxProviderLen)
	}
}
