package httpapi

import _ "embed"

// OpenAPI is the API's OpenAPI 3.0 document (openapi.yaml): routes,
// permissions, bodies and problem codes. Tests keep it in step with Routes
// and check every exchange of the API tests against it; it is embedded so
// that those tests, in any package, read the document the package was built
// with.
//
//go:embed openapi.yaml
var OpenAPI []byte
