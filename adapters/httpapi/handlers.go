package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// TokenService is what the API serves: the token use cases, as
// *app.TokenService implements them. Errors are the domain's sentinels
// (domain.ErrNotFound, *domain.ValidationError...); writeError maps each to
// its status and code.
type TokenService interface {
	PutAuthTokens(ctx context.Context, t domain.AuthTokens) (app.ProviderStatus, error)
	GetAccessToken(ctx context.Context, user domain.UserID, provider domain.Provider) (app.AccessToken, error)
	DeleteAuthTokens(ctx context.Context, user domain.UserID, provider domain.Provider) error
	ListProviders(ctx context.Context, user domain.UserID) ([]app.ProviderStatus, error)
	PutOfflineToken(ctx context.Context, t domain.OfflineToken) (domain.OfflineToken, error)
	GetOfflineToken(ctx context.Context, user domain.UserID) (domain.OfflineToken, error)
	DeleteOfflineToken(ctx context.Context, user domain.UserID) error
}

// RefusalRecorder is implemented by a TokenService that keeps an audit
// trail (*app.TokenService): the API reports to it every request it
// refuses before the service sees it (401 credential, 403 permission or
// scope).
type RefusalRecorder interface {
	RecordRefusal(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int, code string)
}

// Checker reports whether a dependency is ready to serve (readiness probe).
type Checker interface {
	Check(ctx context.Context) error
}

// ReadinessDetails is implemented by a Checker with facts about a ready
// instance an operator should see (lost log lines): /readyz adds them to
// its 200 answer; they do not make the instance unready.
type ReadinessDetails interface {
	Details() map[string]any
}

// Route is one registered method and path pattern.
type Route struct {
	Method string
	Path   string // Go ServeMux pattern, e.g. /v1/users/{user}/offline-token
}

// handlerFunc is the shape of every handler: decode, call, encode; any
// error is answered by writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	Route
	perm   Permission // empty: no credential needed (health probes only)
	handle handlerFunc
}

type api struct {
	log      *slog.Logger
	svc      TokenService
	auth     *Authenticator
	ready    Checker
	requests RequestObserver
	tracer   trace.Tracer
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

// NewHandler returns the API's http.Handler: every request is observed
// (request id, log line, panics), authenticated under /v1, refused if its
// path is not canonical, routed, and checked against its route's
// permission and its caller's scope before its handler runs. Every line
// it logs for a request carries the request's id. opts add a request
// observer (metrics) and tracing.
func NewHandler(log *slog.Logger, svc TokenService, auth *Authenticator, ready Checker, opts ...Option) http.Handler {
	a := &api{log: slog.New(requestIDHandler{log.Handler()}), svc: svc, auth: auth, ready: ready,
		requests: nopRequestObserver{}, tracer: defaultTracer()}
	for _, o := range opts {
		o(a)
	}
	mux := http.NewServeMux()
	allowed := map[string][]string{} // path -> methods
	for _, rt := range a.routes() {
		mux.Handle(rt.Method+" "+rt.Path, a.serve(rt.perm, rt.handle))
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
	}
	// Known paths with another method: 405 with Allow.
	for path, methods := range allowed {
		mux.Handle(path, a.serve("", methodNotAllowed(methods)))
	}
	mux.Handle("/", a.serve("", notFound))
	return a.observe(a.authenticate(a.canonicalPath(mux)))
}

// serve adapts a handler to net/http: it admits only callers holding perm
// (none needed when empty) whose scope covers the path's user and provider
// (authorize), then answers the handler's error, if any.
func (a *api) serve(perm Permission, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := authorize(callerFrom(r.Context()), perm, pathTarget(r))
		if err != nil {
			a.recordRefusal(r, auditAction(r), err)
		}
		if err == nil && perm != "" {
			err = noQuery(r)
		}
		if err == nil {
			// Who asks, for the audit events of the work done for them.
			ctx := app.WithActor(r.Context(), app.Actor{Caller: callerName(callerFrom(r.Context())), RequestID: requestIDFrom(r.Context())})
			err = h(w, r.WithContext(ctx))
		}
		if err != nil {
			a.writeError(w, r, err)
		}
	})
}

// auditActions name, by route, what a refused request would have done.
var auditActions = map[string]domain.AuditAction{
	"PUT /v1/users/{user}/providers/{provider}/tokens":    domain.AuditPutTokens,
	"GET /v1/users/{user}/providers/{provider}/tokens":    domain.AuditReadAccessToken,
	"DELETE /v1/users/{user}/providers/{provider}/tokens": domain.AuditDeleteTokens,
	"GET /v1/users/{user}/providers":                      domain.AuditListProviders,
	"PUT /v1/users/{user}/offline-token":                  domain.AuditPutOfflineToken,
	"GET /v1/users/{user}/offline-token":                  domain.AuditReadOfflineToken,
	"DELETE /v1/users/{user}/offline-token":               domain.AuditDeleteOfflineToken,
}

// auditAction is the action of a request's route (its pattern is
// "METHOD path").
func auditAction(r *http.Request) domain.AuditAction { return auditActions[r.Pattern] }

// recordRefusal reports a refused request (err a *Problem: 401 or 403) to
// the audit trail, with the caller, if known, and the path's user and
// provider, as sent.
func (a *api) recordRefusal(r *http.Request, action domain.AuditAction, err error) {
	rec, ok := a.svc.(RefusalRecorder)
	var p *Problem
	if !ok || !errors.As(err, &p) {
		return
	}
	target := pathTarget(r)
	ctx := app.WithActor(r.Context(), app.Actor{Caller: callerName(callerFrom(r.Context())), RequestID: requestIDFrom(r.Context())})
	rec.RecordRefusal(ctx, action, domain.UserID(target["user"]), domain.Provider(target["provider"]), p.Status, p.Code)
}

// noQuery refuses a query string on a /v1 route: none takes one, and a
// parameter silently ignored (a filter, a flag) would answer something the
// caller did not ask for.
func noQuery(r *http.Request) error {
	if r.URL.RawQuery == "" && !r.URL.ForceQuery {
		return nil
	}
	field := "query"
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		field = slices.Sorted(maps.Keys(q))[0]
	}
	if len(field) > 64 || !utf8.ValidString(field) || strings.ContainsFunc(field, unicode.IsControl) {
		field = "query"
	}
	detail := field + " is not a known query parameter; this API takes none"
	if field == "query" {
		detail = "query string is not allowed; this API takes no query parameters"
	}
	return newProblem(http.StatusBadRequest, CodeInvalidRequest, detail).withField(field)
}

func methodNotAllowed(methods []string) handlerFunc {
	allow := slices.Clone(methods)
	if slices.Contains(allow, "GET") {
		allow = append(allow, "HEAD")
	}
	slices.Sort(allow)
	list := strings.Join(allow, ", ")
	return func(_ http.ResponseWriter, r *http.Request) error {
		return newProblem(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			fmt.Sprintf("%s is not allowed here; use %s", r.Method, list)).withHeader("Allow", list)
	}
}

func notFound(http.ResponseWriter, *http.Request) error {
	return newProblem(http.StatusNotFound, CodeNotFound, "no such route; see the API document")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *api) healthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := a.ready.Check(r.Context()); err != nil {
		a.log.WarnContext(r.Context(), "not ready", "err", err)
		return newProblem(http.StatusServiceUnavailable, CodeUnavailable, "not ready: "+err.Error()).retryAfter(5)
	}
	body := map[string]any{"status": "ready"}
	if d, ok := a.ready.(ReadinessDetails); ok {
		for k, v := range d.Details() {
			body[k] = v
		}
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

func (a *api) putTokens(w http.ResponseWriter, r *http.Request) error {
	tokens, err := decodeAuthTokens(w, r)
	if err != nil {
		return err
	}
	status, err := a.svc.PutAuthTokens(r.Context(), tokens)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusResponse(status))
	return nil
}

func (a *api) getTokens(w http.ResponseWriter, r *http.Request) error {
	user, provider, err := pathUserProvider(r)
	if err != nil {
		return err
	}
	tok, err := a.svc.GetAccessToken(r.Context(), user, provider)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accessTokenResponse(tok))
	return nil
}

func (a *api) deleteTokens(w http.ResponseWriter, r *http.Request) error {
	user, provider, err := pathUserProvider(r)
	if err != nil {
		return err
	}
	if err := a.svc.DeleteAuthTokens(r.Context(), user, provider); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) listProviders(w http.ResponseWriter, r *http.Request) error {
	user, err := pathUser(r)
	if err != nil {
		return err
	}
	list, err := a.svc.ListProviders(r.Context(), user)
	if err != nil {
		return err
	}
	// Only what the caller may see: a provider outside its scope is not
	// even named.
	scope := callerFrom(r.Context()).Scope
	visible := make([]app.ProviderStatus, 0, len(list))
	for _, p := range list {
		if scope.AllowsProvider(string(p.Provider)) {
			visible = append(visible, p)
		}
	}
	writeJSON(w, http.StatusOK, providersResponse(user, visible))
	return nil
}

func (a *api) putOffline(w http.ResponseWriter, r *http.Request) error {
	tok, err := decodeOfflineToken(w, r)
	if err != nil {
		return err
	}
	stored, err := a.svc.PutOfflineToken(r.Context(), tok)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, offlineTokenResponse(tok.User, stored, false))
	return nil
}

func (a *api) getOffline(w http.ResponseWriter, r *http.Request) error {
	user, err := pathUser(r)
	if err != nil {
		return err
	}
	tok, err := a.svc.GetOfflineToken(r.Context(), user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, offlineTokenResponse(user, tok, true))
	return nil
}

func (a *api) deleteOffline(w http.ResponseWriter, r *http.Request) error {
	user, err := pathUser(r)
	if err != nil {
		return err
	}
	if err := a.svc.DeleteOfflineToken(r.Context(), user); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
