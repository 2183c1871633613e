package httpapi

// Authorize is authorize, for its table test in package httpapi_test.
var Authorize = authorize

// CheckParams is Route.checkParams, for the route table's test.
func CheckParams(r Route) error { return r.checkParams() }

// RouteAuditActions is auditActions, the audit action of each route.
var RouteAuditActions = auditActions
