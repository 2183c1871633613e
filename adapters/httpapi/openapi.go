package httpapi

import (
	_ "embed"
	"net/http"
	"strconv"
)

// OpenAPI is the API's OpenAPI 3.0 document (openapi.yaml): routes,
// permissions, bodies and problem codes. Tests keep it in step with Routes
// and check every exchange of the API tests against it; it is embedded so
// that those tests, in any package, read the document the package was built
// with, and GET /openapi.yaml serves it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// OpenAPIContentType is the media type GET /openapi.yaml answers with:
// application/yaml, registered by RFC 9512. (application/openapi+yaml is
// still an Internet-Draft, draft-ietf-httpapi-rest-api-mediatypes.)
const OpenAPIContentType = "application/yaml"

// openapi serves the document this build was made with, to anyone: like
// the health probes it needs no credential, since it holds no secret and
// describes only what every caller's team reads in the repository. It may
// be cached, but revalidated: another build may serve another document.
func (a *api) openapi(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", OpenAPIContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(OpenAPI)
	return nil
}
