package oauth

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseLifetime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want lifetime
	}{
		{"", lifetime{}},
		{"  ", lifetime{}},
		{"3600", lifetime{seconds: 3600, present: true, valid: true}},
		{" 60 ", lifetime{seconds: 60, present: true, valid: true}},
		{"59.99", lifetime{seconds: 59, present: true, valid: true}},
		{"-1", lifetime{seconds: -1, present: true, valid: true}},
		{"1e400", lifetime{present: true}}, // overflows float64: unreadable
		{"NaN", lifetime{present: true}},
		{"Inf", lifetime{present: true}},
		{"soon", lifetime{present: true}},
		{"9e18", lifetime{seconds: 1 << 62, present: true, valid: true}},
	}
	for _, tt := range tests {
		if got := parseLifetime(tt.in); got != tt.want {
			t.Errorf("parseLifetime(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	t.Parallel()
	for n := 0; n < 12; n++ {
		got := truncate(strings.Repeat("é", 10), n)
		if !utf8.ValidString(got) {
			t.Errorf("truncate(_, %d) = %q: invalid UTF-8", n, got)
		}
		if body := strings.TrimSuffix(got, "…"); len(body) > n {
			t.Errorf("truncate(_, %d) kept %d bytes", n, len(body))
		}
	}
}
