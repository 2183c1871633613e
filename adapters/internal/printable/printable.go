// Package printable makes text from the other side of a connection (a
// provider's error description, a receiver's bytes quoted in a transport
// error) safe to put in errors and logs.
package printable

import (
	"strings"
	"unicode"
)

// Clip returns s without invalid UTF-8, control characters (which could
// forge log lines or hide text on a terminal), format characters
// (bidirectional overrides, zero-width characters) and line or paragraph
// separators, cut to at most n bytes on a character boundary.
func Clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}
