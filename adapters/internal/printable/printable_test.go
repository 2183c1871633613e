package printable

import (
	"strings"
	"testing"
)

func TestClip(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"a\nb\r\tc", "abc"},
		{"a\x00b\x1b[31m", "ab[31m"},
		{"bidi \u202eevil\u200b", "bidi evil"},
		{"line\u2028sep", "linesep"},
		{"bad \xff\xfe utf8", "bad  utf8"},
		{"ünïcode stays", "ünïcode stays"},
	}
	for _, tt := range tests {
		if got := Clip(tt.in, 100); got != tt.want {
			t.Errorf("Clip(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := Clip(strings.Repeat("é", 10), 5); got != "éé" {
		t.Errorf("Clip cut = %q", got)
	}
}
