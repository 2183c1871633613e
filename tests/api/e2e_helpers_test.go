package api_test

// Helpers shared by the end-to-end suite (routes, errors, auth, storage,
// logs, shutdown). The harness itself is harness_test.go.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// forT returns a view of inst whose failures are reported on t. Subtests must
// use it: inst.do fails the test it was set up with, and FailNow on a parent
// test from a subtest's goroutine is not allowed.
func (inst *instance) forT(t *testing.T) *instance {
	c := *inst
	c.t = t
	return &c
}

// noRedirects is a client that returns redirects instead of following them,
// so that a 301 from the mux is seen as what it is.
var noRedirects = &http.Client{
	Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// rawRequest is a request with full control over its headers. Header values
// are set as given; Authorization is not added unless listed.
type rawRequest struct {
	method string
	path   string // appended to inst.base as is (may hold %-escapes)
	header map[string]string
	body   []byte // nil: no body
}

// send performs r with a client that does not follow redirects, checks the
// exchange against the spec and fails inst.t on transport errors.
func (inst *instance) send(r rawRequest) response {
	inst.t.Helper()
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, inst.base+r.path, rd)
	if err != nil {
		inst.t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		inst.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		inst.t.Fatal(err)
	}
	checkAgainstSpec(inst.t, req, r.body, resp, out)
	return response{Response: resp, body: out}
}

// bearer is the Authorization header of caller.
func (inst *instance) bearer(caller string) string {
	cred, ok := inst.creds[caller]
	if !ok {
		inst.t.Fatalf("no caller %q", caller)
	}
	return "Bearer " + cred
}

// exchange is a finished request made off the test goroutine: it never calls
// t.Fatal, so it is safe in goroutines. Check it with checkExchange from the
// test goroutine.
type exchange struct {
	req     *http.Request
	reqBody []byte
	resp    *http.Response
	body    []byte
	err     error
}

// sendAsync performs a JSON request as caller without touching t.
func (inst *instance) sendAsync(ctx context.Context, method, path, caller string, body any) exchange {
	var raw []byte
	var rd io.Reader
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return exchange{err: err}
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, inst.base+path, rd)
	if err != nil {
		return exchange{err: err}
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+inst.creds[caller])
	}
	resp, err := inst.client.Do(req)
	if err != nil {
		return exchange{req: req, reqBody: raw, err: err}
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return exchange{req: req, reqBody: raw, resp: resp, body: out, err: err}
}

// checkExchange runs the spec check on an exchange made by sendAsync and
// returns it as a response; it fails t on a transport error.
func checkExchange(t *testing.T, x exchange) response {
	t.Helper()
	if x.err != nil {
		t.Fatalf("request failed: %v", x.err)
	}
	checkAgainstSpec(t, x.req, x.reqBody, x.resp, x.body)
	return response{Response: x.resp, body: x.body}
}

// uniq returns prefix followed by random hex, for values that must not be
// confused with anything else in a response, a row or a log.
func uniq(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// wantStatus fails t unless r has status code want.
func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.body)
	}
}

// wantProblem checks that r is a problem document with status, code and
// field (field "" means: no field), carrying the response's request id, and
// returns it.
func wantProblem(t *testing.T, r response, status int, code, field string) httpapi.Problem {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s = %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	p := r.problem(t)
	if p.Code != code {
		t.Errorf("code = %q, want %q; body %s", p.Code, code, r.body)
	}
	if p.Field != field {
		t.Errorf("field = %q, want %q; body %s", p.Field, field, r.body)
	}
	if p.Status != status {
		t.Errorf("status member = %d, want %d", p.Status, status)
	}
	if want := "urn:tokenstore:problem:" + code; p.Type != want {
		t.Errorf("type = %q, want %q", p.Type, want)
	}
	if p.Title == "" {
		t.Errorf("title is empty; body %s", r.body)
	}
	id := r.Header.Get("X-Request-Id")
	if id == "" || p.RequestID != id {
		t.Errorf("request_id = %q, X-Request-Id header = %q; want equal and non-empty", p.RequestID, id)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	return p
}

// objectKeys decodes a JSON object body and fails t unless its keys are
// exactly want.
func objectKeys(t *testing.T, r response, want ...string) map[string]any {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var m map[string]any
	r.json(t, &m)
	got := slices.Sorted(maps.Keys(m))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("body keys = %v, want %v; body %s", got, want, r.body)
	}
	return m
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

// encodings are the forms a leaked plaintext could take in a column or log.
func encodings(plaintext string) []string {
	b := []byte(plaintext)
	return []string{
		plaintext,
		hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)),
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
	}
}

// parseTime parses an RFC 3339 timestamp from a response.
func parseTime(t *testing.T, what string, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%s = %#v, want an RFC 3339 string", what, v)
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, s, err)
	}
	if !strings.HasSuffix(s, "Z") {
		t.Errorf("%s = %q, want UTC (Z)", what, s)
	}
	return ts
}

// decryptColumn decrypts a raw bytea column, sealed for place, with the
// instance's keyring.
func (inst *instance) decryptColumn(t *testing.T, place app.Place, keyID string, data []byte) string {
	t.Helper()
	s, err := app.Unseal(inst.keyring, place, domain.Ciphertext{KeyID: domain.KeyID(keyID), Data: data})
	if err != nil {
		t.Fatalf("decrypt column: %v", err)
	}
	return s.Reveal()
}

// eventually polls cond until it returns true or the deadline passes. It is
// for waiting on state another goroutine or process produces, never for
// asserting how long something took.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
