// Package httpapi is tokenstore's internal HTTP API: JSON over net/http with
// Go 1.22 routing patterns. Every /v1 route authenticates its caller with a
// bearer credential and checks the caller's permission for that route;
// errors are RFC 9457 problem documents with a stable code. openapi.yaml in
// this folder describes the API, and a test keeps it and the routes in step.
package httpapi
