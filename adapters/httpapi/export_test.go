package httpapi

// Authorize is authorize, for its table test in package httpapi_test.
var Authorize = authorize
