package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"
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

// observe gives every request an id, recovers panics into a 500 problem,
// and writes one log line per request: method, route pattern (never the
// path: it holds user ids), status, duration, caller and request id.
func observe(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: r.Header.Get("X-Request-Id")}
		if !validRequestID(info.id) {
			info.id = newRequestID()
		}
		w.Header().Set("X-Request-Id", info.id)
		r = r.WithContext(context.WithValue(r.Context(), infoKey, info))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The panic value is not logged: it could hold anything.
				log.ErrorContext(r.Context(), "handler panicked", "request_id", info.id, "route", r.Pattern)
				if sw.status == 0 {
					writeProblem(sw, r, newProblem(http.StatusInternalServerError, CodeInternal, "internal error"))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", sw.status),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("caller", callerName(info.caller)),
				slog.String("request_id", info.id),
			)
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
