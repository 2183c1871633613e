package oauth

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/tokenstore/tokenstore/adapters/internal/printable"
	"github.com/tokenstore/tokenstore/domain"
)

// answer is a token endpoint's HTTP response, parsed. It holds token
// material as plain strings only until interpret wraps it in Secrets.
type answer struct {
	status int
	header http.Header // for Retry-After and rate limits; never printed
	fields
}

// fields are the parts of a token response (RFC 6749 §5.1, §5.2) this
// package uses, plus the refresh-token lifetimes GitHub and Keycloak add.
type fields struct {
	accessToken      string
	refreshToken     string
	expiresIn        lifetime
	refreshExpiresIn lifetime // refresh_token_expires_in (GitHub) or refresh_expires_in (Keycloak)
	// isError is set when the answer has an "error" member: it is an error
	// answer even if the code cannot be read (code is then "").
	isError     bool
	code        string // "error"
	description string // "error_description"
	// unreadable says, in words of this package (never the provider's),
	// why the tokens cannot be taken exactly as sent: a token member that
	// appears twice, is not a string, is not valid UTF-8 or holds control
	// characters, or a JSON body that does not parse. "" when they can.
	unreadable string
	// tokens is every value of every member whose name ends in "token",
	// readable or not, so that error messages can be scrubbed of them.
	tokens []string
}

// lifetime is an "expires_in"-style field as sent, which may be absent, a
// number, a numeric string (PayPal and others), or garbage.
type lifetime struct {
	seconds int64
	present bool
	valid   bool
}

// accessExpiry reads expires_in. Absent or 0 means the provider did not
// say (RFC 6749 §5.1 only recommends expires_in; 0 is how x/oauth2 and
// Keycloak read it): the result is domain.Never, "not given", and the
// service decides what that means (see app's sealRefreshed). A negative or
// unreadable value comes from a broken provider; the token is then treated
// as expiring now, so the service refreshes it on next use instead of
// serving a token whose lifetime nobody knows until it dies.
func (l lifetime) accessExpiry(now time.Time) domain.Expiry {
	switch {
	case !l.present, l.valid && l.seconds == 0:
		return domain.Never()
	case !l.valid || l.seconds < 0:
		return domain.At(now)
	default:
		return domain.AfterSeconds(now, l.seconds)
	}
}

// refreshExpiry reads a refresh-token lifetime. Absent or 0 means none
// (Keycloak sends refresh_expires_in 0 for offline tokens; a PUT reads 0 the
// same way). An unreadable value also counts as none: guessing "expired"
// would make the user reconnect over a parsing glitch, while the provider
// stays the authority and answers invalid_grant when the token really dies.
func (l lifetime) refreshExpiry(now time.Time) domain.Expiry {
	if !l.present || !l.valid || l.seconds <= 0 {
		return domain.Never()
	}
	return domain.AfterSeconds(now, l.seconds)
}

// member is one name's value in a token response, JSON or form-encoded.
type member struct {
	text  string // the string's content, a number's literal; for an unreadable string, a best effort
	kind  jsontext.Kind
	exact bool // text is exactly what was sent (valid UTF-8, no broken escape)
}

// members maps each name to its values in order; a name sent twice has two.
type members map[string][]member

// parse reads a token response. The body decides, never the Content-Type
// label: providers and proxies send JSON as text/plain, text/html or with no
// label at all, and GitHub answers form-encoded unless it honours Accept. A
// body whose first non-blank character is "{" is JSON; anything else is
// read as form-encoded (an HTML page or plain text then simply has none of
// the members). parse never fails: whatever cannot be read is left empty or
// noted in fields.unreadable, and interpret decides from what is there.
// Side members (expires_in, token_type, scope...) are read leniently: the
// provider may already have rotated the refresh token, and discarding its
// answer over a malformed side member would lose the grant. Token members
// are read strictly: a token is stored exactly as sent or not at all.
func parse(body []byte) fields {
	body = bytes.TrimPrefix(body, []byte("\uFEFF")) // a UTF-8 byte order mark
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		m, ok := jsonMembers(t)
		if !ok {
			return fields{unreadable: "the body is not valid JSON"}
		}
		return m.fields()
	}
	return formMembers(body).fields()
}

// jsonMembers reads a JSON object's members. It accepts duplicate names and
// invalid UTF-8 so that one bad side member does not hide the others;
// fields() then refuses them where they matter.
func jsonMembers(body []byte) (members, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(body),
		jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	m := members{}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, false
		}
		key := name.String()
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, false
		}
		v := member{kind: raw.Kind(), text: string(raw), exact: true}
		if v.kind == '"' {
			// Invalid UTF-8 is dropped rather than turned into U+FFFD, so
			// that what is shown of a description is what was sent.
			s, err := jsontext.AppendUnquote(nil, strings.ToValidUTF8(string(raw), ""))
			v.text, v.exact = string(s), err == nil && raw.IsValid()
		}
		m[key] = append(m[key], v)
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '}' {
		return nil, false
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, false // anything but blanks after the object
	}
	return m, true
}

// formMembers reads application/x-www-form-urlencoded pairs. Unlike
// url.ParseQuery it keeps a pair whose value cannot be decoded (marked not
// exact) instead of dropping it, so a broken access_token is told from an
// absent one, and it keeps every value of a repeated name.
func formMembers(body []byte) members {
	m := members{}
	for pair := range strings.SplitSeq(string(body), "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			continue // no name this package reads needs escaping
		}
		text, err := url.QueryUnescape(v)
		if err != nil {
			text = v
		}
		m[name] = append(m[name], member{kind: '"', text: text, exact: err == nil && utf8.ValidString(text)})
	}
	return m
}

// fields applies the reading rules shared by JSON and form answers.
func (m members) fields() fields {
	var f fields
	for name, vs := range m {
		if strings.HasSuffix(name, "token") { // access_token, refresh_token, id_token...
			for _, v := range vs {
				if v.kind == '"' && v.text != "" {
					f.tokens = append(f.tokens, v.text)
				}
			}
		}
	}
	var problems []string
	f.accessToken = m.token("access_token", &problems)
	f.refreshToken = m.token("refresh_token", &problems)
	f.unreadable = strings.Join(problems, "; ")
	f.expiresIn = m.lifetime("expires_in")
	if f.refreshExpiresIn = m.lifetime("refresh_token_expires_in"); !f.refreshExpiresIn.present {
		f.refreshExpiresIn = m.lifetime("refresh_expires_in")
	}
	if errs := m.values("error"); len(errs) > 0 {
		f.isError = true
		if len(errs) == 1 && errs[0].kind == '"' && errs[0].exact {
			f.code = errs[0].text
		}
	}
	if d := m.values("error_description"); len(d) == 1 && d[0].kind == '"' {
		f.description = d[0].text // sanitised and scrubbed before it is shown
	}
	return f
}

// values returns name's values, leaving out JSON nulls and empty strings,
// which mean "absent" in every token response seen in the wild.
func (m members) values(name string) []member {
	var out []member
	for _, v := range m[name] {
		if v.kind != 'n' && !(v.kind == '"' && v.text == "") {
			out = append(out, v)
		}
	}
	return out
}

// token reads a token member strictly (RFC 6749 §A.12, §A.17): one string,
// exactly as sent, without control characters. Anything else is a problem,
// appended to problems, and the token is "".
func (m members) token(name string, problems *[]string) string {
	vs := m.values(name)
	switch {
	case len(vs) == 0:
		return ""
	case len(vs) > 1:
		*problems = append(*problems, name+" appears more than once")
	case vs[0].kind != '"':
		*problems = append(*problems, name+" is not a string")
	case !vs[0].exact:
		*problems = append(*problems, name+" is not valid UTF-8 or not properly escaped")
	case strings.ContainsFunc(vs[0].text, unicode.IsControl):
		*problems = append(*problems, name+" holds control characters")
	default:
		return vs[0].text
	}
	return ""
}

// lifetime reads an expires_in-style member leniently: a number or a
// numeric string; anything else, including a name sent twice, is present
// but unreadable.
func (m members) lifetime(name string) lifetime {
	vs := m.values(name)
	switch {
	case len(vs) == 0:
		return lifetime{}
	case len(vs) > 1:
		return lifetime{present: true}
	case vs[0].kind == '0':
		return parseLifetime(vs[0].text)
	case vs[0].kind == '"':
		return parseLifetime(vs[0].text)
	default:
		return lifetime{present: true}
	}
}

// parseLifetime reads a number of seconds; fractions are dropped, and an
// empty string counts as absent.
func parseLifetime(s string) lifetime {
	s = strings.TrimSpace(s)
	if s == "" {
		return lifetime{}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return lifetime{present: true}
	}
	// Clamp before converting: a float beyond int64 has no defined
	// conversion. domain.AfterSeconds saturates anything this large anyway.
	v = max(min(v, 1<<62), -1<<62)
	return lifetime{seconds: int64(v), present: true, valid: true}
}

// clientRefused reports whether the server refused the client's credentials
// (RFC 6749 §5.2 invalid_client, or a 401 not about the grant).
func (a answer) clientRefused() bool {
	return a.code == "invalid_client" || (a.status == 401 && classify(a.status, a.code) != domain.ErrGrantRevoked)
}

const (
	maxCodeLen        = 64
	maxDescriptionLen = 200
)

// describe renders the answer for an error message: provider, status, OAuth
// error code and description. The body itself is never included, and
// neither is anything else the provider chose to send (headers, a
// redirect's Location). The code and the description are provider text:
// they are sanitised (no control characters, valid UTF-8), cut to a length,
// and scrubbed of every secret in flight (see scrubber). With a secret too
// short to scrub in flight, the description is left out and the code shown
// only when it is a registered one.
func (a answer) describe(provider domain.Provider, sc *scrubber) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d", provider, a.status)
	if a.status >= 300 && a.status <= 399 {
		b.WriteString(" (redirects are not followed: check the configured URL)")
	}
	switch code := printable.Clip(a.code, maxCodeLen); {
	case code != "" && (registeredCodes[code] || !sc.weak()):
		code = sc.cleanOrWithhold(code)
		if isCodeText(code) {
			fmt.Fprintf(&b, ", error %s", code)
		} else {
			fmt.Fprintf(&b, ", error %q", code)
		}
	case code != "":
		b.WriteString(", error (an unregistered code, withheld)")
	case a.isError:
		b.WriteString(", error (unreadable)")
	}
	if a.description != "" && !sc.weak() {
		// Scrub before cutting: cutting first could leave half a secret.
		// printable.Clip's own limit only bounds the scrubber's work; what is
		// cut there is far beyond what is kept.
		desc := truncate(sc.cleanOrWithhold(printable.Clip(a.description, maxScanLen)), maxDescriptionLen)
		fmt.Fprintf(&b, ": %q", desc)
	}
	// Quoting and the text around the provider's words could complete a
	// secret only a scrubbed part began: scrub the whole message once more.
	out, ok := sc.clean(b.String())
	if !ok {
		return fmt.Sprintf("%s: HTTP %d (the provider's words are withheld: they could not be cleared of secrets)", provider, a.status)
	}
	return out
}

// registeredCodes are the error codes of RFC 6749 §4.1.2.1 and §5.2, RFC
// 6750 §3.1, RFC 8628 §3.5, OpenID Connect Core §3.1.2.6, and GitHub's own:
// words, never a token.
var registeredCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "access_denied": true,
	"unsupported_response_type": true, "server_error": true, "temporarily_unavailable": true,
	"invalid_token": true, "insufficient_scope": true, "slow_down": true, "expired_token": true,
	"authorization_pending": true, "interaction_required": true, "login_required": true,
	"account_selection_required": true, "consent_required": true,
	"bad_refresh_token": true, "incorrect_client_credentials": true, "bad_verification_code": true,
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// isCodeText reports whether s uses only the characters RFC 6749 §5.2
// allows in an error code (%x20-21 / %x23-5B / %x5D-7E), minus the space.
func isCodeText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}
