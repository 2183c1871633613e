package oauth

import (
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// answer is a token endpoint's HTTP response, parsed. It holds token
// material as plain strings only until interpret wraps it in Secrets.
type answer struct {
	status int
	fields
}

// fields are the parts of a token response (RFC 6749 §5.1, §5.2) this
// package uses, plus the refresh-token lifetimes GitHub and Keycloak add.
type fields struct {
	accessToken      string
	refreshToken     string
	expiresIn        lifetime
	refreshExpiresIn lifetime // refresh_token_expires_in (GitHub) or refresh_expires_in (Keycloak)
	code             string   // "error"
	description      string   // "error_description"
}

// lifetime is an "expires_in"-style field as sent, which may be absent, a
// number, a numeric string (PayPal and others), or garbage.
type lifetime struct {
	seconds int64
	present bool
	valid   bool
}

// accessExpiry reads expires_in. Absent or 0 means no expiry was announced
// (0 is how x/oauth2 and Keycloak read it), so the token is Never
// refreshed early. A negative or unreadable value comes from a broken
// provider; the token is then treated as expiring now, so the service
// refreshes it on next use instead of serving a token whose lifetime nobody
// knows until it dies.
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
// (Keycloak sends refresh_expires_in 0 for offline tokens). An unreadable
// value also counts as none: guessing "expired" would make the user
// reconnect over a parsing glitch, while the provider stays the authority
// and answers invalid_grant when the token really dies.
func (l lifetime) refreshExpiry(now time.Time) domain.Expiry {
	if !l.present || !l.valid || l.seconds <= 0 {
		return domain.Never()
	}
	return domain.AfterSeconds(now, l.seconds)
}

// parse reads a token response. It never fails: whatever cannot be read is
// left empty, and interpret decides from what is there. Being lenient
// matters most on success: the provider may already have rotated the
// refresh token, and discarding its answer over a malformed side field
// would lose the grant.
func parse(contentType string, body []byte) fields {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	switch mediaType {
	case "application/x-www-form-urlencoded", "text/plain":
		// GitHub's default answer; text/plain for some older servers.
		return parseForm(body)
	case "":
		if f, ok := parseJSON(body); ok {
			return f
		}
		return parseForm(body)
	default:
		f, _ := parseJSON(body)
		return f
	}
}

func parseJSON(body []byte) (fields, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return fields{}, false
	}
	str := func(key string) string {
		var s string
		if json.Unmarshal(m[key], &s) != nil {
			return "" // absent, null or not a string
		}
		return s
	}
	life := func(key string) lifetime {
		raw, ok := m[key]
		if !ok || string(raw) == "null" {
			return lifetime{}
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return parseLifetime(s)
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return parseLifetime(n.String())
		}
		return lifetime{present: true}
	}
	f := fields{
		accessToken:  str("access_token"),
		refreshToken: str("refresh_token"),
		expiresIn:    life("expires_in"),
		code:         str("error"),
		description:  str("error_description"),
	}
	if f.refreshExpiresIn = life("refresh_token_expires_in"); !f.refreshExpiresIn.present {
		f.refreshExpiresIn = life("refresh_expires_in")
	}
	return f, true
}

func parseForm(body []byte) fields {
	// ParseQuery keeps every pair it could decode alongside its error.
	vals, _ := url.ParseQuery(string(body))
	f := fields{
		accessToken:  vals.Get("access_token"),
		refreshToken: vals.Get("refresh_token"),
		expiresIn:    parseLifetime(vals.Get("expires_in")),
		code:         vals.Get("error"),
		description:  vals.Get("error_description"),
	}
	if f.refreshExpiresIn = parseLifetime(vals.Get("refresh_token_expires_in")); !f.refreshExpiresIn.present {
		f.refreshExpiresIn = parseLifetime(vals.Get("refresh_expires_in"))
	}
	return f
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
	minScrubLen       = 8
	maxCodeLen        = 64
	maxDescriptionLen = 200
)

// describe renders the answer for an error message: provider, status, OAuth
// error code and description. The body itself is never included. The
// description is provider text, so any token or secret it echoes is
// replaced by domain.Redacted before it is shortened (shortening first
// could leave a partial secret behind), and it is quoted so that it cannot
// forge log lines. Replacing a secret of a few characters would mangle
// ordinary words, so with such a secret in play the description is left out.
func (a answer) describe(provider domain.Provider, sent, clientSecret domain.Secret) string {
	secrets := []string{sent.Reveal(), clientSecret.Reveal(), a.accessToken, a.refreshToken}
	scrubbable := true
	for _, s := range secrets {
		if s != "" && len(s) < minScrubLen {
			scrubbable = false
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d", provider, a.status)
	if a.status >= 300 && a.status <= 399 {
		b.WriteString(" (redirects are not followed: check the token URL)")
	}
	if a.code != "" {
		code := truncate(scrub(a.code, secrets), maxCodeLen)
		if isCodeText(code) {
			fmt.Fprintf(&b, ", error %s", code)
		} else {
			fmt.Fprintf(&b, ", error %q", code)
		}
	}
	if a.description != "" && scrubbable {
		fmt.Fprintf(&b, ": %q", truncate(scrub(a.description, secrets), maxDescriptionLen))
	}
	return b.String()
}

// scrub replaces each secret of at least minScrubLen bytes in s; shorter
// ones would hit ordinary words (describe drops the description for them).
func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		if len(secret) >= minScrubLen {
			s = strings.ReplaceAll(s, secret, domain.Redacted)
		}
	}
	return s
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
