package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// statusClientClosedRequest is what the server records when the client went
// away; no client ever receives it.
const statusClientClosedRequest = 499

// specRouter finds an exchange's operation in openapi.yaml. Loading and
// validating the document and building the router is done once per test
// binary.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

// checkAgainstSpec validates an exchange's response against openapi.yaml:
// the status must be documented for the operation, and the documented
// headers and the body (problem documents included) must match. Requests
// are not validated (tests send invalid ones on purpose), and exchanges
// that hit no documented operation (unknown paths, 405s, HEAD) are skipped.
func checkAgainstSpec(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode == statusClientClosedRequest {
		return
	}
	router, err := specRouter()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	route, pathParams, err := router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound), errors.Is(err, routers.ErrMethodNotAllowed):
		return
	case err != nil:
		t.Fatalf("%s %s: find the operation in openapi.yaml: %v", req.Method, req.URL.Path, err)
	}
	// The request as sent, for the validator's reference; its body is never read.
	sent := req.Clone(context.Background())
	if reqBody != nil {
		sent.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    sent,
			PathParams: pathParams,
			Route:      route,
			Options: &openapi3filter.Options{
				AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
			},
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Errorf("%s %s (operation %s): response %d does not match openapi.yaml: %v\nbody: %s",
			req.Method, req.URL.Path, route.Operation.OperationID, resp.StatusCode, err, body)
	}
}
