package testlog

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Encodings returns s in every encoding tokenstore produces or receives:
// raw; form- and path-encoded, with upper- and lower-case hex and %20 for a
// space; JSON-escaped as Go writes it and as Python's json.dumps does
// (every non-ASCII character as \uXXXX, "/" as "\/"); base64 and base64url,
// padded and raw, of s and of its form encoding (what an HTTP Basic
// credential holds, RFC 6749 §2.3.1). Tests search logs and error strings
// for each; it is computed independently of the product's scrubber.
func Encodings(s string) []string {
	lowerHex := func(e string) string { return hexEscape.ReplaceAllStringFunc(e, strings.ToLower) }
	q, p := url.QueryEscape(s), url.PathEscape(s)
	out := []string{s, q, lowerHex(q), p, lowerHex(p), strings.ReplaceAll(q, "+", "%20")}
	if utf8.ValidString(s) {
		j, _ := json.Marshal(s)
		out = append(out, string(j[1:len(j)-1]), PythonJSON(s))
	}
	for _, form := range []string{s, q} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			out = append(out, enc.EncodeToString([]byte(form)))
		}
	}
	return out
}

var hexEscape = regexp.MustCompile(`%[0-9A-F]{2}`)

// PythonJSON is s as Python's json.dumps writes it inside a string
// (ensure_ascii), with "/" escaped as PHP does.
func PythonJSON(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '/':
			b.WriteString(`\` + string(r))
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// BasicCredential is the Authorization credential for id and secret (RFC
// 6749 §2.3.1: each part form-encoded, then base64).
func BasicCredential(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}

// FindSecret returns the first secret found in text in any of its
// Encodings, and that encoding. text is also read back from one and two
// levels of quoting (an error quoted in a message, then in a JSON log line,
// doubles an encoded secret's backslashes each time). Empty secrets are
// skipped.
func FindSecret(text string, secrets ...string) (secret, encoding string) {
	unquote := strings.NewReplacer(`\\`, `\`, `\"`, `"`)
	once := unquote.Replace(text)
	views := []string{text, once, unquote.Replace(once)}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, e := range Encodings(s) {
			for _, v := range views {
				if strings.Contains(v, e) {
					return s, e
				}
			}
		}
	}
	return "", ""
}
