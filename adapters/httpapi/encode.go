package httpapi

import (
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// The response bodies, as openapi.yaml documents them. Times are RFC 3339
// in UTC; an expiry that never comes is null.

type providerStatusBody struct {
	Provider              string  `json:"provider"`
	State                 string  `json:"state"`
	AccessTokenExpiresAt  *string `json:"access_token_expires_at"`
	RefreshTokenExpiresAt *string `json:"refresh_token_expires_at"`
	HasRefreshToken       bool    `json:"has_refresh_token"`
	RefreshError          *string `json:"refresh_error"`
	AmbiguousRetries      int     `json:"ambiguous_retries"`
	UpdatedAt             string  `json:"updated_at"`
}

func statusResponse(s app.ProviderStatus) providerStatusBody {
	return providerStatusBody{
		Provider:              string(s.Provider),
		State:                 string(s.State),
		AccessTokenExpiresAt:  timestamp(s.AccessExpiry),
		RefreshTokenExpiresAt: timestamp(s.RefreshExpiry),
		HasRefreshToken:       s.HasRefreshToken,
		RefreshError:          optional(s.LastError),
		AmbiguousRetries:      s.AmbiguousRetries,
		UpdatedAt:             s.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}
}

type providersBody struct {
	User      string               `json:"user"`
	Providers []providerStatusBody `json:"providers"`
}

// providersResponse lists user's providers; none is an empty array, not null.
func providersResponse(user domain.UserID, list []app.ProviderStatus) providersBody {
	resp := providersBody{User: string(user), Providers: make([]providerStatusBody, 0, len(list))}
	for _, s := range list {
		resp.Providers = append(resp.Providers, statusResponse(s))
	}
	return resp
}

type accessTokenBody struct {
	User                 string  `json:"user"`
	Provider             string  `json:"provider"`
	AccessToken          string  `json:"access_token"`
	AccessTokenExpiresAt *string `json:"access_token_expires_at"`
}

func accessTokenResponse(tok app.AccessToken) accessTokenBody {
	return accessTokenBody{
		User:                 string(tok.User),
		Provider:             string(tok.Provider),
		AccessToken:          tok.Token.Reveal(),
		AccessTokenExpiresAt: timestamp(tok.Expiry),
	}
}

type offlineTokenBody struct {
	User         string `json:"user"`
	OfflineToken string `json:"offline_token,omitempty"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
}

// offlineTokenResponse describes user's offline token; the token itself
// only when reveal is set (GET, not the answer to PUT).
func offlineTokenResponse(user domain.UserID, tok domain.OfflineToken, reveal bool) offlineTokenBody {
	body := offlineTokenBody{
		User:      string(user),
		CreatedAt: tok.CreatedAt.UTC().Format(time.RFC3339Nano),
		UpdatedAt: tok.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}
	if reveal {
		body.OfflineToken = tok.Token.Reveal()
	}
	return body
}

// timestamp renders an expiry: RFC 3339 in UTC, or null for never.
func timestamp(e domain.Expiry) *string {
	t, ok := e.Time()
	if !ok {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
