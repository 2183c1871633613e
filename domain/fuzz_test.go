package domain_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tokenstore/tokenstore/domain"
)

// providerRE is the documented provider rule.
var providerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// validUserIDModel is an independent statement of the user id rule.
func validUserIDModel(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > domain.MaxUserIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return strings.TrimSpace(s) == s
}

func FuzzParseUserID(f *testing.F) {
	for _, seed := range []string{
		"", ".", "..", "...", "a", "alice@example.com", "f47ac10b-58cc-4372-a567-0e02b2c3d479", "ユーザー",
		"a\x00", "a\n", "\t", "\x7f", "\u0085", "\u009f", "\u00a0", "\xff", "\xc0\xaf", "\xed\xa0\x80",
		strings.Repeat("a", 255), strings.Repeat("a", 256), strings.Repeat("a", 253) + "é",
		strings.Repeat("a", 254) + "é", strings.Repeat("a", 254) + "\xe2",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := domain.ParseUserID(s)
		if want := validUserIDModel(s); (err == nil) != want {
			t.Fatalf("ParseUserID(%q): err=%v, model says valid=%v", s, err, want)
		}
		if err != nil {
			if id != "" {
				t.Fatalf("ParseUserID(%q) = %q with error", s, id)
			}
			var ve *domain.ValidationError
			if !errors.Is(err, domain.ErrInvalid) || !errors.As(err, &ve) || ve.Field != "user" {
				t.Fatalf("ParseUserID(%q) error %v (%T) is not a user ValidationError", s, err, err)
			}
			return
		}
		if string(id) != s || id.String() != s {
			t.Fatalf("ParseUserID(%q) = %q: not a round trip", s, id)
		}
		// Accepted ids parse again to themselves.
		again, err := domain.ParseUserID(id.String())
		if err != nil || again != id {
			t.Fatalf("re-parse of %q = %q, %v", id, again, err)
		}
	})
}

func FuzzParseProvider(f *testing.F) {
	for _, seed := range []string{
		"", "github", "gitlab", "bitbucket", "azure_devops", "keycloak", "a-b", "0x", "a", "_a", "-a",
		"GitHub", "git hub", "git.hub", "gïthub", "\x00", "\xff", strings.Repeat("a", 64), strings.Repeat("a", 65),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := domain.ParseProvider(s)
		if want := providerRE.MatchString(s); (err == nil) != want {
			t.Fatalf("ParseProvider(%q): err=%v, regexp match=%v", s, err, want)
		}
		if err != nil {
			if p != "" {
				t.Fatalf("ParseProvider(%q) = %q with error", s, p)
			}
			var ve *domain.ValidationError
			if !errors.Is(err, domain.ErrInvalid) || !errors.As(err, &ve) || ve.Field != "provider" {
				t.Fatalf("ParseProvider(%q) error %v (%T) is not a provider ValidationError", s, err, err)
			}
			return
		}
		if string(p) != s || p.String() != s {
			t.Fatalf("ParseProvider(%q) = %q: not a round trip", s, p)
		}
		// Every provider name is also a valid user id (ASCII, no controls).
		if _, err := domain.ParseUserID(s); err != nil {
			t.Fatalf("provider %q is not a valid user id: %v", s, err)
		}
	})
}

// FuzzSecretFormat: for any plaintext and any supported verb/flag
// combination, fmt prints exactly Redacted. (%p and %w, which bypass
// Format, are covered by TestSecretDoesNotLeakThroughBadVerbs.)
func FuzzSecretFormat(f *testing.F) {
	f.Add("gho_abc", uint8(0), uint8(0), uint8(0))
	f.Add("", uint8(3), uint8(10), uint8(2))
	f.Add("\x00\xff", uint8(7), uint8(255), uint8(255))
	const verbs = "vsqxXdbocUeEfFgGt"
	const flags = "+-# 0"
	f.Fuzz(func(t *testing.T, plain string, v, width, prec uint8) {
		s := domain.NewSecret(plain)
		verb := verbs[int(v)%len(verbs)]
		flag := flags[int(width)%len(flags)]
		format := fmt.Sprintf("%%%c%d.%d%c", flag, width%32, prec%32, verb)
		got := fmt.Sprintf(format, s)
		if got != domain.Redacted {
			t.Fatalf("Sprintf(%q) = %q, want %q", format, got, domain.Redacted)
		}
		if s.Reveal() != plain || s.Len() != len(plain) || s.IsZero() != (plain == "") {
			t.Fatalf("Reveal/Len/IsZero inconsistent for %q", plain)
		}
	})
}
