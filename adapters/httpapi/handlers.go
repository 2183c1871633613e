package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// Route is one registered method and path pattern.
type Route struct {
	Method string
	Path   string // Go ServeMux pattern, e.g. /v1/users/{user}/offline-token
}

type route struct {
	Route
	perm   Permission // empty: no credential needed (health probes only)
	handle http.HandlerFunc
}

type api struct {
	log   *slog.Logger
	svc   *app.TokenService
	auth  *Authenticator
	ready Checker
	now   func() time.Time
}

func (a *api) routes() []route {
	return []route{
		{Route{"GET", "/healthz"}, "", a.healthz},
		{Route{"GET", "/readyz"}, "", a.readyz},
		{Route{"PUT", "/v1/users/{user}/providers/{provider}/tokens"}, PermTokensWrite, a.putTokens},
		{Route{"GET", "/v1/users/{user}/providers/{provider}/tokens"}, PermTokensRead, a.getTokens},
		{Route{"DELETE", "/v1/users/{user}/providers/{provider}/tokens"}, PermTokensDelete, a.deleteTokens},
		{Route{"GET", "/v1/users/{user}/providers"}, PermTokensRead, a.listProviders},
		{Route{"PUT", "/v1/users/{user}/offline-token"}, PermOfflineWrite, a.putOffline},
		{Route{"GET", "/v1/users/{user}/offline-token"}, PermOfflineRead, a.getOffline},
		{Route{"DELETE", "/v1/users/{user}/offline-token"}, PermOfflineDelete, a.deleteOffline},
	}
}

// Routes lists the API's routes, for checking them against openapi.yaml.
func Routes() []Route {
	var out []Route
	for _, r := range (&api{}).routes() {
		out = append(out, r.Route)
	}
	return out
}

// NewHandler returns the API's http.Handler.
func NewHandler(log *slog.Logger, svc *app.TokenService, auth *Authenticator, ready Checker) http.Handler {
	a := &api{log: log, svc: svc, auth: auth, ready: ready, now: time.Now}
	mux := http.NewServeMux()
	allowed := map[string][]string{} // path -> methods
	for _, rt := range a.routes() {
		h := http.Handler(rt.handle)
		if rt.perm != "" {
			h = require(rt.perm, h)
		}
		mux.Handle(rt.Method+" "+rt.Path, h)
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
	}
	// Known paths with another method: 405 with Allow.
	for path, methods := range allowed {
		mux.Handle(path, methodNotAllowed(methods))
	}
	mux.Handle("/", http.HandlerFunc(notFound))
	return observe(log, a.authenticate(mux))
}

// authenticate admits a request under /v1 only with a valid bearer
// credential, before routing: so no /v1 path, not even an unknown one, a
// wrong method or one the router would redirect, answers anything else
// without a credential.
func (a *api) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !underV1(r.URL.Path) && !underV1(path.Clean(r.URL.Path)) {
			next.ServeHTTP(w, r)
			return
		}
		scheme, credential, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(credential) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenstore"`)
			writeProblem(w, r, newProblem(http.StatusUnauthorized, CodeUnauthenticated,
				"send Authorization: Bearer <caller credential>"))
			return
		}
		caller := a.auth.Authenticate(strings.TrimSpace(credential))
		if caller == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenstore", error="invalid_token"`)
			writeProblem(w, r, newProblem(http.StatusUnauthorized, CodeUnauthenticated, "the credential is not valid"))
			return
		}
		setCaller(r.Context(), caller)
		next.ServeHTTP(w, r)
	})
}

// underV1 reports whether p is /v1 or below. The router cleans paths (and
// redirects), so callers check the cleaned path too.
func underV1(p string) bool { return p == "/v1" || strings.HasPrefix(p, "/v1/") }

// require admits only callers holding perm.
func require(perm Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller := callerFrom(r.Context())
		if caller == nil || !caller.Can(perm) {
			name := ""
			if caller != nil {
				name = caller.Name
			}
			writeProblem(w, r, newProblem(http.StatusForbidden, CodeForbidden,
				fmt.Sprintf("caller %q lacks the %s permission", name, perm)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func methodNotAllowed(methods []string) http.Handler {
	allow := slices.Clone(methods)
	if slices.Contains(allow, "GET") {
		allow = append(allow, "HEAD")
	}
	slices.Sort(allow)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, r, newProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			fmt.Sprintf("%s is not allowed here; use %s", r.Method, strings.Join(allow, ", "))))
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, newProblem(http.StatusNotFound, CodeNotFound, "no such route; see the API document"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeProblem(w, r, problemFor(r.Context(), a.log, err))
}

// pathUser and pathProvider validate path values; a bad one is a 400 naming it.
func pathUser(r *http.Request) (domain.UserID, *Problem) {
	u, err := domain.ParseUserID(r.PathValue("user"))
	if err != nil {
		return "", newProblem(http.StatusBadRequest, CodeInvalidRequest, err.Error()).withField("user")
	}
	return u, nil
}

func pathUserProvider(r *http.Request) (domain.UserID, domain.Provider, *Problem) {
	u, p := pathUser(r)
	if p != nil {
		return "", "", p
	}
	prov, err := domain.ParseProvider(r.PathValue("provider"))
	if err != nil {
		return "", "", newProblem(http.StatusBadRequest, CodeInvalidRequest, err.Error()).withField("provider")
	}
	return u, prov, nil
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

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if err := a.ready.Check(r.Context()); err != nil {
		a.log.WarnContext(r.Context(), "not ready", "err", err)
		p := newProblem(http.StatusServiceUnavailable, CodeUnavailable, "not ready: "+err.Error())
		p.retryAfter = 5
		writeProblem(w, r, p)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

type putTokensRequest struct {
	AccessToken           *string `json:"access_token"`
	RefreshToken          *string `json:"refresh_token"`
	AccessTokenExpiresAt  *string `json:"access_token_expires_at"`
	ExpiresIn             *int64  `json:"expires_in"`
	RefreshTokenExpiresAt *string `json:"refresh_token_expires_at"`
	RefreshTokenExpiresIn *int64  `json:"refresh_token_expires_in"`
}

type providerStatusResponse struct {
	Provider              string  `json:"provider"`
	State                 string  `json:"state"`
	AccessTokenExpiresAt  *string `json:"access_token_expires_at"`
	RefreshTokenExpiresAt *string `json:"refresh_token_expires_at"`
	HasRefreshToken       bool    `json:"has_refresh_token"`
	RefreshError          *string `json:"refresh_error"`
	UpdatedAt             string  `json:"updated_at"`
}

func statusResponse(s app.ProviderStatus) providerStatusResponse {
	return providerStatusResponse{
		Provider:              string(s.Provider),
		State:                 string(s.State),
		AccessTokenExpiresAt:  timestamp(s.AccessExpiry),
		RefreshTokenExpiresAt: timestamp(s.RefreshExpiry),
		HasRefreshToken:       s.HasRefreshToken,
		RefreshError:          optional(s.LastError),
		UpdatedAt:             s.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}
}

// expiry reads one of the two ways OAuth clients express an expiry: an
// absolute RFC 3339 time or expires_in seconds from now. Neither means never.
func expiry(now time.Time, atField string, at *string, inField string, in *int64) (domain.Expiry, *Problem) {
	switch {
	case at != nil && in != nil:
		return domain.Expiry{}, invalidBody(inField, "and "+atField+" both give the expiry; send one of them")
	case at != nil:
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return domain.Expiry{}, invalidBody(atField, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		return domain.At(t.Truncate(time.Microsecond)), nil // PostgreSQL keeps microseconds
	case in != nil:
		if *in < 0 {
			return domain.Expiry{}, invalidBody(inField, "must not be negative")
		}
		return domain.AfterSeconds(now, *in), nil
	}
	return domain.Never(), nil
}

func (a *api) putTokens(w http.ResponseWriter, r *http.Request) {
	user, provider, p := pathUserProvider(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req putTokensRequest
	if p := decodeJSON(w, r, &req); p != nil {
		writeProblem(w, r, p)
		return
	}
	if req.AccessToken == nil || *req.AccessToken == "" {
		writeProblem(w, r, invalidBody("access_token", "is required"))
		return
	}
	now := a.now().Truncate(time.Microsecond)
	accessExp, p := expiry(now, "access_token_expires_at", req.AccessTokenExpiresAt, "expires_in", req.ExpiresIn)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	refreshExp, p := expiry(now, "refresh_token_expires_at", req.RefreshTokenExpiresAt, "refresh_token_expires_in", req.RefreshTokenExpiresIn)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	tokens := domain.AuthTokens{
		User: user, Provider: provider,
		AccessToken:  domain.NewSecret(*req.AccessToken),
		AccessExpiry: accessExp, RefreshExpiry: refreshExp,
	}
	if req.RefreshToken != nil {
		tokens.RefreshToken = domain.NewSecret(*req.RefreshToken)
	}
	if tokens.RefreshToken.IsZero() && !refreshExp.IsNever() {
		writeProblem(w, r, invalidBody("refresh_token", "is required when a refresh token expiry is given"))
		return
	}
	status, err := a.svc.PutAuthTokens(r.Context(), tokens)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, statusResponse(status))
}

type accessTokenResponse struct {
	User                 string  `json:"user"`
	Provider             string  `json:"provider"`
	AccessToken          string  `json:"access_token"`
	AccessTokenExpiresAt *string `json:"access_token_expires_at"`
}

func (a *api) getTokens(w http.ResponseWriter, r *http.Request) {
	user, provider, p := pathUserProvider(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	tok, err := a.svc.GetAccessToken(r.Context(), user, provider)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, accessTokenResponse{
		User:                 string(tok.User),
		Provider:             string(tok.Provider),
		AccessToken:          tok.Token.Reveal(),
		AccessTokenExpiresAt: timestamp(tok.Expiry),
	})
}

func (a *api) deleteTokens(w http.ResponseWriter, r *http.Request) {
	user, provider, p := pathUserProvider(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if err := a.svc.DeleteAuthTokens(r.Context(), user, provider); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type providersResponse struct {
	User      string                   `json:"user"`
	Providers []providerStatusResponse `json:"providers"`
}

func (a *api) listProviders(w http.ResponseWriter, r *http.Request) {
	user, p := pathUser(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	list, err := a.svc.ListProviders(r.Context(), user)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp := providersResponse{User: string(user), Providers: make([]providerStatusResponse, 0, len(list))}
	for _, s := range list {
		resp.Providers = append(resp.Providers, statusResponse(s))
	}
	writeJSON(w, http.StatusOK, resp)
}

type putOfflineRequest struct {
	OfflineToken *string `json:"offline_token"`
}

type offlineTokenResponse struct {
	User         string `json:"user"`
	OfflineToken string `json:"offline_token,omitempty"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
}

func (a *api) putOffline(w http.ResponseWriter, r *http.Request) {
	user, p := pathUser(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	var req putOfflineRequest
	if p := decodeJSON(w, r, &req); p != nil {
		writeProblem(w, r, p)
		return
	}
	if req.OfflineToken == nil || *req.OfflineToken == "" {
		writeProblem(w, r, invalidBody("offline_token", "is required"))
		return
	}
	stored, err := a.svc.PutOfflineToken(r.Context(), domain.OfflineToken{User: user, Token: domain.NewSecret(*req.OfflineToken)})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, offlineTokenResponse{
		User:      string(user),
		CreatedAt: stored.CreatedAt.UTC().Format(time.RFC3339Nano),
		UpdatedAt: stored.UpdatedAt.UTC().Format(time.RFC3339Nano),
	})
}

func (a *api) getOffline(w http.ResponseWriter, r *http.Request) {
	user, p := pathUser(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	tok, err := a.svc.GetOfflineToken(r.Context(), user)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, offlineTokenResponse{
		User:         string(user),
		OfflineToken: tok.Token.Reveal(),
		CreatedAt:    tok.CreatedAt.UTC().Format(time.RFC3339Nano),
		UpdatedAt:    tok.UpdatedAt.UTC().Format(time.RFC3339Nano),
	})
}

func (a *api) deleteOffline(w http.ResponseWriter, r *http.Request) {
	user, p := pathUser(r)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	if err := a.svc.DeleteOfflineToken(r.Context(), user); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
