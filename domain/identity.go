package domain

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// UserID identifies the owner of tokens: in practice a Keycloak user id, but
// any opaque string the calling system uses will do.
type UserID string

// MaxUserIDLen is the longest user id accepted, in bytes.
const MaxUserIDLen = 255

// ParseUserID validates s as a user id: non-empty, valid UTF-8, at most
// MaxUserIDLen bytes, no control, format (zero-width, bidi) or line/paragraph
// separator characters, no leading or trailing space, and not "." or "..".
// Those characters forge log lines or make two ids look alike; "." and ".."
// are dot-segments in a URL path (RFC 3986 section 5.2.4), which clients,
// proxies and routers remove, so no API path could name such a user in only
// one way.
func ParseUserID(s string) (UserID, error) {
	switch {
	case s == "":
		return "", invalid("user", "must not be empty")
	case s == "." || s == "..":
		return "", invalid("user", "must not be a dot-segment (one or two full stops alone): a URL path cannot carry it unchanged")
	case len(s) > MaxUserIDLen:
		return "", invalid("user", "is %d bytes long; the limit is %d", len(s), MaxUserIDLen)
	case !utf8.ValidString(s):
		return "", invalid("user", "must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return "", invalid("user", "must not contain control, format or separator characters (found %U)", r)
		}
	}
	if strings.TrimSpace(s) != s {
		return "", invalid("user", "must not start or end with white space")
	}
	return UserID(s), nil
}

func (u UserID) String() string { return string(u) }

// Provider names an identity provider configuration, e.g. "github" or a
// deployment's own "gitlab-internal".
type Provider string

// Well-known provider names. Any name matching the provider rule is valid;
// these are the ones the replaced system knew.
const (
	ProviderGitHub      Provider = "github"
	ProviderGitLab      Provider = "gitlab"
	ProviderBitbucket   Provider = "bitbucket"
	ProviderAzureDevOps Provider = "azure_devops"
	ProviderKeycloak    Provider = "keycloak"
)

// MaxProviderLen is the longest provider name accepted.
const MaxProviderLen = 64

// ParseProvider validates s as a provider name: [a-z0-9][a-z0-9_-]{0,63}.
func ParseProvider(s string) (Provider, error) {
	if s == "" {
		return "", invalid("provider", "must not be empty")
	}
	if len(s) > MaxProviderLen {
		return "", invalid("provider", "is %d bytes long; the limit is %d", len(s), MaxProviderLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '_' || c == '-')
		if !ok {
			return "", invalid("provider",
				"%q is not a provider name: use lower-case letters, digits, '_' and '-', starting with a letter or digit", s)
		}
	}
	return Provider(s), nil
}

func (p Provider) String() string { return string(p) }
