package api_test

// The Go client (package client) as the suite's happy paths use it: every
// exchange it makes is checked against openapi.yaml, like those of do and
// send.

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/client"
)

// specTransport checks every exchange against openapi.yaml on t.
type specTransport struct {
	t    *testing.T
	next http.RoundTripper
}

func (s specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		if reqBody, err = io.ReadAll(rc); err != nil {
			return nil, err
		}
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	s.t.Helper()
	checkAgainstSpec(s.t, req, reqBody, resp, body)
	return resp, nil
}

// api returns a client of inst as caller (a name of inst.creds, or a raw
// credential), whose exchanges are checked against openapi.yaml on inst.t.
func (inst *instance) api(caller string, opts ...client.Option) *client.Client {
	inst.t.Helper()
	cred, ok := inst.creds[caller]
	if !ok {
		cred = caller
	}
	next := http.DefaultTransport
	if inst.client != nil && inst.client.Transport != nil {
		next = inst.client.Transport // a TLS instance's
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: specTransport{t: inst.t, next: next}}
	c, err := client.New(inst.base, cred, append([]client.Option{client.WithHTTPClient(hc)}, opts...)...)
	if err != nil {
		inst.t.Fatal(err)
	}
	return c
}

// ptr returns a pointer to v, for the optional members of a request body.
func ptr[T any](v T) *T { return &v }
