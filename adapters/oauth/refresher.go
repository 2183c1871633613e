package oauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tokenstore/tokenstore/adapters/internal/printable"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

var _ ports.TokenRefresher = (*Refresher)(nil)

// maxResponseBytes bounds what is read from a token endpoint: a token
// response is a few kilobytes, and a misconfigured URL may serve anything.
const maxResponseBytes = 1 << 20

// Refresher exchanges refresh tokens at the configured providers' token
// endpoints. It is immutable once built (apart from what the generic
// provider's client-authentication probe learns) and safe for concurrent use.
type Refresher struct {
	providers map[domain.Provider]*endpoint
	now       func() time.Time
}

// tracerName names the provider calls' spans' instrumentation scope.
const tracerName = "github.com/tokenstore/tokenstore/adapters/oauth"

// endpoint is one provider's resolved configuration and its HTTP client.
type endpoint struct {
	resolved
	client *http.Client
	tracer trace.Tracer
	// useParams is set once the client-authentication probe (resolved.probe) found
	// that the server wants the client credentials in the body.
	useParams atomic.Bool
}

// Option adjusts New.
type Option func(*options)

type options struct {
	client *http.Client
	now    func() time.Time
	tracer trace.Tracer
}

// WithTracerProvider makes a client span of every request to a token
// endpoint with tp (default: none). nil is ignored.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) {
		if tp != nil {
			o.tracer = tp.Tracer(tracerName)
		}
	}
}

// WithHTTPClient makes every provider's client a copy of c: its Transport,
// Jar and so on are used, but each copy gets its provider's Timeout, and
// redirects are never followed (a token endpoint that redirects is
// misconfigured, and following it would post the refresh token and the
// client secret to another URL). Tests pass an httptest server's client;
// deployments may pass one with a proxy or custom CA pool. nil is ignored.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) {
		if c != nil {
			o.client = c
		}
	}
}

// WithClock sets the clock that turns expires_in into an expiry (default
// time.Now), so tests can assert exact expiries. nil is ignored.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// New validates the providers and builds a Refresher. A name may appear
// only once: two entries for one name would make which client secret is
// used depend on order. No providers is valid: every Refresh then fails
// with domain.ErrProviderNotConfigured.
func New(providers []ProviderConfig, opts ...Option) (*Refresher, error) {
	o := options{client: &http.Client{}, now: time.Now, tracer: noop.NewTracerProvider().Tracer(tracerName)}
	for _, opt := range opts {
		opt(&o)
	}
	r := &Refresher{providers: make(map[domain.Provider]*endpoint, len(providers)), now: o.now}
	for i, pc := range providers {
		res, err := pc.resolve()
		if err != nil {
			if pc.Name == "" {
				return nil, fmt.Errorf("provider #%d: %w", i+1, err)
			}
			return nil, err
		}
		if _, dup := r.providers[res.name]; dup {
			return nil, fmt.Errorf("providers[%s]: configured twice: each provider name may appear once", res.name)
		}
		client := *o.client
		client.Timeout = res.timeout
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		r.providers[res.name] = &endpoint{resolved: res, client: &client, tracer: o.tracer}
	}
	return r, nil
}

// Configured reports whether Refresh can work for provider: false for an
// unknown provider and for one configured as never expiring. The service
// uses it to tell "this token cannot be refreshed here" from a failed
// refresh before it takes any lock.
func (r *Refresher) Configured(provider domain.Provider) bool {
	e, ok := r.providers[provider]
	return ok && !e.neverExpires
}

// RevokesPreviousAccessToken reports whether provider revokes the previous
// access token when it refreshes (ProviderConfig.RevokesPreviousAccessToken,
// else the kind's default); false for a provider not refreshed here.
func (r *Refresher) RevokesPreviousAccessToken(provider domain.Provider) bool {
	e, ok := r.providers[provider]
	return ok && !e.neverExpires && e.revokes
}

// Providers lists the providers whose tokens are refreshed, by name.
func (r *Refresher) Providers() []domain.Provider {
	var out []domain.Provider
	for name, e := range r.providers {
		if !e.neverExpires {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Refresh exchanges refreshToken for new tokens (grant_type=refresh_token).
//
// A zero RefreshedTokens.RefreshToken means the provider did not send a new
// one and the caller keeps the old one. Errors wrap domain.ErrGrantRevoked
// (the user must reconnect), domain.ErrProviderRejected (fix the
// configuration), domain.ErrProviderUnavailable (retry later; also wraps the
// context's error when ctx ended) or domain.ErrProviderNotConfigured.
func (r *Refresher) Refresh(ctx context.Context, provider domain.Provider, refreshToken domain.Secret) (domain.RefreshedTokens, error) {
	e, ok := r.providers[provider]
	switch {
	case !ok:
		return domain.RefreshedTokens{}, fmt.Errorf("%w: %q", domain.ErrProviderNotConfigured, provider)
	case e.neverExpires:
		return domain.RefreshedTokens{}, fmt.Errorf("%w: %s is declared store-only (never_expires or refresh: false)",
			domain.ErrProviderNotConfigured, provider)
	case refreshToken.IsZero():
		return domain.RefreshedTokens{}, &domain.ValidationError{Field: "refresh_token", Reason: "must not be empty"}
	}

	// Expiries count from before the request: the provider's clock started
	// no earlier, so the stored expiry errs on the early side.
	now := r.now()
	method := e.method
	if e.probe && e.useParams.Load() {
		method = AuthMethodClientSecretPost
	}
	a, err := e.post(ctx, method, refreshToken)
	if err == nil && e.probe && method == AuthMethodClientSecretBasic && a.clientRefused() {
		// The server refused the client, which RFC 6749 has it do before
		// it looks at the refresh token, so sending the token again is safe.
		a2, err2 := e.post(ctx, AuthMethodClientSecretPost, refreshToken)
		if err2 == nil && !a2.clientRefused() {
			e.useParams.Store(true)
		}
		a, err = a2, err2
	}
	sc := e.scrubberFor(refreshToken, a)
	if err != nil {
		var sent *sentError
		if errors.As(err, &sent) {
			// The request reached the wire: the provider may have acted on it.
			return domain.RefreshedTokens{}, fmt.Errorf("%w: %w: %s: %w", domain.ErrProviderUnavailable,
				domain.ErrProviderOutcomeUnknown, e.name, newTransportError(sent.err, sc))
		}
		return domain.RefreshedTokens{}, fmt.Errorf("%w: %s: %w", domain.ErrProviderUnavailable, e.name, newTransportError(err, sc))
	}
	return e.interpret(a, now, sc)
}

// sentError is a transport failure after the whole request was written: a
// timeout waiting for the answer, a connection reset, an answer cut off.
// The provider may have refreshed (domain.ErrProviderOutcomeUnknown).
type sentError struct{ err error }

func (e *sentError) Error() string { return e.err.Error() }
func (e *sentError) Unwrap() error { return e.err }

// scrubberFor returns the scrubber for every secret this exchange put on
// the wire or received: the refresh token sent, the client secret, the
// Basic credential made of it, and every token in the answer.
func (e *endpoint) scrubberFor(sent domain.Secret, a answer) *scrubber {
	secrets := []string{sent.Reveal(), e.clientSecret.Reveal()}
	if !e.clientSecret.IsZero() {
		secrets = append(secrets, basicCredential(e.clientID, e.clientSecret.Reveal()))
	}
	return newScrubber(append(secrets, a.tokens...)...)
}

// post sends one refresh request. Its error is a transport failure (no
// usable HTTP response); any HTTP response, whatever its status, is an answer.
func (e *endpoint) post(ctx context.Context, method AuthMethod, refreshToken domain.Secret) (answer, error) {
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken.Reveal()},
	}
	if e.scope != "" {
		form.Set("scope", e.scope)
	}
	return e.postForm(ctx, e.tokenURL, method, form, "POST token endpoint")
}

// postForm posts form to target, authenticating the client with method as
// RFC 6749 §2.3.1 says, and reads the answer (see send).
func (e *endpoint) postForm(ctx context.Context, target string, method AuthMethod, form url.Values, spanName string) (answer, error) {
	if method == AuthMethodClientSecretPost {
		form.Set("client_id", e.clientID)
		if !e.clientSecret.IsZero() {
			form.Set("client_secret", e.clientSecret.Reveal())
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return answer{}, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// GitHub answers form-encoded unless asked for JSON; parse() reads both.
	req.Header.Set("Accept", "application/json")
	if method == AuthMethodClientSecretBasic {
		// RFC 6749 §2.3.1: both parts are form-encoded before basic auth.
		req.SetBasicAuth(url.QueryEscape(e.clientID), url.QueryEscape(e.clientSecret.Reveal()))
	}
	return e.send(ctx, req, spanName)
}

// send sends req in a client span named spanName and reads the answer. Its
// error is a transport failure (no usable HTTP response), a *sentError
// when the whole request had been written; any HTTP response, whatever its
// status, is an answer.
func (e *endpoint) send(ctx context.Context, req *http.Request, spanName string) (answer, error) {
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { wrote.Store(info.Err == nil) },
	}))
	span := e.startSpan(ctx, req, spanName)
	resp, err := e.client.Do(req)
	endSpan(span, resp, err)
	if err != nil {
		if wrote.Load() {
			return answer{}, &sentError{err}
		}
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return answer{}, &sentError{fmt.Errorf("HTTP %d: reading the response: %w", resp.StatusCode, err)}
	}
	// The body decides how it is read, never the Content-Type label (see parse).
	return answer{status: resp.StatusCode, header: resp.Header, fields: parse(body)}, nil
}

// startSpan starts the client span of one request to the provider.
// It is made here rather than by otelhttp, which records the full URL (the
// token URL's query included) and the transport error's text (which names
// that URL): the span names the provider, the method and the server, never
// the URL, a header, the body or an error's text.
func (e *endpoint) startSpan(ctx context.Context, req *http.Request, name string) trace.Span {
	_, span := e.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("tokenstore.provider", string(e.name)),
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", req.URL.Hostname()),
	))
	return span
}

// endSpan records the answer's status, or that the transport failed.
func endSpan(span trace.Span, resp *http.Response, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "transport error")
	} else {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 400 {
			span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
		}
	}
	span.End()
}

// interpret turns an answer into tokens or a classified error. sc holds the
// secrets in flight; no error message carries any of them.
func (e *endpoint) interpret(a answer, now time.Time, sc *scrubber) (domain.RefreshedTokens, error) {
	success := a.status >= 200 && a.status <= 299
	if a.isError || !success {
		// GitHub reports errors with HTTP 200 and an "error" member, so the
		// code decides even on a 2xx.
		return domain.RefreshedTokens{}, fmt.Errorf("%w: %s", classify(a.status, a.code), a.describe(e.name, sc))
	}
	// From here the answer is a 2xx that says it succeeded: the provider
	// refreshed, so a broken answer leaves the outcome unknown.
	if a.unreadable != "" {
		// A token that cannot be stored exactly as sent (sent twice, not a
		// string, broken UTF-8) must not be stored at all: a changed token
		// is a different secret. Like any broken answer it says nothing
		// sure about the grant, so it is reported as unavailable.
		return domain.RefreshedTokens{}, fmt.Errorf("%w: %w: %s: the response cannot be read: %s",
			domain.ErrProviderUnavailable, domain.ErrProviderOutcomeUnknown, a.describe(e.name, sc), a.unreadable)
	}
	if a.accessToken == "" {
		// A 2xx without an access token and without an error code is a
		// broken answer: a proxy's or login page's HTML, a truncated body.
		// It says nothing about the grant or the configuration for sure, so
		// it is reported as ErrProviderUnavailable (try again later), never
		// as a revoked grant.
		return domain.RefreshedTokens{}, fmt.Errorf("%w: %w: %s: the response has no access_token",
			domain.ErrProviderUnavailable, domain.ErrProviderOutcomeUnknown, a.describe(e.name, sc))
	}
	out := domain.RefreshedTokens{
		AccessToken:  domain.NewSecret(a.accessToken),
		AccessExpiry: a.expiresIn.accessExpiry(now),
	}
	if a.refreshToken != "" {
		out.RefreshToken = domain.NewSecret(a.refreshToken)
		out.RefreshExpiry = a.refreshExpiresIn.refreshExpiry(now)
	}
	return out, nil
}

// classify maps an OAuth error code and HTTP status to a domain sentinel.
// The code wins where it is specific: it is the provider's own verdict. A
// 5xx leaves the outcome unknown whatever its body says (a gateway's 502,
// 503 or 504 may come after the provider refreshed; a server's 500 after it
// stored the rotation): domain.ErrProviderOutcomeUnknown qualifies it.
func classify(status int, code string) error {
	if status >= 500 {
		if revoked := classifyCode(code); revoked == domain.ErrGrantRevoked {
			return revoked
		}
		return fmt.Errorf("%w: %w", domain.ErrProviderUnavailable, domain.ErrProviderOutcomeUnknown)
	}
	if err := classifyCode(code); err != nil {
		return err
	}
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests:
		return domain.ErrProviderUnavailable
	default:
		// Other 4xx (invalid_client, unauthorized_client, 404 for a wrong
		// URL), a redirect (not followed), or a 2xx with an unknown error:
		// retrying will not help until the configuration changes.
		return domain.ErrProviderRejected
	}
}

// classifyCode is the verdict of an OAuth error code, nil for none.
func classifyCode(code string) error {
	switch code {
	case "invalid_grant", // RFC 6749: revoked, expired or already-rotated refresh token
		"bad_refresh_token",    // GitHub's name for it
		"interaction_required", // OIDC / Entra: the user must sign in again (MFA, consent,
		"login_required",       // password change); no refresh will ever succeed
		"consent_required":
		return domain.ErrGrantRevoked
	case "temporarily_unavailable", "server_error", "slow_down":
		return domain.ErrProviderUnavailable
	}
	return nil
}

// maxTransportErrorLen bounds a transport error's text.
const maxTransportErrorLen = 300

// transportError is a failed exchange without an HTTP answer, worded
// safely: net/http's errors quote the request URL (with its query) and, for
// a malformed answer, the server's own bytes, which may echo the request.
// Its text keeps only the token URL's scheme, host and path and a
// sanitised, scrubbed, cut version of the cause; it unwraps only to the
// context's error, so errors.Is still tells a cancelled caller, while no
// caller can reach and print the raw cause.
type transportError struct {
	msg   string
	cause error // context.Canceled, context.DeadlineExceeded or nil
}

func newTransportError(err error, sc *scrubber) error {
	te := &transportError{}
	switch {
	case errors.Is(err, context.Canceled):
		te.cause = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		te.cause = context.DeadlineExceeded
	}
	prefix, inner := "", err
	var ue *url.Error
	if errors.As(err, &ue) {
		prefix, inner = ue.Op+" "+safeURL(ue.URL)+": ", ue.Err
	}
	te.msg = prefix + truncate(sc.cleanOrWithhold(printable.Clip(inner.Error(), maxScanLen)), maxTransportErrorLen)
	return te
}

func (e *transportError) Error() string { return e.msg }
func (e *transportError) Unwrap() error { return e.cause }

// safeURL is raw without user information, query or fragment.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(the token URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
