package oauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
)

// Token material the tests send; no error message may ever contain them.
const (
	clientSecret = "cs-SECRET-9f8e7d6c"
	oldRefresh   = "rt-OLD-1a2b3c4d"
)

const (
	jsonCT = "application/json"
	formCT = "application/x-www-form-urlencoded"
)

// t0 is the fake clock: expiries are asserted exactly, never against time.Now.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// request is what the fake provider saw.
type request struct {
	method, path, contentType, accept string
	form                              url.Values
	basic                             bool
	user, pass                        string
	origURL                           string // set by rewriteTransport
	body, authorization               string // as sent, for providers that echo them
}

// reply is what the fake provider answers. An empty contentType sends none.
type reply struct {
	status      int
	contentType string
	body        string
	header      map[string]string
}

func always(r reply) func(request) reply { return func(request) reply { return r } }

func okJSON(body string) reply { return reply{status: 200, contentType: jsonCT, body: body} }

// fakeProvider starts a token endpoint that records every request on the
// returned channel (before answering, so a drained channel is complete once
// Refresh has returned) and answers with answer(request).
func fakeProvider(t *testing.T, answer func(request) reply) (*httptest.Server, chan request) {
	t.Helper()
	seen := make(chan request, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := record(r)
		seen <- req
		rep := answer(req)
		if rep.contentType == "" {
			w.Header()["Content-Type"] = nil // no sniffing either
		} else {
			w.Header().Set("Content-Type", rep.contentType)
		}
		for k, v := range rep.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(srv.Close)
	return srv, seen
}

func record(r *http.Request) request {
	raw, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(raw)))
	_ = r.ParseForm()
	req := request{
		body:          string(raw),
		authorization: r.Header.Get("Authorization"),
		method:        r.Method,
		path:          r.URL.EscapedPath(),
		contentType:   r.Header.Get("Content-Type"),
		accept:        r.Header.Get("Accept"),
		form:          r.PostForm,
		origURL:       r.Header.Get("X-Original-URL"),
	}
	if u, p, ok := r.BasicAuth(); ok {
		req.basic = true
		req.user, _ = url.QueryUnescape(u)
		req.pass, _ = url.QueryUnescape(p)
	}
	return req
}

// drain returns the requests recorded so far.
func drain(ch chan request) []request {
	var out []request
	for {
		select {
		case r := <-ch:
			out = append(out, r)
		default:
			return out
		}
	}
}

// newRefresher builds a Refresher that talks to srv with the fake clock.
func newRefresher(t *testing.T, srv *httptest.Server, cfgs ...oauth.ProviderConfig) *oauth.Refresher {
	t.Helper()
	r, err := oauth.New(cfgs, oauth.WithHTTPClient(srv.Client()), oauth.WithClock(func() time.Time { return t0 }))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// generic is a valid oauth2 provider at base+"/token" with credentials in the body.
func generic(base string) oauth.ProviderConfig {
	return oauth.ProviderConfig{
		Name: "corp", Kind: oauth.KindOAuth2, ClientID: "corp-client",
		ClientSecret: domain.NewSecret(clientSecret), TokenURL: base + "/token",
		TokenEndpointAuthMethod: oauth.AuthMethodClientSecretPost,
	}
}

// rewriteTransport sends every request to target instead, recording the URL
// it was meant for in X-Original-URL, so default endpoints can be checked
// against an httptest server.
type rewriteTransport struct {
	target *url.URL
	base   http.RoundTripper
}

func (rt rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("X-Original-URL", req.URL.String())
	r.URL.Scheme, r.URL.Host, r.Host = rt.target.Scheme, rt.target.Host, ""
	return rt.base.RoundTrip(r)
}

// assertNoSecrets fails when s holds any token material the tests use.
func assertNoSecrets(t *testing.T, s string, extra ...string) {
	t.Helper()
	for _, secret := range append([]string{clientSecret, oldRefresh}, extra...) {
		if strings.Contains(s, secret) {
			t.Errorf("%q leaks %q", s, secret)
		}
	}
}
