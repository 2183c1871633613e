package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

type ctxKey int

const infoKey ctxKey = iota

// requestInfo travels in the request context so that inner handlers (auth)
// can tell the outer log line who the caller was.
type requestInfo struct {
	id     string
	caller *Caller
}

func requestIDFrom(ctx context.Context) string {
	if info, ok := ctx.Value(infoKey).(*requestInfo); ok {
		return info.id
	}
	return ""
}

func setCaller(ctx context.Context, c *Caller) {
	if info, ok := ctx.Value(infoKey).(*requestInfo); ok {
		info.caller = c
	}
}

func callerFrom(ctx context.Context) *Caller {
	if info, ok := ctx.Value(infoKey).(*requestInfo); ok {
		return info.caller
	}
	return nil
}

// validRequestID accepts a caller's X-Request-Id only when it is short and
// plain, so it cannot forge log lines.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe gives every request an id and a server span (continuing the
// caller's W3C trace context), recovers panics into a 500 problem, and
// writes one log line per request: method, route pattern (never the path:
// it holds user ids), status, duration, caller and request id; the same
// (but the request id) goes to the request observer and the span.
func (a *api) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: r.Header.Get("X-Request-Id")}
		if !validRequestID(info.id) {
			info.id = newRequestID()
		}
		w.Header().Set("X-Request-Id", info.id)
		ctx, span := a.startServerSpan(r)
		r = r.WithContext(context.WithValue(ctx, infoKey, info))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The panic value is not logged: it could hold anything.
				a.log.ErrorContext(r.Context(), "handler panicked", "route", r.Pattern)
				if sw.status == 0 {
					a.writeError(sw, r, newProblem(http.StatusInternalServerError, CodeInternal, "internal error"))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			a.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", sw.status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("caller", callerName(info.caller)),
			) // request_id: added by requestIDHandler
			a.requests.ObserveRequest(route, r.Method, sw.status, callerName(info.caller), time.Since(start))
			endServerSpan(span, route, sw.status, callerName(info.caller))
		}()
		next.ServeHTTP(sw, r)
	})
}

func callerName(c *Caller) string {
	if c == nil {
		return ""
	}
	return c.Name
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
		caller, err := a.caller(r)
		if err != nil {
			p := a.problem(r.Context(), err)
			a.recordUnserved(r, domain.AuditAuthenticate, nil, p) // not routed yet: no user, no provider
			a.writeError(w, r, p)
			return
		}
		setCaller(r.Context(), caller)
		next.ServeHTTP(w, r)
	})
}

// caller finds the caller of the request's bearer credential; without one,
// or with one nobody holds, the error is a 401 with its challenge.
func (a *api) caller(r *http.Request) (*Caller, error) {
	scheme, credential, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(credential) == "" {
		return nil, newProblem(http.StatusUnauthorized, CodeUnauthenticated,
			"send Authorization: Bearer <caller credential>").
			withHeader("WWW-Authenticate", `Bearer realm="tokenstore"`)
	}
	caller := a.auth.Authenticate(strings.TrimSpace(credential))
	if caller == nil {
		return nil, newProblem(http.StatusUnauthorized, CodeUnauthenticated, "the credential is not valid").
			withHeader("WWW-Authenticate", `Bearer realm="tokenstore", error="invalid_token"`)
	}
	if err := caller.checkClientCert(r.TLS); err != nil {
		return nil, err
	}
	return caller, nil
}

// underV1 reports whether p is /v1 or below. The router cleans paths (and
// redirects), so callers check the cleaned path too.
func underV1(p string) bool { return p == "/v1" || strings.HasPrefix(p, "/v1/") }

// target is what the request (routed to rt) names in its path, for
// authorize and the audit trail: the value of each parameter rt declares a
// ScopeUser or a ScopeProvider, as sent.
func (rt Route) target(r *http.Request) map[ScopeTarget]string {
	target := map[ScopeTarget]string{}
	for name, t := range rt.Params {
		if t != ScopeNone {
			target[t] = r.PathValue(name)
		}
	}
	return target
}

// canonicalPath refuses a path that http.ServeMux would clean (an empty,
// "." or ".." segment: /v1/users//providers, /v1/users/./offline-token)
// with a 400 naming the path value at fault, where the mux would answer a
// redirect with an empty body that tells an API client nothing (and that
// many clients follow without the PUT's body). It runs after
// authentication, so an unauthenticated caller still gets its 401 first.
// A trailing slash alone is not cleaned: such a path is a 404.
func (a *api) canonicalPath(next http.Handler) http.Handler {
	routes := a.routes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && !isCanonical(p) {
			a.writeError(w, r, uncleanPathProblem(p, routes))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isCanonical reports whether ServeMux leaves the escaped path p as it is:
// it starts with "/" and no segment is "." or "..", or empty other than a
// final one (a trailing slash). Percent-encoded characters are not
// decoded, as the mux does not decode them: %2F and %2E are data.
func isCanonical(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "." || s == ".." || s == "" && i < len(segs)-1 {
			return false
		}
	}
	return true
}

// uncleanPathProblem names the route's path value at fault when p has the
// shape of a route (/v1/users//providers/github/tokens: the user), else the
// path. The value is judged by its own rule (domain.ParseUserID...), which
// refuses empty and dot-segment values.
func uncleanPathProblem(p string, routes []route) *Problem {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for _, rt := range routes {
		pat := strings.Split(strings.TrimPrefix(rt.Path, "/"), "/")
		if len(pat) != len(segs) {
			continue
		}
		field, matches := "", true
		for i, s := range pat {
			name, isWildcard := strings.CutPrefix(s, "{")
			name = strings.TrimSuffix(name, "}")
			switch {
			case !isWildcard && s != segs[i]:
				matches = false
			case isWildcard && field == "" && (segs[i] == "" || segs[i] == "." || segs[i] == ".."):
				field = name
			}
		}
		if !matches || field == "" {
			continue
		}
		var err error
		switch value := segs[slices.Index(pat, "{"+field+"}")]; rt.Params[field] {
		case ScopeUser:
			_, err = domain.ParseUserID(value)
		case ScopeProvider:
			_, err = domain.ParseProvider(value)
		}
		if err != nil {
			return newProblem(http.StatusBadRequest, CodeInvalidRequest, err.Error()).withField(field)
		}
	}
	return newProblem(http.StatusBadRequest, CodeInvalidRequest,
		`path must not contain an empty, "." or ".." segment; send the path as the API document gives it`).withField("path")
}

// requestIDHandler adds the request id to every record logged with a
// request's context, so that any line (the ERROR "request failed" a 500
// body points to included) can be found from the id a client reports.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, rec slog.Record) error {
	if id := requestIDFrom(ctx); id != "" {
		rec = rec.Clone()
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
