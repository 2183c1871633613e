package oauth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tokenstore/tokenstore/domain"
)

// scrubber removes the secrets of one exchange with a token endpoint from
// text that is about to reach an error message or a log line.
//
// Providers echo what they were sent: an error_description may hold the
// request body (the refresh token form-encoded), a JSON dump of it
// (JSON-escaped, \u-escaped by Python's ensure_ascii), or the Authorization
// header (the client secret form-encoded, then base64, RFC 6749 §2.3.1).
// Network errors may quote the server's bytes. So a secret is looked for in
// every encoding tokenstore produces or receives, and in mixtures of them:
// the text is searched as it is and again after undoing %XX escapes (either
// hex case, '+' read as a space or not), JSON escapes (\", \/, \\, \n...,
// \uXXXX and surrogate pairs), and both in either order; each secret (raw,
// form-encoded and JSON-escaped) is also looked for in base64 and base64url
// at each of the three alignments it can take inside a longer base64 string
// (so padded, raw, and embedded in a Basic credential or a JWT are all
// found). Providers also cut what they echo, so any part of a secret of
// partWindow bytes or more is removed wherever it is, and a text that ends
// with a secret's first minPartial bytes or more, or starts with its last
// ones, loses them too.
//
// It is written here rather than taken from a library because it is the
// product's own value: no general-purpose redaction library knows which
// strings are the secrets of this exchange or the encodings OAuth puts them
// in, and pattern-based scrubbers (entropy, "looks like a token") both miss
// echoed secrets and mangle ordinary text.
type scrubber struct {
	needles []needle
	// windows holds every partWindow-byte part of every needle, true for a
	// part of a base64 needle; built on first use, as most exchanges
	// never need it.
	windows map[string]bool
	// short is set when a secret shorter than minScrubLen is in flight: such a
	// secret cannot be replaced without mangling ordinary words, so provider
	// text is withheld instead (see describe).
	short bool
}

// needle is one string to remove; base64 needles also take the one or two
// characters around them that mix in a secret's first and last bits.
type needle struct {
	s      []byte
	base64 bool
	// fail is s's KMP prefix function, rev and revFail those of s reversed:
	// the cut-echo checks run in time linear in the needle's length.
	fail, revFail []int
	rev           []byte
}

func newNeedle(s string, base64 bool) needle {
	n := needle{s: []byte(s), base64: base64, rev: []byte(s)}
	slices.Reverse(n.rev)
	n.fail, n.revFail = prefixFunction(n.s), prefixFunction(n.rev)
	return n
}

// prefixFunction returns, for each i, the length of the longest proper
// prefix of p[:i+1] that is also its suffix (Knuth-Morris-Pratt).
func prefixFunction(p []byte) []int {
	f := make([]int, len(p))
	for i, k := 1, 0; i < len(p); i++ {
		for k > 0 && p[i] != p[k] {
			k = f[k-1]
		}
		if p[i] == p[k] {
			k++
		}
		f[i] = k
	}
	return f
}

// overlap returns the length of the longest suffix of text that is a
// proper prefix of p (fail is p's prefix function).
func overlap(text, p []byte, fail []int) int {
	if len(text) >= len(p) {
		text = text[len(text)-len(p)+1:]
	}
	k := 0
	for _, c := range text {
		for k > 0 && c != p[k] {
			k = fail[k-1]
		}
		if c == p[k] {
			k++
		}
		if k == len(p) {
			k = fail[k-1]
		}
	}
	return k
}

const (
	// minScrubLen is the shortest secret looked for; shorter ones make the
	// scrubber weak.
	minScrubLen = 8
	// minPartial is the shortest part of a secret removed at the start or
	// end of a text.
	minPartial = 6
	// partWindow is the shortest part of a secret removed anywhere.
	partWindow = 10
	// maxScanLen bounds the provider text scrubbed (the rest is cut first).
	maxScanLen = 4096
	// maxPasses bounds the passes: removing a secret can join its
	// neighbours into another (text "ab" + secret + "cd" where "abcd" is a
	// secret too).
	maxPasses = 4
)

// newScrubber returns a scrubber for the given secrets; empty ones are
// ignored.
func newScrubber(secrets ...string) *scrubber {
	sc := &scrubber{}
	seen := map[string]bool{}
	add := func(s string, b64 bool) {
		if len(s) >= minScrubLen && !seen[s] {
			seen[s] = true
			sc.needles = append(sc.needles, newNeedle(s, b64))
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		if len(s) < minScrubLen {
			sc.short = true
			continue
		}
		// The encoded forms are needles too, for parts cut in the middle of
		// an escape, which no decoding can undo.
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s), jsonEscape(s)} {
			add(form, false)
		}
		for _, form := range []string{s, url.QueryEscape(s), jsonEscape(s)} {
			for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				for _, m := range base64Middles(enc, []byte(form)) {
					add(m, true)
				}
			}
		}
	}
	return sc
}

// basicCredential is the value of the Authorization header for client_id
// and secret (RFC 6749 §2.3.1: each part form-encoded, then base64).
func basicCredential(clientID, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID) + ":" + url.QueryEscape(secret)))
}

// jsonEscape is s as Go's encoding/json writes it inside a string.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b[1 : len(b)-1])
}

// base64Middles returns, for each of the three byte offsets b can start at
// inside a longer input, the characters of its encoding that depend on b's
// bytes alone.
func base64Middles(enc *base64.Encoding, b []byte) []string {
	var out []string
	for k := range 3 {
		e := enc.EncodeToString(append(make([]byte, k), b...))
		first := (8*k + 5) / 6       // the first character whose 6 bits all come from b
		last := 8 * (k + len(b)) / 6 // one past the last one
		if last-first >= minScrubLen {
			out = append(out, e[first:last])
		}
	}
	return out
}

// weak reports whether a secret too short to scrub is in flight.
func (sc *scrubber) weak() bool { return sc.short }

// cleanOrWithhold is clean, with the whole text withheld when it cannot be
// cleared.
func (sc *scrubber) cleanOrWithhold(text string) string {
	if out, ok := sc.clean(text); ok {
		return out
	}
	return domain.Redacted
}

// clean replaces every secret in text, in every encoding, by
// domain.Redacted. ok is false when text still held one after maxPasses.
func (sc *scrubber) clean(text string) (string, bool) {
	for range maxPasses {
		out, changed := sc.pass(text)
		if !changed {
			return out, true
		}
		text = out
	}
	return "", false
}

// span is a half-open range of bytes of the text being scrubbed.
type span struct{ lo, hi int }

// pass removes each secret found once.
func (sc *scrubber) pass(text string) (string, bool) {
	if len(sc.needles) == 0 || text == "" {
		return text, false
	}
	if sc.windows == nil {
		sc.windows = map[string]bool{}
		for _, n := range sc.needles {
			for i := 0; i+partWindow <= len(n.s); i++ {
				w := string(n.s[i : i+partWindow])
				sc.windows[w] = sc.windows[w] || n.base64
			}
		}
	}
	var hits []span
	for _, v := range decodings(text) {
		for _, n := range sc.needles {
			hits = v.find(n, text, hits)
		}
		for i := 0; i+partWindow <= len(v.b); i++ {
			if b64, ok := sc.windows[string(v.b[i:i+partWindow])]; ok {
				hits = append(hits, v.spanOf(i, i+partWindow, b64, text))
			}
		}
	}
	if len(hits) == 0 {
		return text, false
	}
	slices.SortFunc(hits, func(a, b span) int { return a.lo - b.lo })
	var b strings.Builder
	at := 0
	for i := 0; i < len(hits); {
		cur := hits[i]
		for i++; i < len(hits) && hits[i].lo <= cur.hi; i++ {
			cur.hi = max(cur.hi, hits[i].hi)
		}
		b.WriteString(text[at:max(at, cur.lo)])
		b.WriteString(domain.Redacted)
		at = max(at, cur.hi)
	}
	b.WriteString(text[at:])
	return b.String(), true
}

// decoded is the text after undoing some encodings, with, for each of its
// bytes, the range of the original text it came from.
type decoded struct {
	b      []byte
	lo, hi []int
}

// decodings returns the text as it is and after each way of undoing the
// encodings a secret may be echoed in.
func decodings(text string) []decoded {
	raw := decoded{b: []byte(text), lo: make([]int, len(text)), hi: make([]int, len(text))}
	for i := range len(text) { // every byte, not every rune
		raw.lo[i], raw.hi[i] = i, i+1
	}
	form := raw.unpercent(true)
	pct := raw.unpercent(false)
	js := raw.unjson()
	return []decoded{raw, form, pct, js, js.unpercent(true), js.unpercent(false), form.unjson(), pct.unjson()}
}

// emit appends byte c, which came from d's bytes i to j-1.
func (d decoded) emit(out *decoded, c byte, i, j int) {
	out.b = append(out.b, c)
	out.lo = append(out.lo, d.lo[i])
	out.hi = append(out.hi, d.hi[j-1])
}

// unpercent undoes %XX (either hex case), and '+' for a space when plus.
func (d decoded) unpercent(plus bool) decoded {
	var out decoded
	for i := 0; i < len(d.b); {
		switch c := d.b[i]; {
		case c == '%' && i+2 < len(d.b) && isHex(d.b[i+1]) && isHex(d.b[i+2]):
			d.emit(&out, unhex(d.b[i+1])<<4|unhex(d.b[i+2]), i, i+3)
			i += 3
		case c == '%' && (i+1 == len(d.b) || i+2 == len(d.b) && isHex(d.b[i+1])):
			i = len(d.b) // an escape cut by the end of the text: drop it
		case c == '+' && plus:
			d.emit(&out, ' ', i, i+1)
			i++
		default:
			d.emit(&out, c, i, i+1)
			i++
		}
	}
	return out
}

// unjson undoes JSON string escapes (RFC 8259 §7); a malformed escape or a
// lone surrogate stays as it is.
func (d decoded) unjson() decoded {
	var out decoded
	simple := map[byte]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}
	for i := 0; i < len(d.b); {
		if d.b[i] == '\\' && i+1 < len(d.b) {
			if c, ok := simple[d.b[i+1]]; ok {
				d.emit(&out, c, i, i+2)
				i += 2
				continue
			}
			if rest := d.b[i+1:]; rest[0] == 'u' && len(rest) < 11 && isCutUEscape(rest) {
				break // an escape cut by the end of the text: drop it
			}
			if r, n := d.uescape(i); n > 0 {
				var buf [utf8.UTFMax]byte
				for _, c := range buf[:utf8.EncodeRune(buf[:], r)] {
					d.emit(&out, c, i, i+n)
				}
				i += n
				continue
			}
		}
		d.emit(&out, d.b[i], i, i+1)
		i++
	}
	return out
}

// isCutUEscape reports whether s, the text after a backslash, is the
// beginning of \uXXXX or of a surrogate pair of them.
func isCutUEscape(s []byte) bool {
	const pattern = "uhhhh\\uhhhh"
	if len(s) >= len(pattern) {
		return false
	}
	for i, c := range s {
		if p := pattern[i]; p == 'h' && !isHex(c) || p != 'h' && c != p {
			return false
		}
	}
	return len(s) != 5 // a whole escape is not cut
}

// uescape reads \uXXXX (or a surrogate pair of them) at i; n is 0 when
// there is none.
func (d decoded) uescape(i int) (rune, int) {
	hex4 := func(j int) (rune, bool) {
		if j+6 > len(d.b) || d.b[j] != '\\' || d.b[j+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range d.b[j+2 : j+6] {
			if !isHex(c) {
				return 0, false
			}
			r = r<<4 | rune(unhex(c))
		}
		return r, true
	}
	r, ok := hex4(i)
	switch {
	case !ok:
		return 0, 0
	case r >= 0xd800 && r < 0xdc00:
		if lo, ok := hex4(i + 6); ok && lo >= 0xdc00 && lo < 0xe000 {
			return (r-0xd800)<<10 | (lo - 0xdc00) + 0x10000, 12
		}
		return 0, 0
	case r >= 0xdc00 && r < 0xe000:
		return 0, 0
	}
	return r, 6
}

// spanOf returns the range of text that d.b[i:j], (part of) a needle, came
// from.
func (d decoded) spanOf(i, j int, base64 bool, text string) span {
	s := span{d.lo[i], d.hi[j-1]}
	if base64 {
		s = widenBase64(text, s)
	}
	return s
}

// find appends to hits the ranges of text where d holds n whole (needles
// shorter than partWindow need this; pass finds the parts of longer ones)
// or, at d's ends, in part.
func (d decoded) find(n needle, text string, hits []span) []span {
	add := func(i, j int) { hits = append(hits, d.spanOf(i, j, n.base64, text)) }
	for off := 0; len(n.s) < partWindow; {
		k := bytes.Index(d.b[off:], n.s)
		if k < 0 {
			break
		}
		add(off+k, off+k+len(n.s))
		off += k + 1
	}
	// A cut echo: the text ends with the secret's beginning or starts with
	// its end.
	if k := overlap(d.b, n.s, n.fail); k >= minPartial {
		add(len(d.b)-k, len(d.b))
	}
	head := slices.Clone(d.b[:min(len(d.b), len(n.s))])
	slices.Reverse(head)
	if k := overlap(head, n.rev, n.revFail); k >= minPartial {
		add(0, k)
	}
	return hits
}

// widenBase64 grows s over up to two base64 characters on each side (they
// carry a secret's first and last bits mixed with its neighbours') and the
// padding after it.
func widenBase64(text string, s span) span {
	for n := 0; n < 2 && s.lo > 0 && isBase64(text[s.lo-1]); n++ {
		s.lo--
	}
	for n := 0; n < 2 && s.hi < len(text) && isBase64(text[s.hi]); n++ {
		s.hi++
	}
	for s.hi < len(text) && text[s.hi] == '=' {
		s.hi++
	}
	return s
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("+/-_", c) >= 0
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
