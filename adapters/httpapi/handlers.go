package httpapi

import (
	"context"
	"encoding/json"
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

// UnservedRecorder is implemented by a TokenService that keeps an audit
// trail (*app.TokenService): the API reports to it every request under /v1
// that ends in an error, with the problem's status and code: refused
// before the service sees it (401 credential, 403 permission or scope) or
// failed (400, 404, 409, 503...). A request that succeeds is recorded by
// the service itself.
type UnservedRecorder interface {
	RecordUnserved(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int, code string)
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
	// Params declares, for each of Path's {name} parameters, what it names
	// for a caller's scope. Every parameter is declared (NewHandler
	// refuses a route that leaves one out, and a test over Routes() checks
	// the table), so a new parameter cannot reach a handler without
	// someone deciding whether a scope limits it.
	Params map[string]ScopeTarget
	// Query lists the query parameters the route takes (each at most
	// once); any other, on any /v1 route, is refused with 400 naming it.
	Query []string
}

// ScopeTarget is what a path parameter names, as far as a caller's Scope
// is concerned.
type ScopeTarget string

// The scope targets a path parameter can be declared as.
const (
	// ScopeUser: a user id, checked against Scope.UserPrefix, and the
	// user of the route's audit events.
	ScopeUser ScopeTarget = "user"
	// ScopeProvider: a provider, checked against Scope.Providers, and the
	// provider of the route's audit events.
	ScopeProvider ScopeTarget = "provider"
	// ScopeNone: a value no scope limits (a caller may name any); the
	// route table says why.
	ScopeNone ScopeTarget = "none"
)

// checkParams refuses a route whose Params do not declare each of its path
// parameters exactly (a missing one, one the path lacks, an unknown
// target), or that names more than one user or one provider: an audit
// event and a scope check know one of each.
func (r Route) checkParams() error {
	var names []string
	for _, seg := range strings.Split(r.Path, "/") {
		name, ok := strings.CutPrefix(seg, "{")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")
		if name == "$" {
			continue
		}
		names = append(names, name)
		if _, declared := r.Params[name]; !declared {
			return fmt.Errorf("route %s %s: path parameter {%s} has no scope target: declare it in Params as ScopeUser, ScopeProvider or ScopeNone", r.Method, r.Path, name)
		}
	}
	seen := map[ScopeTarget]string{}
	for _, name := range slices.Sorted(maps.Keys(r.Params)) {
		target := r.Params[name]
		switch {
		case !slices.Contains(names, name):
			return fmt.Errorf("route %s %s: Params declares {%s}, which the path does not have", r.Method, r.Path, name)
		case target != ScopeUser && target != ScopeProvider && target != ScopeNone:
			return fmt.Errorf("route %s %s: {%s} has the unknown scope target %q", r.Method, r.Path, name, target)
		case target != ScopeNone && seen[target] != "":
			return fmt.Errorf("route %s %s: {%s} and {%s} both name a %s; a route names at most one", r.Method, r.Path, seen[target], name, target)
		}
		seen[target] = name
	}
	return nil
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
	events   *eventFeed // nil: the feed answers 503
}

func (a *api) routes() []route {
	const tokens, providers, offline = "/v1/users/{user}/providers/{provider}/tokens", "/v1/users/{user}/providers", "/v1/users/{user}/offline-token"
	userProvider := map[string]ScopeTarget{"user": ScopeUser, "provider": ScopeProvider}
	user := map[string]ScopeTarget{"user": ScopeUser}
	return []route{
		{Route{"GET", "/healthz", nil, nil}, "", a.healthz},
		{Route{"GET", "/readyz", nil, nil}, "", a.readyz},
		{Route{"GET", "/openapi.yaml", nil, nil}, "", a.openapi},
		{Route{"PUT", tokens, userProvider, nil}, PermTokensWrite, a.putTokens},
		{Route{"GET", tokens, userProvider, nil}, PermTokensRead, a.getTokens},
		{Route{"DELETE", tokens, userProvider, nil}, PermTokensDelete, a.deleteTokens},
		{Route{"GET", providers, user, nil}, PermTokensRead, a.listProviders},
		{Route{"PUT", offline, user, nil}, PermOfflineWrite, a.putOffline},
		{Route{"GET", offline, user, nil}, PermOfflineRead, a.getOffline},
		{Route{"DELETE", offline, user, nil}, PermOfflineDelete, a.deleteOffline},
		{Route{"GET", "/v1/events", nil, eventQuery}, PermEventsRead, a.listEvents},
	}
}

// Routes lists the API's routes, for checking them against openapi.yaml
// and their parameters' scope targets.
func Routes() []Route {
	var out []Route
	for _, r := range (&api{}).routes() {
		r.Params, r.Query = maps.Clone(r.Params), slices.Clone(r.Query)
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
		if err := rt.checkParams(); err != nil {
			panic(err) // a programming error, as ServeMux panics on a bad pattern
		}
		mux.Handle(rt.Method+" "+rt.Path, a.serve(rt.Route, rt.perm, rt.handle))
		allowed[rt.Path] = append(allowed[rt.Path], rt.Method)
	}
	// Known paths with another method: 405 with Allow.
	for path, methods := range allowed {
		mux.Handle(path, a.serve(Route{}, "", methodNotAllowed(methods)))
	}
	mux.Handle("/", a.serve(Route{}, "", notFound))
	return a.observe(a.authenticate(a.canonicalPath(mux)))
}

// serve adapts a handler to net/http: it admits only callers holding perm
// (none needed when empty) whose scope covers the user and provider rt's
// path names (authorize), then answers the handler's error, if any. Every
// error of a route with an audit action (a refusal, a request check, the
// service's) is recorded with the status and code answered.
func (a *api) serve(rt Route, perm Permission, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := rt.target(r)
		err := authorize(callerFrom(r.Context()), perm, target)
		if err == nil && perm != "" {
			err = checkQuery(r, rt.Query)
		}
		if err == nil {
			// Who asks, for the audit events of the work done for them.
			ctx := app.WithActor(r.Context(), app.Actor{Caller: callerName(callerFrom(r.Context())), RequestID: requestIDFrom(r.Context())})
			err = h(w, r.WithContext(ctx))
		}
		if err != nil {
			p := a.problem(r.Context(), err)
			if action := auditAction(r); action != "" {
				a.recordUnserved(r, action, target, p)
			}
			a.writeError(w, r, p)
		}
	})
}

// auditActions name, by route, what a request does (or, refused or
// failed, would have done).
var auditActions = map[string]domain.AuditAction{
	"PUT /v1/users/{user}/providers/{provider}/tokens":    domain.AuditPutTokens,
	"GET /v1/users/{user}/providers/{provider}/tokens":    domain.AuditReadAccessToken,
	"DELETE /v1/users/{user}/providers/{provider}/tokens": domain.AuditDeleteTokens,
	"GET /v1/users/{user}/providers":                      domain.AuditListProviders,
	"PUT /v1/users/{user}/offline-token":                  domain.AuditPutOfflineToken,
	"GET /v1/users/{user}/offline-token":                  domain.AuditReadOfflineToken,
	"DELETE /v1/users/{user}/offline-token":               domain.AuditDeleteOfflineToken,
	"GET /v1/events":                                      domain.AuditReadEvents,
}

// auditAction is the action of a request's route (its pattern is
// "METHOD path").
func auditAction(r *http.Request) domain.AuditAction { return auditActions[r.Pattern] }

// recordUnserved reports a request answered with the problem p to the
// audit trail, with the caller, if known, and the user and provider its
// route names (target; nil before routing), as sent.
func (a *api) recordUnserved(r *http.Request, action domain.AuditAction, target map[ScopeTarget]string, p *Problem) {
	rec, ok := a.svc.(UnservedRecorder)
	if !ok {
		return
	}
	ctx := app.WithActor(r.Context(), app.Actor{Caller: callerName(callerFrom(r.Context())), RequestID: requestIDFrom(r.Context())})
	rec.RecordUnserved(ctx, action, domain.UserID(target[ScopeUser]), domain.Provider(target[ScopeProvider]), p.Status, p.Code)
}

// checkQuery refuses a query string on a /v1 route that takes none, and
// on the others any parameter but allowed, or one given twice: a parameter
// silently ignored (a filter, a flag) would answer something the caller
// did not ask for.
func checkQuery(r *http.Request, allowed []string) error {
	if r.URL.RawQuery == "" && !r.URL.ForceQuery {
		return nil
	}
	field := "query"
	if q, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(q) > 0 {
		unknown := slices.DeleteFunc(slices.Sorted(maps.Keys(q)), func(name string) bool { return slices.Contains(allowed, name) })
		if len(unknown) == 0 {
			for _, name := range slices.Sorted(maps.Keys(q)) {
				if len(q[name]) > 1 {
					return newProblem(http.StatusBadRequest, CodeInvalidRequest, name+" is given more than once").withField(name)
				}
			}
			return nil
		}
		field = unknown[0]
	}
	if len(field) > 64 || !utf8.ValidString(field) || strings.ContainsFunc(field, unicode.IsControl) {
		field = "query"
	}
	takes := "this route takes none"
	if len(allowed) > 0 {
		takes = "this route takes " + strings.Join(allowed, ", ")
	}
	detail := field + " is not a known query parameter; " + takes
	if field == "query" {
		detail = "query string is not allowed here; " + takes
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
