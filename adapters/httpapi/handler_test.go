package httpapi_test

// The request-level behaviour of the API, on NewHandler with a fake
// TokenService: no database, no listener. tests/api proves the wired system.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// fakeTokens records what the handlers asked and answers what the test set.
// Handlers run on the goroutine that calls ServeHTTP, so it needs no lock.
type fakeTokens struct {
	calls  []string
	err    error // every use case fails with it when set
	panics bool  // every use case panics when set

	status  app.ProviderStatus   // PutAuthTokens' answer
	access  app.AccessToken      // GetAccessToken's answer
	list    []app.ProviderStatus // ListProviders' answer
	offline domain.OfflineToken  // PutOfflineToken's and GetOfflineToken's answer
	events  []domain.Event       // Events' answer

	gotFilter domain.EventFilter
	gotAfter  domain.EventCursor
	gotLimit  int
	gotWait   time.Duration

	gotTokens   domain.AuthTokens
	gotOffline  domain.OfflineToken
	gotUser     domain.UserID
	gotProvider domain.Provider

	// unserved are the requests reported to RecordUnserved, as
	// "action user provider status code caller request-id".
	unserved []string
}

func (f *fakeTokens) RecordUnserved(ctx context.Context, action domain.AuditAction, user domain.UserID, provider domain.Provider, status int, code string) {
	actor := app.ActorFrom(ctx)
	f.unserved = append(f.unserved, fmt.Sprintf("%s %s %s %d %s %s %s", action, user, provider, status, code, actor.Caller, actor.RequestID))
}

func (f *fakeTokens) call(name string, user domain.UserID, provider domain.Provider) error {
	f.calls = append(f.calls, name)
	f.gotUser, f.gotProvider = user, provider
	if f.panics {
		panic("fake " + name + " panicked with secret-panic-value")
	}
	return f.err
}

func (f *fakeTokens) PutAuthTokens(_ context.Context, t domain.AuthTokens) (app.ProviderStatus, error) {
	f.gotTokens = t
	return f.status, f.call("PutAuthTokens", t.User, t.Provider)
}

func (f *fakeTokens) GetAccessToken(_ context.Context, user domain.UserID, provider domain.Provider) (app.AccessToken, error) {
	return f.access, f.call("GetAccessToken", user, provider)
}

func (f *fakeTokens) DeleteAuthTokens(_ context.Context, user domain.UserID, provider domain.Provider) error {
	return f.call("DeleteAuthTokens", user, provider)
}

func (f *fakeTokens) ListProviders(_ context.Context, user domain.UserID) ([]app.ProviderStatus, error) {
	return f.list, f.call("ListProviders", user, "")
}

func (f *fakeTokens) PutOfflineToken(_ context.Context, t domain.OfflineToken) (domain.OfflineToken, error) {
	f.gotOffline = t
	return f.offline, f.call("PutOfflineToken", t.User, "")
}

func (f *fakeTokens) GetOfflineToken(_ context.Context, user domain.UserID) (domain.OfflineToken, error) {
	return f.offline, f.call("GetOfflineToken", user, "")
}

func (f *fakeTokens) DeleteOfflineToken(_ context.Context, user domain.UserID) error {
	return f.call("DeleteOfflineToken", user, "")
}

// Events implements httpapi.EventFeed: it answers f.events, and the
// cursor of the last one (after when none).
func (f *fakeTokens) Events(_ context.Context, filter domain.EventFilter, after domain.EventCursor, limit int, wait time.Duration) ([]domain.Event, domain.EventCursor, error) {
	f.gotFilter, f.gotAfter, f.gotLimit, f.gotWait = filter, after, limit, wait
	next := after
	if len(f.events) > 0 {
		next = f.events[len(f.events)-1].Cursor
	}
	return f.events, next, f.call("Events", "", "")
}

// checker is a readiness probe answering err.
type checker struct{ err error }

func (c *checker) Check(context.Context) error { return c.err }

// callerAll holds every permission; callerWithout(p) holds all but p.
const callerAll = "all"

func callerWithout(p httpapi.Permission) string { return "no-" + string(p) }

// apiTest is one handler over a fake service, with its callers and log.
type apiTest struct {
	t     *testing.T
	h     http.Handler
	svc   *fakeTokens
	ready *checker
	creds map[string]string // caller name -> bearer credential
	logs  *testlog.Buffer
}

// testCallers are callerAll, one callerWithout(p) for every permission
// p and the scopedCallers, with their bearer credentials by name; made once, used by every setup.
var testCallers = sync.OnceValues(func() ([]httpapi.Caller, map[string]string) {
	creds := map[string]string{}
	var callers []httpapi.Caller
	add := func(name string, perms []httpapi.Permission) {
		cred, hash, err := httpapi.NewCredential()
		if err != nil {
			panic(err)
		}
		h, err := httpapi.ParseCredentialHash(hash)
		if err != nil {
			panic(err)
		}
		callers = append(callers, httpapi.Caller{Name: name, CredentialHash: h, Permissions: perms})
		creds[name] = cred
	}
	add(callerAll, httpapi.AllPermissions)
	for _, p := range httpapi.AllPermissions {
		add(callerWithout(p), slices.DeleteFunc(slices.Clone(httpapi.AllPermissions), func(o httpapi.Permission) bool { return o == p }))
	}
	for name, scope := range scopedCallers {
		add(name, scope.perms)
		callers[len(callers)-1].Scope = scope.scope
	}
	return callers, creds
})

// setup builds the handler over a fresh fake service, with testCallers.
func setup(t *testing.T) *apiTest {
	t.Helper()
	callers, creds := testCallers()
	a := &apiTest{t: t, svc: &fakeTokens{}, ready: &checker{}, creds: creds, logs: &testlog.Buffer{}}
	auth, err := httpapi.NewAuthenticator(callers)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a.h = httpapi.NewHandler(log, a.svc, auth, a.ready, httpapi.WithEventFeed(a.svc, 20*time.Second))
	return a
}

// send runs one request through the handler. target may hold %-escapes;
// header values are set as given.
func (a *apiTest) send(method, target string, header map[string]string, body string) *httptest.ResponseRecorder {
	a.t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	return rec
}

// do sends a request as caller ("" for none) with body: nil for none, a
// string sent as is, or a value encoded as JSON; a body goes with
// Content-Type: application/json.
func (a *apiTest) do(method, target, caller string, body any) *httptest.ResponseRecorder {
	a.t.Helper()
	h := map[string]string{}
	if caller != "" {
		h["Authorization"] = a.bearer(caller)
	}
	var raw string
	switch b := body.(type) {
	case nil:
	case string:
		raw = b
		h["Content-Type"] = "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		raw = string(j)
		h["Content-Type"] = "application/json"
	}
	return a.send(method, target, h, raw)
}

// bearer is the Authorization header of caller.
func (a *apiTest) bearer(caller string) string {
	cred, ok := a.creds[caller]
	if !ok {
		a.t.Fatalf("no caller %q", caller)
	}
	return "Bearer " + cred
}

// wantStatus fails t unless rec has status code want.
func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status %d, want %d; body %s", rec.Code, want, rec.Body)
	}
}

// wantProblem checks that rec is a problem document with status, code and
// field ("" means: no field) carrying the response's request id, not to be
// cached, and returns it.
func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, code, field string) httpapi.Problem {
	t.Helper()
	wantStatus(t, rec, status)
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, rec.Body)
	}
	var p httpapi.Problem
	dec := json.NewDecoder(strings.NewReader(rec.Body.String()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %s: %v", rec.Body, err)
	}
	if p.Code != code || p.Field != field || p.Status != status {
		t.Errorf("code %q field %q status %d, want %q %q %d; body %s", p.Code, p.Field, p.Status, code, field, status, rec.Body)
	}
	if want := "urn:tokenstore:problem:" + code; p.Type != want {
		t.Errorf("type = %q, want %q", p.Type, want)
	}
	if p.Title != http.StatusText(status) {
		t.Errorf("title = %q, want %q", p.Title, http.StatusText(status))
	}
	if id := rec.Header().Get("X-Request-Id"); id == "" || p.RequestID != id {
		t.Errorf("request_id = %q, X-Request-Id header = %q; want equal and non-empty", p.RequestID, id)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	return p
}

// wantJSON checks a JSON answer byte for byte: status, headers and body.
func wantJSON(t *testing.T, rec *httptest.ResponseRecorder, status int, body string) {
	t.Helper()
	wantStatus(t, rec, status)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if got := rec.Body.String(); got != body+"\n" {
		t.Errorf("body\n got %s\nwant %s", got, body)
	}
}

// notIn fails t if any secret appears in text (where describes text).
func notIn(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains %q: %s", where, s, text)
		}
	}
}

// logLine is one JSON log record.
type logLine map[string]any

// logLines parses everything a logged so far.
func (a *apiTest) logLines() []logLine {
	a.t.Helper()
	var out []logLine
	for _, raw := range strings.Split(strings.TrimSpace(a.logs.String()), "\n") {
		if raw == "" {
			continue
		}
		var l logLine
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			a.t.Fatalf("log line is not JSON: %q: %v", raw, err)
		}
		out = append(out, l)
	}
	return out
}

// logged returns the log records with message msg.
func (a *apiTest) logged(msg string) []logLine {
	a.t.Helper()
	var out []logLine
	for _, l := range a.logLines() {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// v1Routes lists the API's /v1 routes.
func v1Routes(t *testing.T) []httpapi.Route {
	t.Helper()
	var out []httpapi.Route
	for _, r := range httpapi.Routes() {
		if strings.HasPrefix(r.Path, "/v1/") {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		t.Fatal("httpapi.Routes() has no /v1 route")
	}
	return out
}

// concretePath substitutes valid values for a route's path parameters.
func concretePath(t *testing.T, pattern string) string {
	t.Helper()
	path := strings.NewReplacer("{user}", "matrix-user", "{provider}", "gitlab").Replace(pattern)
	if strings.ContainsAny(path, "{}") {
		t.Fatalf("route %s has a path parameter this test does not know; add a valid value for it", pattern)
	}
	return path
}

// validBody returns a valid request body for a route, "" for none.
func validBody(t *testing.T, r httpapi.Route) string {
	t.Helper()
	if r.Method != "PUT" && r.Method != "POST" && r.Method != "PATCH" {
		return ""
	}
	switch {
	case strings.HasSuffix(r.Path, "/tokens"):
		return `{"access_token":"matrix-at","refresh_token":"matrix-rt","expires_in":3600}`
	case strings.HasSuffix(r.Path, "/offline-token"):
		return `{"offline_token":"matrix-offline"}`
	}
	t.Fatalf("route %s %s takes a body this test does not know; add a valid one", r.Method, r.Path)
	return ""
}

func tokensPath(user, provider string) string {
	return "/v1/users/" + user + "/providers/" + provider + "/tokens"
}

func providersPath(user string) string { return "/v1/users/" + user + "/providers" }

func offlinePath(user string) string { return "/v1/users/" + user + "/offline-token" }
