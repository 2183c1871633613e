package oauth

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

// TestScrubberFindsEveryEncoding is the scrubber's specification: each row
// is a way a secret reaches provider text, and the secret must be gone while
// the words around it stay.
func TestScrubberFindsEveryEncoding(t *testing.T) {
	t.Parallel()
	const s = `tok/+=%"é'\ 𝄞-Zz9`
	q := url.QueryEscape(s)
	tests := map[string]string{
		"raw":                       s,
		"form-encoded":              q,
		"form-encoded, lower hex":   strings.ToLower(q[:9]) + q[9:],
		"path-escaped (%20)":        url.PathEscape(s),
		"every byte escaped":        escapeAll(s),
		"JSON (Go)":                 jsonEscape(s),
		"JSON (ensure_ascii, \\/)":  `tok\/+=%\"\u00e9'\\ \ud834\udd1e-Zz9`,
		"JSON then form-encoded":    url.QueryEscape(jsonEscape(s)),
		"form-encoded then JSON":    jsonEscape(q),
		"base64":                    base64.StdEncoding.EncodeToString([]byte(s)),
		"base64url raw":             base64.RawURLEncoding.EncodeToString([]byte(s)),
		"base64 at offset 1":        base64.StdEncoding.EncodeToString([]byte("x" + s + "y")),
		"base64 at offset 2":        base64.StdEncoding.EncodeToString([]byte("xy" + s)),
		"base64 of form-encoded":    base64.StdEncoding.EncodeToString([]byte("refresh_token=" + q)),
		"basic credential":          "Basic " + basicCredential("id", s),
		"base64, form-encoded":      url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(s))),
		"cut at the end":            q[:20],
		"cut at the end mid-escape": q[:strings.Index(q, "%C3")+2],
	}
	for name, enc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, ok := newScrubber(s).clean("before " + enc)
			if !ok || !strings.HasPrefix(got, "before ") || strings.Contains(got, enc) || !strings.Contains(got, "[REDACTED]") {
				t.Errorf("clean(%q) = %q, %v", enc, got, ok)
			}
			if strings.Contains(name, "offset") || strings.Contains(name, "of form") || strings.Contains(name, "basic") {
				return // enc holds more than the secret: only its part must go
			}
			for i := 0; i+partWindow <= len(enc); i++ {
				if strings.Contains(got, enc[i:i+partWindow]) {
					t.Errorf("clean(%q) = %q keeps part %q", enc, got, enc[i:i+partWindow])
				}
			}
		})
	}
	// A secret cut at its start is found where the text starts or anywhere
	// it is long enough.
	for _, text := range []string{s[len(s)-8:] + " is unknown", "token ..." + s[3:] + " is unknown"} {
		if got, _ := newScrubber(s).clean(text); !strings.HasSuffix(got, " is unknown") || strings.Contains(got, "Zz9") {
			t.Errorf("clean(%q) = %q", text, got)
		}
	}
}

func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString("%" + strings.ToUpper(hex2(s[i])))
	}
	return b.String()
}

func hex2(c byte) string { return string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15]) }

func TestScrubberRepeatsUntilClean(t *testing.T) {
	t.Parallel()
	// Removing the inner secret joins "abcd" + "efgh": a secret too.
	sc := newScrubber("abcdefgh", "XYZ12345")
	got, ok := sc.clean("abcdXYZ12345efgh and more")
	if !ok || strings.Contains(got, "abcdefgh") || !strings.HasSuffix(got, " and more") {
		t.Errorf("clean = %q, %v", got, ok)
	}
	// A secret that the marker itself holds cannot be cleared: withheld.
	if got := newScrubber("REDACTED").cleanOrWithhold("a REDACTED b"); got != "[REDACTED]" {
		t.Errorf("cleanOrWithhold = %q", got)
	}
}

func TestScrubberLeavesOrdinaryText(t *testing.T) {
	t.Parallel()
	const text = "Token is not active; see https://example.com/docs?a=b+c%20d \\u00e9 eyJ"
	sc := newScrubber("rt-0123456789abcdef", "cs-fedcba9876543210")
	if got, ok := sc.clean(text); !ok || got != text {
		t.Errorf("clean(%q) = %q, %v", text, got, ok)
	}
	if !newScrubber("short").weak() || newScrubber("long enough").weak() || newScrubber("").weak() {
		t.Error("weak() wrong")
	}
}
