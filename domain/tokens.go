package domain

import (
	"time"
	"unicode/utf8"
)

// AuthTokens are one user's tokens for one provider.
type AuthTokens struct {
	User     UserID
	Provider Provider
	// AccessToken is required.
	AccessToken Secret
	// RefreshToken may be absent (zero Secret): such tokens cannot be refreshed.
	RefreshToken  Secret
	AccessExpiry  Expiry
	RefreshExpiry Expiry
}

// Validate checks the fields a caller supplies.
func (t AuthTokens) Validate() error {
	if _, err := ParseUserID(string(t.User)); err != nil {
		return err
	}
	if _, err := ParseProvider(string(t.Provider)); err != nil {
		return err
	}
	if err := CheckToken("access_token", t.AccessToken); err != nil {
		return err
	}
	if !t.RefreshToken.IsZero() {
		if err := CheckToken("refresh_token", t.RefreshToken); err != nil {
			return err
		}
	}
	if t.RefreshToken.IsZero() && !t.RefreshExpiry.IsNever() {
		return invalid("refresh_token_expires_at", "is set but there is no refresh token")
	}
	return nil
}

// HasRefreshToken reports whether a refresh token is stored.
func (t AuthTokens) HasRefreshToken() bool { return !t.RefreshToken.IsZero() }

// OfflineToken is a user's Keycloak offline token: one per user.
type OfflineToken struct {
	User  UserID
	Token Secret
	// CreatedAt and UpdatedAt are set by storage.
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Validate checks the fields a caller supplies.
func (t OfflineToken) Validate() error {
	if _, err := ParseUserID(string(t.User)); err != nil {
		return err
	}
	return CheckToken("offline_token", t.Token)
}

// CheckToken is the rule every token value (access, refresh, offline)
// follows, whichever way it arrives (the API, an import): not empty, valid
// UTF-8, and no control character (U+0000 to U+001F, U+007F). field names
// the value in the error; the error never contains the value.
//
// RFC 6749 Appendix A defines access_token and refresh_token as 1*VSCHAR
// (%x20-7E), and no provider issues a token with a control character: a NUL
// or a line break in one is a client's bug (a C string cut short, a line
// read with its end), and storing it would hand back a secret the provider
// never issued. Non-ASCII is not refused, although VSCHAR excludes it:
// deployments already store such values, and they travel through JSON and
// back unchanged. Invalid UTF-8 cannot: JSON would replace it with U+FFFD,
// a different secret.
func CheckToken(field string, s Secret) error {
	v := s.Reveal()
	if v == "" {
		return invalid(field, "must not be empty")
	}
	if !utf8.ValidString(v) {
		return invalid(field, "must be valid UTF-8")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return invalid(field, "must not contain control characters (found U+%04X at byte %d); send the token exactly as the provider issued it", c, i)
		}
	}
	return nil
}

// RefreshedTokens is what a provider returns from a refresh.
type RefreshedTokens struct {
	AccessToken   Secret
	RefreshToken  Secret // zero: the provider did not rotate it; keep the old one
	AccessExpiry  Expiry
	RefreshExpiry Expiry // meaningful only with a new RefreshToken
}
