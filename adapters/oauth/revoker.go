package oauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.TokenRevoker = (*Revoker)(nil)

// Revoker revokes users' tokens at their providers once tokenstore has
// deleted them (ProviderConfig.RevokeOnDelete): through the RFC 7009
// revocation endpoint of oauth2, gitlab and keycloak providers, and through
// GitHub's grant deletion API ("Delete an app authorization") for github.
// It shares the Refresher's per-provider HTTP clients and rules: a hard
// timeout per request, redirects never followed, and errors that name the
// provider, the HTTP status and the OAuth error code but never a token, the
// client secret or the body (see scrubber). Safe for concurrent use.
type Revoker struct {
	r *Refresher
}

// NewRevoker validates the providers as New does and builds a Revoker.
func NewRevoker(providers []ProviderConfig, opts ...Option) (*Revoker, error) {
	r, err := New(providers, opts...)
	if err != nil {
		return nil, err
	}
	return &Revoker{r: r}, nil
}

// NewRevokerFromConfig builds a Revoker from cfg.
func NewRevokerFromConfig(cfg Config, opts ...Option) (*Revoker, error) {
	return NewRevoker(cfg.Providers, opts...)
}

// RevokesOnDelete reports whether provider is declared with
// revoke_on_delete: true.
func (v *Revoker) RevokesOnDelete(provider domain.Provider) bool {
	e, ok := v.r.providers[provider]
	return ok && e.revokeOnDelete
}

// RevokesGrant reports whether revoking at provider ends the user's whole
// grant, tokens obtained later included: GitHub's grant deletion does
// (every token of the user for the app), RFC 7009 revocation of one
// grant's tokens does not reach a grant the user authorized anew.
func (v *Revoker) RevokesGrant(provider domain.Provider) bool {
	e, ok := v.r.providers[provider]
	return ok && e.kind == KindGitHub
}

// Revoke revokes tokens at provider, the refresh token first, then the
// access token (ports.TokenRevoker). A token the provider already considers
// invalid counts as revoked. Errors wrap domain.ErrProviderUnavailable
// (5xx, 408, 425, 429, temporarily_unavailable, a transport failure: retry;
// a *domain.RetryAtError when the provider sent Retry-After, or GitHub's
// rate-limit reset), domain.ErrRevocationRejected (any other refusal: fix
// the configuration), domain.ErrRevocationNotSupported or domain.ErrInvalid
// (both tokens zero); with ctx ended, the context's error too.
func (v *Revoker) Revoke(ctx context.Context, provider domain.Provider, tokens ports.RevocationRequest) error {
	e, ok := v.r.providers[provider]
	switch {
	case !ok:
		return fmt.Errorf("%w: %q is not a declared provider", domain.ErrRevocationNotSupported, provider)
	case !RevocationSupported(e.kind):
		return fmt.Errorf("%w: %s (kind %s) has no API to revoke tokens", domain.ErrRevocationNotSupported, provider, e.kind)
	case !e.revokeOnDelete:
		return fmt.Errorf("%w: %s: revoke_on_delete is off", domain.ErrRevocationNotSupported, provider)
	case tokens.RefreshToken.IsZero() && tokens.AccessToken.IsZero():
		return &domain.ValidationError{Field: "tokens", Reason: "give the refresh token, the access token or both"}
	}
	if e.kind == KindGitHub {
		return v.deleteGitHubGrant(ctx, e, tokens)
	}
	sc := e.revocationScrubber(tokens)
	if !tokens.RefreshToken.IsZero() {
		if unsupported, err := v.revokeOne(ctx, e, tokens.RefreshToken, "refresh_token", sc); err != nil {
			return err
		} else if unsupported {
			// RFC 7009 §2: servers MUST support revoking refresh tokens.
			return fmt.Errorf("%w: %s: HTTP 400, error unsupported_token_type for a refresh token, with and without token_type_hint",
				domain.ErrRevocationRejected, e.name)
		}
	}
	if !tokens.AccessToken.IsZero() {
		unsupported, err := v.revokeOne(ctx, e, tokens.AccessToken, "access_token", sc)
		switch {
		case err != nil:
			return err
		case unsupported && tokens.RefreshToken.IsZero():
			return fmt.Errorf("%w: %s does not revoke access tokens (unsupported_token_type): this one stays valid until it expires",
				domain.ErrRevocationNotSupported, e.name)
		}
		// unsupported with a refresh token revoked: RFC 7009 §2 lets a
		// server revoke only refresh tokens, and §2.1 has it invalidate
		// the grant's access tokens with its refresh token where it can.
		// Nothing more can be done here.
	}
	return nil
}

// revokeOne revokes one token at e's RFC 7009 endpoint with
// token_type_hint hint. unsupported is set when the server answered
// unsupported_token_type with and without the hint: RFC 7009 §2.1 makes the
// hint only a hint, and servers that refuse its value may still take the
// token without it (revoking is idempotent, so sending it again is safe).
func (v *Revoker) revokeOne(ctx context.Context, e *endpoint, token domain.Secret, hint string, sc *scrubber) (unsupported bool, err error) {
	a, err := v.postRevocation(ctx, e, token, hint)
	if err == nil && a.code == "unsupported_token_type" {
		a, err = v.postRevocation(ctx, e, token, "")
	}
	if err != nil {
		return false, revocationTransportError(e, err, sc)
	}
	if a.code == "unsupported_token_type" && !success(a.status) {
		return true, nil
	}
	return false, v.interpretRevocation(e, a, sc)
}

// postRevocation posts one RFC 7009 §2.1 request, authenticating the client
// as a refresh does, with the same probe for the generic kind's auto method
// (a server that refuses the client refuses before it looks at the token).
func (v *Revoker) postRevocation(ctx context.Context, e *endpoint, token domain.Secret, hint string) (answer, error) {
	form := func() url.Values {
		f := url.Values{"token": {token.Reveal()}}
		if hint != "" {
			f.Set("token_type_hint", hint)
		}
		return f
	}
	const span = "POST revocation endpoint"
	method := e.method
	if e.probe && e.useParams.Load() {
		method = AuthMethodClientSecretPost
	}
	a, err := e.postForm(ctx, e.revocationURL, method, form(), span)
	if err == nil && e.probe && method == AuthMethodClientSecretBasic && a.clientRefused() {
		a2, err2 := e.postForm(ctx, e.revocationURL, AuthMethodClientSecretPost, form(), span)
		if err2 == nil && !a2.clientRefused() {
			e.useParams.Store(true)
		}
		a, err = a2, err2
	}
	return a, err
}

// interpretRevocation turns an RFC 7009 endpoint's answer into nil (revoked,
// or already invalid) or a classified error.
func (v *Revoker) interpretRevocation(e *endpoint, a answer, sc *scrubber) error {
	if success(a.status) || a.code == "invalid_token" {
		// RFC 7009 §2.2: 200 says the token is revoked or was invalid, and
		// the body is ignored. invalid_token (RFC 6750 §3.1), which some
		// servers answer instead, says the token no longer works: the goal.
		return nil
	}
	var cause error
	switch {
	case a.status >= 500, a.status == http.StatusRequestTimeout, a.status == http.StatusTooEarly,
		a.status == http.StatusTooManyRequests,
		a.code == "temporarily_unavailable", a.code == "server_error", a.code == "slow_down":
		cause = domain.ErrProviderUnavailable
	default:
		// invalid_client, unauthorized_client, invalid_request, a 404 for a
		// wrong URL, a redirect (not followed): fix the configuration.
		cause = domain.ErrRevocationRejected
	}
	return v.revocationError(e, a, cause, sc)
}

// revocationError words a refusal, with when to retry if the provider said.
func (v *Revoker) revocationError(e *endpoint, a answer, cause error, sc *scrubber) error {
	err := fmt.Errorf("%w: %s", cause, a.describe(e.name, sc))
	if errors.Is(cause, domain.ErrProviderUnavailable) {
		if at, ok := retryAt(a.header, v.r.now()); ok {
			return &domain.RetryAtError{At: at, Err: err}
		}
	}
	return err
}

// revocationTransportError words a failed exchange without an answer:
// transient (the context's error is kept for errors.Is).
func revocationTransportError(e *endpoint, err error, sc *scrubber) error {
	return fmt.Errorf("%w: %s: %w", domain.ErrProviderUnavailable, e.name, newTransportError(err, sc))
}

// revocationScrubber returns the scrubber for every secret a revocation at
// e may put on the wire: the tokens, the client secret and both Basic
// credentials made of it (RFC 6749's form-encoded one and GitHub's plain
// one).
func (e *endpoint) revocationScrubber(t ports.RevocationRequest, more ...domain.Secret) *scrubber {
	secrets := []string{t.RefreshToken.Reveal(), t.AccessToken.Reveal(), e.clientSecret.Reveal()}
	if !e.clientSecret.IsZero() {
		secrets = append(secrets, basicCredential(e.clientID, e.clientSecret.Reveal()),
			base64.StdEncoding.EncodeToString([]byte(e.clientID+":"+e.clientSecret.Reveal())))
	}
	for _, s := range more {
		secrets = append(secrets, s.Reveal())
	}
	return newScrubber(secrets...)
}

// deleteGitHubGrant deletes the user's grant to the GitHub App or OAuth App
// (GitHub REST API, "Delete an app authorization": DELETE
// /applications/{client_id}/grant, Basic auth with the client ID and secret,
// body {"access_token": ...}), which deletes every token of the app for that
// user. 204 is success; 404 and 422 say GitHub does not know the access
// token (revoked, expired, or the grant already gone). GitHub needs a live
// access token, so when it does not know the one given and a refresh token
// can get a new one (GitHub Apps with expiring tokens), the grant is deleted
// with a fresh one; a refresh token GitHub refuses is already dead. Either
// way no token tokenstore held still works. A 404 for a fresh access token
// means the grant URL or the client credentials are wrong; for an OAuth App
// (no refresh token) a wrong api_url cannot be told from a revoked token.
func (v *Revoker) deleteGitHubGrant(ctx context.Context, e *endpoint, t ports.RevocationRequest) error {
	sc := e.revocationScrubber(t)
	access, refreshed := t.AccessToken, false
	refresh := func() error {
		fresh, err := v.freshAccessToken(ctx, e, t.RefreshToken)
		access, refreshed, sc = fresh, true, e.revocationScrubber(t, fresh)
		return err
	}
	if access.IsZero() {
		if err := refresh(); err != nil || access.IsZero() {
			return err
		}
	}
	for {
		a, err := e.deleteGrant(ctx, access)
		if err != nil {
			return revocationTransportError(e, err, sc)
		}
		switch {
		case success(a.status):
			return nil
		case a.status != http.StatusNotFound && a.status != http.StatusUnprocessableEntity:
			return v.revocationError(e, a, classifyGitHub(a), sc)
		case refreshed:
			// GitHub does not know an access token it has just issued: the
			// grant URL (api_url, client_id) or the client secret is wrong.
			return v.revocationError(e, a, fmt.Errorf("%w: GitHub does not know an access token it has just issued: "+
				"check api_url, client_id and client_secret", domain.ErrRevocationRejected), sc)
		case e.canRefresh() && !t.RefreshToken.IsZero():
			if err := refresh(); err != nil || access.IsZero() {
				return err
			}
		default:
			return nil // the access token is dead, and no refresh token is left to try
		}
	}
}

// canRefresh reports whether e's tokens are refreshed here.
func (e *endpoint) canRefresh() bool { return !e.neverExpires }

// freshAccessToken refreshes refreshToken for an access token GitHub
// accepts. A zero Secret and no error mean the grant is already gone (the
// refresh token was refused). The new refresh token is dropped: the grant
// deletion that follows kills it, and until then nobody else holds it.
func (v *Revoker) freshAccessToken(ctx context.Context, e *endpoint, refreshToken domain.Secret) (domain.Secret, error) {
	if refreshToken.IsZero() || !e.canRefresh() {
		return domain.Secret{}, &domain.ValidationError{Field: "access_token",
			Reason: "github deletes a grant only with an access token of it, and no refresh token can get one here"}
	}
	tokens, err := v.r.Refresh(ctx, e.name, refreshToken)
	switch {
	case errors.Is(err, domain.ErrGrantRevoked):
		return domain.Secret{}, nil
	case errors.Is(err, domain.ErrProviderRejected):
		return domain.Secret{}, fmt.Errorf("%w: refreshing for an access token to delete the grant with: %w", domain.ErrRevocationRejected, err)
	case err != nil:
		return domain.Secret{}, fmt.Errorf("refreshing for an access token to delete the grant with: %w", err)
	}
	return tokens.AccessToken, nil
}

// deleteGrant sends GitHub's grant deletion request.
func (e *endpoint) deleteGrant(ctx context.Context, access domain.Secret) (answer, error) {
	body, err := json.Marshal(map[string]string{"access_token": access.Reveal()})
	if err != nil {
		return answer{}, fmt.Errorf("building the request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, e.revocationURL, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.SetBasicAuth(e.clientID, e.clientSecret.Reveal()) // GitHub's API takes them as they are
	return e.send(ctx, req, "DELETE grant")
}

// classifyGitHub classifies a GitHub API refusal other than 404 and 422:
// 5xx and rate limits (429, or 403 with Retry-After or no requests left,
// GitHub REST docs "Rate limits") are transient; anything else (401 bad
// client credentials, a redirect) is not.
func classifyGitHub(a answer) error {
	limited := a.status == http.StatusForbidden &&
		(a.header.Get("Retry-After") != "" || a.header.Get("X-Ratelimit-Remaining") == "0")
	if a.status >= 500 || a.status == http.StatusTooManyRequests || limited {
		return domain.ErrProviderUnavailable
	}
	return domain.ErrRevocationRejected
}

func success(status int) bool { return status >= 200 && status <= 299 }

// maxRetryAfter caps how far ahead a provider may push a retry: no provider
// means more, and a garbled header must not park a revocation for years.
const maxRetryAfter = 24 * time.Hour

// retryAt reads when the provider asked to be retried: Retry-After (RFC
// 9110 §10.2.3: seconds or an HTTP date), else GitHub's X-Ratelimit-Reset
// (Unix seconds) when X-Ratelimit-Remaining is 0. ok is false when neither
// is there or readable; the time is capped at now + maxRetryAfter and is
// never before now.
func retryAt(h http.Header, now time.Time) (at time.Time, ok bool) {
	clamp := func(t time.Time) (time.Time, bool) {
		switch {
		case t.Before(now):
			return now, true
		case t.After(now.Add(maxRetryAfter)):
			return now.Add(maxRetryAfter), true
		}
		return t, true
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			return now.Add(time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return clamp(t)
		}
	}
	if h.Get("X-Ratelimit-Remaining") == "0" {
		if secs, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Ratelimit-Reset")), 10, 64); err == nil && secs > 0 {
			return clamp(time.Unix(secs, 0))
		}
	}
	return time.Time{}, false
}
