package client

// The client against httptest servers: error mapping, Retry-After and
// retries, paths, and the credential kept out of every output. Waits are
// recorded, not slept (the sleep field), so no test depends on timing.
// tests/api runs the client against the real server.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const testCredential = "tsc_TESTcredentialTESTcredentialTESTcredential1"

// server is an httptest server whose handler answers from a script, one
// entry per request (the last one repeats), and records what it received.
type server struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	script []answer
	got    []received
}

type answer struct {
	status int
	header map[string]string
	body   string
}

type received struct {
	method, path, escapedPath, user, provider, authorization, requestID, body string
}

func problemAnswer(status int, code, field string, header map[string]string) answer {
	f := ""
	if field != "" {
		f = fmt.Sprintf(`,"field":%q`, field)
	}
	return answer{status: status, header: merge(header, map[string]string{"Content-Type": "application/problem+json", "X-Request-Id": "rid-1"}),
		body: fmt.Sprintf(`{"type":"urn:tokenstore:problem:%s","title":%q,"status":%d,"detail":"what went wrong: %s","code":%q%s,"request_id":"rid-1"}`,
			code, http.StatusText(status), status, code, code, f)}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range b {
		out[k] = v
	}
	for k, v := range a {
		out[k] = v
	}
	return out
}

func newServer(t *testing.T, script ...answer) *server {
	t.Helper()
	s := &server{t: t, script: script}
	mux := http.NewServeMux()
	for _, p := range []string{
		"/v1/users/{user}/providers/{provider}/tokens",
		"/v1/users/{user}/providers",
		"/v1/users/{user}/offline-token",
	} {
		mux.HandleFunc(p, s.handle)
		mux.HandleFunc("/prefix"+p, s.handle)
	}
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.got = append(s.got, received{r.Method, r.URL.Path, r.URL.EscapedPath(), r.PathValue("user"), r.PathValue("provider"),
		r.Header.Get("Authorization"), r.Header.Get("X-Request-Id"), string(body)})
	a := s.script[min(len(s.got), len(s.script))-1]
	s.mu.Unlock()
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

func (s *server) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// newClient returns a client of s whose waits are recorded in *waits. It
// talks through s's own transport: closing an httptest server also closes
// the idle connections of http.DefaultTransport, which would break the
// parallel tests using it ("CloseIdleConnections called").
func newClient(t *testing.T, s *server, waits *[]time.Duration, opts ...Option) *Client {
	t.Helper()
	c, err := New(s.srv.URL, testCredential, append([]Option{WithHTTPClient(s.srv.Client())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		*waits = append(*waits, d)
		return ctx.Err()
	}
	return c
}

var ok200 = answer{status: 200, header: map[string]string{"Content-Type": "application/json"},
	body: `{"user":"alice","provider":"gitlab","access_token":"glpat-x","access_token_expires_at":null,"member_from_a_later_version":1}`}

// TestProblemsBecomeTypedErrors: every problem code of the API document is
// its sentinel under errors.Is (and no other sentinel), and errors.As gives
// the whole problem.
func TestProblemsBecomeTypedErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status   int
		code     string
		sentinel error
	}{
		{400, "invalid_request", ErrInvalidRequest},
		{401, "unauthenticated", ErrUnauthenticated},
		{403, "forbidden", ErrForbidden},
		{403, "out_of_scope", ErrOutOfScope},
		{404, "not_found", ErrNotFound},
		{405, "method_not_allowed", ErrMethodNotAllowed},
		{409, "token_expired", ErrTokenExpired},
		{409, "reauth_required", ErrReauthRequired},
		{409, "conflict", ErrConflict},
		{415, "unsupported_media_type", ErrUnsupportedMediaType},
		{500, "internal", ErrInternal},
		{500, "integrity_error", ErrIntegrity},
		{503, "unavailable", ErrUnavailable},
	}
	if len(tests) != len(sentinels) {
		t.Fatalf("%d cases for %d sentinels: test every code", len(tests), len(sentinels))
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, problemAnswer(tc.status, tc.code, "provider", map[string]string{"Retry-After": "1"}))
			var waits []time.Duration
			c := newClient(t, s, &waits, WithMaxAttempts(1))
			_, err := c.GetAccessToken(context.Background(), "alice", "gitlab")
			for code, sentinel := range sentinels {
				if got := errors.Is(err, sentinel); got != (code == tc.code) {
					t.Errorf("errors.Is(err, sentinel of %s) = %v; err %v", code, got, err)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("errors.As(%v, *Error) is false", err)
			}
			want := Error{Op: "GetAccessToken", StatusCode: tc.status, Code: tc.code, Title: http.StatusText(tc.status),
				Detail: "what went wrong: " + tc.code, Field: "provider", RequestID: "rid-1", Attempts: 1}
			if tc.status == 503 {
				want.RetryAfter = time.Second
			}
			if *e != want {
				t.Errorf("error = %+v, want %+v", *e, want)
			}
			for _, part := range []string{"GetAccessToken", fmt.Sprint(tc.status), tc.code, "field provider", "request_id rid-1"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%q does not say %q", err.Error(), part)
				}
			}
		})
	}
}

// TestAnswerThatIsNoProblem: a proxy's error page is not quoted (it could
// echo anything) and matches the sentinel of its status where one fits.
func TestAnswerThatIsNoProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status   int
		sentinel error
	}{
		{502, nil}, {503, ErrUnavailable}, {404, ErrNotFound}, {401, ErrUnauthenticated}, {403, ErrForbidden},
	}
	for _, tc := range tests {
		s := newServer(t, answer{status: tc.status, header: map[string]string{"Content-Type": "text/html"}, body: "<html>proxy echo SECRET-IN-PAGE</html>"})
		var waits []time.Duration
		_, err := newClient(t, s, &waits, WithMaxAttempts(1)).ListProviders(context.Background(), "alice")
		var e *Error
		if !errors.As(err, &e) || e.StatusCode != tc.status || e.Code != "" {
			t.Fatalf("%d: err %#v, want *Error with the status and no code", tc.status, err)
		}
		if strings.Contains(err.Error(), "SECRET-IN-PAGE") {
			t.Errorf("%d: error quotes the page: %v", tc.status, err)
		}
		for _, sentinel := range sentinels {
			if got := errors.Is(err, sentinel); got != (sentinel == tc.sentinel) {
				t.Errorf("%d: errors.Is(err, %v) = %v", tc.status, sentinel, got)
			}
		}
	}
}

// TestRetryAfterIsHonoured: a 503 (or 429) is sent again after the server's
// Retry-After, up to the attempts allowed; the final error says how many.
func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	unavailable := problemAnswer(503, "unavailable", "", map[string]string{"Retry-After": "2"})
	tooMany := answer{status: 429, header: map[string]string{"Retry-After": "3"}}
	tests := []struct {
		name      string
		script    []answer
		opts      []Option
		ctx       func() (context.Context, context.CancelFunc)
		wantErr   error
		waits     []time.Duration
		attempts  int
		errorTurn int // Error.Attempts when wantErr
	}{
		{"503 twice, then 200", []answer{unavailable, unavailable, ok200}, nil, nil, nil, []time.Duration{2 * time.Second, 2 * time.Second}, 3, 0},
		{"429 then 200", []answer{tooMany, ok200}, nil, nil, nil, []time.Duration{3 * time.Second}, 2, 0},
		{"503 until the attempts are spent", []answer{unavailable}, nil, nil, ErrUnavailable, []time.Duration{2 * time.Second, 2 * time.Second}, 3, 3},
		{"max attempts 5", []answer{unavailable}, []Option{WithMaxAttempts(5)}, nil, ErrUnavailable, slices.Repeat([]time.Duration{2 * time.Second}, 4), 5, 5},
		{"max attempts 1: no retry", []answer{unavailable, ok200}, []Option{WithMaxAttempts(1)}, nil, ErrUnavailable, nil, 1, 1},
		{"Retry-After longer than the longest wait: at once", []answer{unavailable, ok200}, []Option{WithMaxRetryDelay(time.Second)}, nil, ErrUnavailable, nil, 1, 1},
		{"no Retry-After: a second", []answer{{status: 503}, ok200}, nil, nil, nil, []time.Duration{time.Second}, 2, 0},
		{"HTTP-date Retry-After", []answer{{status: 503, header: map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, ok200},
			[]Option{WithMaxRetryDelay(2 * time.Hour)}, nil, nil, nil, 2, 0}, // waits checked below
		{"deadline before the Retry-After: at once", []answer{unavailable, ok200}, nil,
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), time.Second)
			},
			ErrUnavailable, nil, 1, 1},
		{"other errors are not retried", []answer{problemAnswer(409, "reauth_required", "", nil), ok200}, nil, nil, ErrReauthRequired, nil, 1, 1},
		{"500 is not retried", []answer{problemAnswer(500, "internal", "", nil), ok200}, nil, nil, ErrInternal, nil, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, tc.script...)
			var waits []time.Duration
			c := newClient(t, s, &waits, tc.opts...)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			tok, err := c.GetAccessToken(ctx, "alice", "gitlab")
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && tok.AccessToken != "glpat-x" {
				t.Errorf("token %+v", tok)
			}
			var e *Error
			if tc.wantErr != nil && (!errors.As(err, &e) || e.Attempts != tc.errorTurn) {
				t.Errorf("error %#v, want Attempts %d", err, tc.errorTurn)
			}
			if n := len(s.requests()); n != tc.attempts {
				t.Errorf("%d requests, want %d", n, tc.attempts)
			}
			if tc.waits != nil || len(waits) > 0 && !strings.HasPrefix(tc.name, "HTTP-date") {
				if !slices.Equal(waits, tc.waits) {
					t.Errorf("waits %v, want %v", waits, tc.waits)
				}
			}
			if strings.HasPrefix(tc.name, "HTTP-date") && (len(waits) != 1 || waits[0] < 59*time.Minute || waits[0] > time.Hour) {
				t.Errorf("waits %v, want about an hour", waits)
			}
		})
	}
}

// TestRetryWaitEndsWithTheContext: cancelling the context during the wait
// returns at once with both the server's error and the context's.
func TestRetryWaitEndsWithTheContext(t *testing.T) {
	t.Parallel()
	s := newServer(t, problemAnswer(503, "unavailable", "", map[string]string{"Retry-After": "20"}), ok200)
	c, err := New(s.srv.URL, testCredential, WithHTTPClient(s.srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.sleep = func(ctx context.Context, d time.Duration) error {
		cancel() // the caller gives up while the client waits
		return sleep(ctx, d)
	}
	_, err = c.GetAccessToken(ctx, "alice", "gitlab")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrUnavailable and context.Canceled", err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// TestWritesRetried: a PUT is sent again with the same body; a DELETE sent
// again that finds nothing has done what was asked, but a first 404 is
// ErrNotFound.
func TestWritesRetried(t *testing.T) {
	t.Parallel()
	unavailable := problemAnswer(503, "unavailable", "", map[string]string{"Retry-After": "1"})
	t.Run("PUT", func(t *testing.T) {
		t.Parallel()
		status := answer{status: 200, header: map[string]string{"Content-Type": "application/json"},
			body: `{"provider":"gitlab","state":"valid","access_token_expires_at":null,"refresh_token_expires_at":null,"has_refresh_token":true,"refresh_error":null,"ambiguous_retries":0,"updated_at":"2026-01-02T03:04:05Z"}`}
		s := newServer(t, unavailable, status)
		var waits []time.Duration
		expiresIn := int64(3600)
		refresh := "glrt-x"
		st, err := newClient(t, s, &waits).PutTokens(context.Background(), "alice", "gitlab", PutTokensRequest{AccessToken: "glpat-x", RefreshToken: &refresh, ExpiresIn: &expiresIn})
		if err != nil || st.State != StateValid || !st.HasRefreshToken || st.UpdatedAt.IsZero() {
			t.Fatalf("PutTokens = %+v, %v", st, err)
		}
		got := s.requests()
		want := `{"access_token":"glpat-x","expires_in":3600,"refresh_token":"glrt-x"}`
		if len(got) != 2 || got[0].body != want || got[1].body != want || got[1].method != "PUT" {
			t.Errorf("requests %+v, want the same PUT body %s twice", got, want)
		}
	})
	t.Run("DELETE 503 then 404", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, unavailable, problemAnswer(404, "not_found", "", nil))
		var waits []time.Duration
		if err := newClient(t, s, &waits).DeleteTokens(context.Background(), "alice", "gitlab"); err != nil {
			t.Errorf("DeleteTokens = %v, want nil (an earlier attempt may have deleted it)", err)
		}
	})
	t.Run("DELETE 404 at once", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, problemAnswer(404, "not_found", "", nil))
		var waits []time.Duration
		if err := newClient(t, s, &waits).DeleteOfflineToken(context.Background(), "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteOfflineToken = %v, want ErrNotFound", err)
		}
	})
}

// TestEveryMethod: each method sends its method and path with the
// credential and decodes the answer.
func TestEveryMethod(t *testing.T) {
	t.Parallel()
	json := func(body string) answer {
		return answer{status: 200, header: map[string]string{"Content-Type": "application/json"}, body: body}
	}
	offline := json(`{"user":"alice","offline_token":"off-x","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00Z"}`)
	tests := []struct {
		name, method, path, body string
		answer                   answer
		call                     func(c *Client) (any, error)
		check                    func(v any) bool
	}{
		{"PutTokens", "PUT", "/v1/users/alice/providers/gitlab/tokens", `{"access_token":"glpat-x"}`,
			json(`{"provider":"gitlab","state":"expiring","access_token_expires_at":"2026-01-02T03:04:05Z","refresh_token_expires_at":null,"has_refresh_token":false,"refresh_error":null,"ambiguous_retries":0,"updated_at":"2026-01-02T03:04:05Z"}`),
			func(c *Client) (any, error) {
				return c.PutTokens(context.Background(), "alice", "gitlab", PutTokensRequest{AccessToken: "glpat-x"})
			},
			func(v any) bool {
				s := v.(ProviderStatus)
				return s.State == StateExpiring && s.AccessTokenExpiresAt != nil
			}},
		{"GetAccessToken", "GET", "/v1/users/alice/providers/gitlab/tokens", "", ok200,
			func(c *Client) (any, error) { return c.GetAccessToken(context.Background(), "alice", "gitlab") },
			func(v any) bool {
				a := v.(AccessToken)
				return a.AccessToken == "glpat-x" && a.AccessTokenExpiresAt == nil
			}},
		{"DeleteTokens", "DELETE", "/v1/users/alice/providers/gitlab/tokens", "", answer{status: 204},
			func(c *Client) (any, error) { return nil, c.DeleteTokens(context.Background(), "alice", "gitlab") },
			func(any) bool { return true }},
		{"ListProviders", "GET", "/v1/users/alice/providers", "",
			json(`{"user":"alice","providers":[{"provider":"github","state":"reauth_required","access_token_expires_at":null,"refresh_token_expires_at":null,"has_refresh_token":false,"refresh_error":"invalid_grant","ambiguous_retries":1,"updated_at":"2026-01-02T03:04:05Z"}]}`),
			func(c *Client) (any, error) { return c.ListProviders(context.Background(), "alice") },
			func(v any) bool {
				l := v.(ProviderList)
				return len(l.Providers) == 1 && l.Providers[0].State == StateReauthRequired && *l.Providers[0].RefreshError == "invalid_grant"
			}},
		{"PutOfflineToken", "PUT", "/v1/users/alice/offline-token", `{"offline_token":"off-x"}`,
			json(`{"user":"alice","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00Z"}`),
			func(c *Client) (any, error) { return c.PutOfflineToken(context.Background(), "alice", "off-x") },
			func(v any) bool { return v.(OfflineTokenStored).User == "alice" }},
		{"GetOfflineToken", "GET", "/v1/users/alice/offline-token", "", offline,
			func(c *Client) (any, error) { return c.GetOfflineToken(context.Background(), "alice") },
			func(v any) bool { o := v.(OfflineToken); return o.OfflineToken == "off-x" && o.UpdatedAt.Day() == 2 }},
		{"DeleteOfflineToken", "DELETE", "/v1/users/alice/offline-token", "", answer{status: 204},
			func(c *Client) (any, error) { return nil, c.DeleteOfflineToken(context.Background(), "alice") },
			func(any) bool { return true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, tc.answer)
			var waits []time.Duration
			v, err := tc.call(newClient(t, s, &waits))
			if err != nil || !tc.check(v) {
				t.Fatalf("%s = %+v, %v", tc.name, v, err)
			}
			got := s.requests()
			if len(got) != 1 || got[0].method != tc.method || got[0].path != tc.path || got[0].body != tc.body ||
				got[0].authorization != "Bearer "+testCredential {
				t.Errorf("server received %+v; want %s %s %s with the credential", got, tc.method, tc.path, tc.body)
			}
		})
	}
}

// TestPathValues: a user id is sent as one percent-encoded path segment and
// arrives as it was given; "." and ".." (which URL resolution would remove)
// are refused without a request; a base URL's path prefix is kept.
func TestPathValues(t *testing.T) {
	t.Parallel()
	for _, user := range []string{"realm/alice", "50%?x=1#y", "名前-ü", "alice smith", "%2E%2E", "a%2Fb", "..."} {
		s := newServer(t, ok200)
		var waits []time.Duration
		if _, err := newClient(t, s, &waits).GetAccessToken(context.Background(), user, "gitlab"); err != nil {
			t.Fatalf("user %q: %v", user, err)
		}
		got := s.requests()
		if len(got) != 1 || got[0].user != user || got[0].provider != "gitlab" ||
			got[0].escapedPath != "/v1/users/"+url.PathEscape(user)+"/providers/gitlab/tokens" {
			t.Errorf("user %q arrived as %+v", user, got)
		}
	}
	for _, tc := range []struct{ user, provider, field string }{{".", "gitlab", "user"}, {"..", "gitlab", "user"}, {"alice", "..", "provider"}} {
		s := newServer(t, ok200)
		var waits []time.Duration
		_, err := newClient(t, s, &waits).GetAccessToken(context.Background(), tc.user, tc.provider)
		var e *Error
		if !errors.Is(err, ErrInvalidRequest) || !errors.As(err, &e) || e.Field != tc.field || e.StatusCode != 0 || len(s.requests()) != 0 {
			t.Errorf("user %q provider %q: err %v, %d requests; want ErrInvalidRequest naming %s, none sent", tc.user, tc.provider, err, len(s.requests()), tc.field)
		}
	}
	s := newServer(t, ok200)
	for _, base := range []string{s.srv.URL + "/prefix", s.srv.URL + "/prefix/"} {
		c, err := New(base, testCredential)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetAccessToken(context.Background(), "alice", "gitlab"); err != nil {
			t.Errorf("base %s: %v", base, err)
		}
	}
	for _, r := range s.requests() {
		if r.path != "/prefix/v1/users/alice/providers/gitlab/tokens" {
			t.Errorf("with a path prefix, path %q", r.path)
		}
	}
}

// TestRequestID: WithRequestID's id is sent as X-Request-Id.
func TestRequestID(t *testing.T) {
	t.Parallel()
	s := newServer(t, ok200)
	var waits []time.Duration
	c := newClient(t, s, &waits)
	if _, err := c.GetAccessToken(WithRequestID(context.Background(), "caller-req-7"), "alice", "gitlab"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAccessToken(context.Background(), "alice", "gitlab"); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); got[0].requestID != "caller-req-7" || got[1].requestID != "" {
		t.Errorf("X-Request-Id sent: %q then %q", got[0].requestID, got[1].requestID)
	}
}

// TestCredentialNeverShown: the credential is in no error, no String,
// %v, %+v, %#v, or log line of the client.
func TestCredentialNeverShown(t *testing.T) {
	t.Parallel()
	s := newServer(t, problemAnswer(401, "unauthenticated", "", nil))
	var waits []time.Duration
	c := newClient(t, s, &waits)
	var outputs []string
	_, err := c.GetAccessToken(context.Background(), "alice", "gitlab")
	outputs = append(outputs, err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err))
	// A transport error (the server is gone).
	s.srv.Close()
	_, err = c.GetAccessToken(context.Background(), "alice", "gitlab")
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	outputs = append(outputs, err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err))
	outputs = append(outputs, c.String(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%v %+v", *c, *c),
		fmt.Sprintf("%v %+v %#v %s %q %x", c.credential, c.credential, c.credential, c.credential, c.credential, c.credential))
	var log bytes.Buffer
	slog.New(slog.NewTextHandler(&log, nil)).Info("x", "client", c)
	slog.New(slog.NewJSONHandler(&log, nil)).Info("x", "client", c)
	outputs = append(outputs, log.String())
	for _, o := range outputs {
		if strings.Contains(o, testCredential) || strings.Contains(o, "TESTcredential") || strings.Contains(o, fmt.Sprintf("%x", testCredential)) {
			t.Errorf("output shows the credential: %s", o)
		}
	}
	if !strings.Contains(c.String(), s.srv.URL) {
		t.Errorf("String() %q does not name the server", c.String())
	}
}

// TestNewRefuses: New refuses what cannot work.
func TestNewRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ base, credential string }{
		{"", testCredential},
		{"tokenstore:8080", testCredential},
		{"ftp://tokenstore", testCredential},
		{"http://", testCredential},
		{"http://u:" + testCredential + "@tokenstore", testCredential},
		{"http://tokenstore?x=1", testCredential},
		{"http://tokenstore:" + testCredential + "/", testCredential}, // an invalid port
		{"http://tokenstore", ""},
	} {
		c, err := New(tc.base, tc.credential)
		if err == nil {
			t.Errorf("New(%q, %q) = %v, want an error", tc.base, tc.credential, c)
		} else if strings.Contains(err.Error(), testCredential) {
			t.Errorf("error shows the credential: %v", err)
		}
	}
}
