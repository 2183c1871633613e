package domain

import "time"

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
	if t.AccessToken.IsZero() {
		return invalid("access_token", "must not be empty")
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
	if t.Token.IsZero() {
		return invalid("offline_token", "must not be empty")
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
