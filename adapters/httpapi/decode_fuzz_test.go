package httpapi

// The request decoder against an independent reading of the same body:
// encoding/json's token stream (which would silently keep the last of two
// names, fold case and replace bad text with U+FFFD) plus the checks it
// lacks. Whatever the body, the decoder either returns exactly the members
// given, with the same bytes, or refuses with a 400 naming a field.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokenstore/tokenstore/domain"
)

// decodeSeeds are the bodies of issue 9 and their neighbours; CI runs them
// as plain tests.
var decodeSeeds = []string{
	`{"access_token":"at"}`,
	`{"access_token":"at","refresh_token":"rt","expires_in":3600,"refresh_token_expires_in":0}`,
	`{"access_token":"at","refresh_token":"rt","access_token_expires_at":"2099-01-02T15:04:05.123456789+02:00","refresh_token_expires_at":"2099-06-01T00:00:00Z"}`,
	`{"access_token":"at","expires_in":0}`,
	`{"access_token":"at","expires_in":-0}`,
	`{"access_token":"at","expires_in":9223372036854775807}`,
	`{"access_token":"at","expires_in":1e3}`,
	`{"access_token":"at","expires_in":60,"access_token_expires_at":"2099-01-01T00:00:00Z"}`,
	`{"access_token":"tök-名前-😀-\u00e9-\ud83d\ude00-\ufffd-` + "\uFFFD" + `"}`,
	`{"access_token":"a\\ud800"}`,
	"{\"access_token\":\"tok-\xff\xfe\"}",
	`{"access_token":"tok-\ud800"}`,
	`{"access_token":"tok-\udc00x"}`,
	`{"access_token":"first","access_token":"second"}`,
	`{"access_token":"x","expires_in":-5,"expires_in":60}`,
	`{"access_token":"x","access_token_expires_at":"2000-01-01T00:00:00Z","access_token_expires_at":"2099-01-01T00:00:00Z"}`,
	`{"ACCESS_TOKEN":"upper"}`,
	`{"Refresh_Token":"r"}`,
	`{"Offline_Token":"c"}`,
	`{"access_token":"a\u0000b"}`,
	"{\"access_token\":\"a\nb\"}",
	`{"access_token":"a\u007f"}`,
	`{"offline_token":"c"}`,
	`{"offline_token":"c","offline_token":"d"}`,
	`{"offline_token":"c-\ud800"}`,
	"{\"offline_token\":\"c-\xc0\xaf\"}",
	`{"offline_token":"c\u001f"}`,
	`{"offline_token":null}`,
	`{"":1}`, `{""`, `{"access_token":"000000000000","000000000000":1}`, `{"access_token":"000000000000","0000000000000"`, `{"access_token":"a","":"b"}`, `{"":1,"":2}`,
	`null`, `[]`, `""`, ``, ` `, `{}`, `{"access_token":"a"} {}`, `{"access_token":"a"`,
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 30, 7, 0, 0, 123456789, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		tokens, err := parseAuthTokens("alice", "github", body, now)
		checkDecoded(t, body, err, []string{"access_token", "refresh_token", "access_token_expires_at", "expires_in", "refresh_token_expires_at", "refresh_token_expires_in"},
			func(m map[string]any) {
				checkSecret(t, "access_token", tokens.AccessToken, m["access_token"], true)
				checkSecret(t, "refresh_token", tokens.RefreshToken, m["refresh_token"], false)
				checkExpiry(t, "access", tokens.AccessExpiry, m["access_token_expires_at"], m["expires_in"], now, false)
				checkExpiry(t, "refresh", tokens.RefreshExpiry, m["refresh_token_expires_at"], m["refresh_token_expires_in"], now, true)
			})
		offline, err := parseOfflineToken("alice", body)
		checkDecoded(t, body, err, []string{"offline_token"}, func(m map[string]any) {
			checkSecret(t, "offline_token", offline.Token, m["offline_token"], true)
		})
	})
}

// checkDecoded checks one decoder's outcome on body: a refusal is a 400
// invalid_request naming a field that repeats no token; an acceptance is of
// a body the independent reading finds strict, with only known members,
// whose values check compares.
func checkDecoded(t *testing.T, body []byte, err error, known []string, check func(map[string]any)) {
	t.Helper()
	if err != nil {
		var p *Problem
		if !errors.As(err, &p) {
			t.Fatalf("%q: error %v (%T) is not a problem", body, err, err)
		}
		if p.Status != 400 || p.Code != CodeInvalidRequest || p.Field == "" || !strings.HasPrefix(p.Detail, p.Field+" ") {
			t.Fatalf("%q: problem %+v does not name a field", body, p)
		}
		values, names := jsonStrings(body)
		for _, v := range values {
			// An unknown member's name is named on purpose, whatever it holds.
			inName := slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, v) })
			if len(v) >= 12 && strings.Contains(p.Detail, v) && !inName {
				t.Fatalf("%q: detail %q repeats a value", body, p.Detail)
			}
		}
		return
	}
	members, why := strictMembers(body)
	if why != "" {
		t.Fatalf("%q accepted, but %s", body, why)
	}
	for name := range members {
		found := false
		for _, k := range known {
			found = found || name == k
		}
		if !found {
			t.Fatalf("%q accepted with the unknown member %q", body, name)
		}
	}
	check(members)
}

// strictMembers reads body with encoding/json's tokenizer as one object of
// scalar members, and says why it is not strict JSON: invalid UTF-8, a
// lone surrogate escape, a repeated name, a nested value or trailing data.
func strictMembers(body []byte) (map[string]any, string) {
	if !utf8.Valid(body) {
		return nil, "it is not valid UTF-8"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, "it is not an object"
	}
	out := map[string]any{}
	for dec.More() {
		start := dec.InputOffset()
		name, err := dec.Token()
		if err != nil {
			return nil, "a name is unreadable: " + err.Error()
		}
		if bad := loneSurrogate(body[start:dec.InputOffset()]); bad {
			return nil, "a name has a lone surrogate"
		}
		start = dec.InputOffset()
		v, err := dec.Token()
		if err != nil {
			return nil, "a value is unreadable: " + err.Error()
		}
		if _, isDelim := v.(json.Delim); isDelim {
			return nil, "a value is not a scalar"
		}
		if loneSurrogate(body[start:dec.InputOffset()]) {
			return nil, "a value has a lone surrogate"
		}
		if _, dup := out[name.(string)]; dup {
			return nil, "the member " + strconv.Quote(name.(string)) + " is repeated"
		}
		out[name.(string)] = v
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, "the object does not end"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "something follows the object"
	}
	return out, ""
}

// loneSurrogate reports whether raw JSON text holds a \u escape of a
// surrogate that is not half of a pair (encoding/json turns it into U+FFFD).
func loneSurrogate(raw []byte) bool {
	s := string(raw)
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++
		if i >= len(s) || s[i] != 'u' || i+4 >= len(s) {
			continue
		}
		r, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
		if err != nil {
			continue
		}
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return true
			}
			lo, err := strconv.ParseUint(s[i+3:i+7], 16, 32)
			if err != nil || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

// jsonStrings lists the string values and the member names encoding/json
// finds in body.
func jsonStrings(body []byte) (values, names []string) {
	var inObject []bool // per open container: is it an object?
	expectName := false
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return values, names
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			inObject = append(inObject, tok == json.Delim('{'))
			expectName = tok == json.Delim('{')
			continue
		case json.Delim('}'), json.Delim(']'):
			inObject = inObject[:len(inObject)-1]
		default:
			s, isString := tok.(string)
			if expectName {
				names = append(names, s)
				expectName = false
				continue
			}
			if isString {
				values = append(values, s)
			}
		}
		expectName = len(inObject) > 0 && inObject[len(inObject)-1]
	}
}

// checkSecret: the decoded secret is the member's string, byte for byte,
// and holds no control character; absent, null or "" is no secret.
func checkSecret(t *testing.T, name string, got domain.Secret, given any, required bool) {
	t.Helper()
	s, _ := given.(string)
	if given != nil && !isString(given) {
		t.Fatalf("%s accepted from a %T", name, given)
	}
	if required && s == "" {
		t.Fatalf("%s accepted although empty or absent", name)
	}
	if got.Reveal() != s {
		t.Fatalf("%s decoded as %q, given %q", name, got.Reveal(), s)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		t.Fatalf("%s %q accepted with a control character", name, s)
	}
}

func isString(v any) bool { _, ok := v.(string); return ok }

// checkExpiry: one form at most; an absolute time as given (to the
// microsecond), seconds counted from now (at least 1 for an access token,
// 0 = never for a refresh token), nothing = never.
func checkExpiry(t *testing.T, what string, got domain.Expiry, at, in any, now time.Time, zeroIsNever bool) {
	t.Helper()
	now = now.Truncate(time.Microsecond)
	var want domain.Expiry
	switch {
	case at != nil && in != nil:
		t.Fatalf("%s expiry accepted in two forms", what)
	case at != nil:
		ts, err := time.Parse(time.RFC3339Nano, at.(string))
		if err != nil {
			t.Fatalf("%s expiry %q accepted: %v", what, at, err)
		}
		want = domain.At(ts.Truncate(time.Microsecond))
	case in != nil:
		n, err := strconv.ParseInt(string(in.(json.Number)), 10, 64)
		switch {
		case err != nil:
			t.Fatalf("%s expiry %v accepted: %v", what, in, err)
		case n < 0, n == 0 && !zeroIsNever:
			t.Fatalf("%s expiry %d seconds accepted", what, n)
		case n == 0:
			want = domain.Never()
		default:
			want = domain.AfterSeconds(now, n)
		}
	default:
		want = domain.Never()
	}
	if !got.Equal(want) {
		t.Fatalf("%s expiry %v, want %v", what, got, want)
	}
}
