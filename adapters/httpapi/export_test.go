package httpapi

// Authorize is authorize, for its table test in package httpapi_test.
var Authorize = authorize

// RouteAuditActions is auditActions, the audit action of each route.
var RouteAuditActions = auditActions
