package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/webhook"
	"github.com/tokenstore/tokenstore/domain"
)

// loadOpenAPI parses and validates the embedded document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// operations lists the document's operations as "METHOD /path".
func operations(doc *openapi3.T) map[string]*openapi3.Operation {
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

func TestOpenAPIValid(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi: %q, want 3.0.3", doc.OpenAPI)
	}
}

// TestOpenAPIMatchesRoutes checks both directions: every registered route is
// documented, and every documented operation is a registered route.
// ServeMux patterns and OpenAPI paths share the {name} syntax, so they
// compare as strings.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	documented := operations(doc)
	registered := map[string]bool{}
	for _, r := range httpapi.Routes() {
		registered[r.Method+" "+r.Path] = true
	}
	var undocumented, unregistered []string
	for k := range registered {
		if documented[k] == nil {
			undocumented = append(undocumented, k)
		}
	}
	for k := range documented {
		if !registered[k] {
			unregistered = append(unregistered, k)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(unregistered)
	if len(undocumented) > 0 {
		t.Errorf("routes missing from openapi.yaml (add them to paths):\n\t%s", strings.Join(undocumented, "\n\t"))
	}
	if len(unregistered) > 0 {
		t.Errorf("operations in openapi.yaml that no route serves (remove them or register the route):\n\t%s",
			strings.Join(unregistered, "\n\t"))
	}
}

// effectiveSecurity is the operation's security, or the document's default.
func effectiveSecurity(doc *openapi3.T, op *openapi3.Operation) openapi3.SecurityRequirements {
	if op.Security != nil {
		return *op.Security
	}
	return doc.Security
}

// TestOpenAPISecurity: every /v1 operation requires the bearer credential
// and names one known permission; the health probes require nothing.
func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s == nil || s.Value.Type != "http" || !strings.EqualFold(s.Value.Scheme, "bearer") {
		t.Fatalf("components.securitySchemes.bearerAuth must be an http bearer scheme")
	}
	for key, op := range operations(doc) {
		sec := effectiveSecurity(doc, op)
		_, path, _ := strings.Cut(key, " ")
		if !strings.HasPrefix(path, "/v1/") {
			if len(sec) != 0 {
				t.Errorf("%s: needs no credential, so it must say `security: []`; has %v", key, sec)
			}
			if _, ok := op.Extensions["x-permission"]; ok {
				t.Errorf("%s: needs no credential but has an x-permission", key)
			}
			continue
		}
		if len(sec) == 0 {
			t.Errorf("%s: has no security; every /v1 operation needs bearerAuth", key)
		}
		for _, req := range sec {
			if _, ok := req["bearerAuth"]; !ok || len(req) != 1 {
				t.Errorf("%s: security requirement %v, want exactly bearerAuth", key, req)
			}
		}
		perm, _ := op.Extensions["x-permission"].(string)
		if _, err := httpapi.ParsePermission(perm); err != nil {
			t.Errorf("%s: x-permission %q: %v", key, perm, err)
		} else if !strings.Contains(op.Description, "`"+perm+"`") {
			t.Errorf("%s: the description does not mention its permission `%s`", key, perm)
		}
		for _, status := range []string{"400", "401", "403", "500", "503"} {
			if op.Responses.Value(status) == nil {
				t.Errorf("%s: does not document status %s", key, status)
			}
		}
	}
}

// TestOpenAPIErrorsAreProblems: every 4xx and 5xx answer is a problem
// document, and every operation has an operationId.
func TestOpenAPIErrorsAreProblems(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	for key, op := range operations(doc) {
		if op.OperationID == "" {
			t.Errorf("%s: no operationId", key)
		}
		for status, resp := range op.Responses.Map() {
			if status[0] != '4' && status[0] != '5' {
				continue
			}
			name := fmt.Sprintf("%s %s", key, status)
			content := resp.Value.Content
			if len(content) != 1 || content["application/problem+json"] == nil {
				t.Errorf("%s: content %v, want only application/problem+json", name, slices.Sorted(maps.Keys(content)))
				continue
			}
			if content["application/problem+json"].Schema == nil {
				t.Errorf("%s: problem response without a schema", name)
			}
		}
	}
}

// TestOpenAPIEventKinds: the Event schema, the webhook payload's type and
// listEvents' description name exactly the outbox's kinds
// (domain.EventKinds), and a webhook body as the sender makes it
// (webhook.Body) is a valid WebhookPayload for each.
func TestOpenAPIEventKinds(t *testing.T) {
	t.Parallel()
	doc := loadOpenAPI(t)
	var kinds []string
	for _, k := range domain.EventKinds() {
		kinds = append(kinds, string(k))
	}
	enum := func(schema, prop string) []string {
		s := doc.Components.Schemas[schema]
		if s == nil || s.Value.Properties[prop] == nil {
			t.Fatalf("no schema %s with %s", schema, prop)
		}
		var out []string
		for _, v := range s.Value.Properties[prop].Value.Enum {
			out = append(out, fmt.Sprint(v))
		}
		return out
	}
	for _, at := range []struct{ schema, prop string }{{"Event", "kind"}, {"WebhookPayload", "type"}} {
		if got := enum(at.schema, at.prop); !slices.Equal(got, kinds) {
			t.Errorf("%s.%s enum %q, want domain.EventKinds() %q", at.schema, at.prop, got, kinds)
		}
	}
	list := operations(doc)["GET /v1/events"]
	payload := doc.Components.Schemas["WebhookPayload"].Value
	for _, k := range domain.EventKinds() {
		if !strings.Contains(list.Description, "`"+string(k)+"`") {
			t.Errorf("listEvents' description does not name %s", k)
		}
		for _, provider := range []domain.Provider{"gitlab", ""} {
			e := domain.Event{Cursor: domain.EventCursor{Xact: 5, Seq: 12}, Kind: k, User: "alice", Provider: provider,
				Reason: "revocation_rejected", OccurredAt: time.Now()}
			var body any
			if err := json.Unmarshal(webhook.Body(e), &body); err != nil {
				t.Fatal(err)
			}
			if err := payload.VisitJSON(body); err != nil {
				t.Errorf("webhook body of %s (provider %q) is not a WebhookPayload: %v", k, provider, err)
			}
		}
	}
}
