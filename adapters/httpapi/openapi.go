package httpapi

import _ "embed"

// OpenAPI is the API's OpenAPI 3.0 document (openapi.yaml): routes,
// permissions, bodies and problem codes. Tests keep it in step with Routes
// and check every exchange of the API tests against it; it is embedded so
// that the binary can serve or print the document it was built with.
//
//go:embed openapi.yaml
var OpenAPI []byte
