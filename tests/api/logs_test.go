package api_test

// The request log: one structured line per request, routes as patterns, and
// no token material anywhere.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestRequestLog(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := uniq("log-user-")
	access, refresh, offline := uniq("gho_logaccess_"), uniq("ghr_logrefresh_"), uniq("off_log_")
	stale := uniq("gho_stale_")
	junk := uniq("gho_junk_")
	wrongCred := "tsc_" + uniq("wrongcredential")

	const tokensRoute = "/v1/users/{user}/providers/{provider}/tokens"
	const offlineRoute = "/v1/users/{user}/offline-token"
	type logged struct {
		method, path, caller string
		header               map[string]string
		body                 string
		status               int
		route                string
	}
	reqs := []logged{
		{"PUT", tokensPath(user, "github"), callerAll, map[string]string{"Content-Type": "application/json"},
			`{"access_token":"` + access + `","refresh_token":"` + refresh + `","expires_in":3600}`, 200, "PUT " + tokensRoute},
		{"GET", tokensPath(user, "github"), callerAll, nil, "", 200, "GET " + tokensRoute},
		{"GET", providersPath(user), callerAll, nil, "", 200, "GET /v1/users/{user}/providers"},
		{"PUT", tokensPath(user, "gitlab"), callerAll, map[string]string{"Content-Type": "application/json"},
			`{"access_token":"` + stale + `","access_token_expires_at":"2020-01-01T00:00:00Z"}`, 200, "PUT " + tokensRoute},
		{"GET", tokensPath(user, "gitlab"), callerAll, nil, "", 409, "GET " + tokensRoute},
		{"PUT", tokensPath(user, "github"), callerAll, map[string]string{"Content-Type": "application/json"},
			`{"access_token":"` + junk + `","bogus":"` + junk + `"}`, 400, "PUT " + tokensRoute},
		{"PUT", tokensPath(user, "github"), callerAll, map[string]string{"Content-Type": "application/json"},
			`{"access_token":"` + junk + `","expires_in":"` + junk + `"}`, 400, "PUT " + tokensRoute},
		{"PUT", tokensPath(user, "github"), callerAll, map[string]string{"Content-Type": "application/json"},
			`{"access_token":"` + junk + strings.Repeat("z", 70<<10) + `"}`, 400, "PUT " + tokensRoute},
		{"PUT", tokensPath(user, "github"), callerAll, map[string]string{"Content-Type": "text/plain"},
			`{"access_token":"` + junk + `"}`, 415, "PUT " + tokensRoute},
		{"PUT", tokensPath(user, "github"), "", map[string]string{"Content-Type": "application/json"},
			`{"access_token":"` + junk + `"}`, 401, "PUT " + tokensRoute},
		{"GET", tokensPath(user, "github"), wrongCred, nil, "", 401, "GET " + tokensRoute},
		{"GET", tokensPath(user, "github"), callerWithout("tokens:read"), nil, "", 403, "GET " + tokensRoute},
		{"PUT", offlinePath(user), callerAll, map[string]string{"Content-Type": "application/json"},
			`{"offline_token":"` + offline + `"}`, 200, "PUT " + offlineRoute},
		{"GET", offlinePath(user), callerAll, nil, "", 200, "GET " + offlineRoute},
		{"DELETE", offlinePath(user), callerAll, nil, "", 204, "DELETE " + offlineRoute},
		{"GET", offlinePath(user), callerAll, nil, "", 404, "GET " + offlineRoute},
		{"DELETE", tokensPath(user, "github"), callerAll, nil, "", 204, "DELETE " + tokensRoute},
		{"POST", tokensPath(user, "github"), callerAll, nil, "", 405, tokensRoute},
		{"GET", "/v1/users/" + user + "/nope", callerAll, nil, "", 404, "/"},
		{"GET", "/v1/users/" + user + "%0Aforged/providers", callerAll, nil, "", 400, "GET /v1/users/{user}/providers"},
		{"GET", "/healthz", "", nil, "", 200, "GET /healthz"},
		{"GET", "/nope/" + user, "", nil, "", 404, "/"},
	}
	secrets := []string{access, refresh, offline, stale, junk, wrongCred}
	for _, cred := range inst.creds {
		secrets = append(secrets, cred)
	}

	ids := make([]string, len(reqs))
	for i, rq := range reqs {
		h := map[string]string{"X-Request-Id": fmt.Sprintf("log-test-%02d", i)}
		for k, v := range rq.header {
			h[k] = v
		}
		if rq.caller != "" {
			cred, ok := inst.creds[rq.caller]
			if !ok {
				cred = rq.caller
			}
			h["Authorization"] = "Bearer " + cred
		}
		var body []byte
		if rq.body != "" {
			body = []byte(rq.body)
		}
		r := inst.send(rawRequest{method: rq.method, path: rq.path, header: h, body: body})
		if r.StatusCode != rq.status {
			t.Fatalf("request %d %s %s = %d, want %d; body %s", i, rq.method, rq.path, r.StatusCode, rq.status, r.body)
		}
		ids[i] = r.Header.Get("X-Request-Id")
		if ids[i] != h["X-Request-Id"] {
			t.Fatalf("request %d: X-Request-Id %q, sent %q", i, ids[i], h["X-Request-Id"])
		}
	}

	// Responses are written before the request's log line; the line follows
	// as the handler returns, so wait for all of them (never for a time).
	type line struct {
		Msg        string   `json:"msg"`
		Method     *string  `json:"method"`
		Route      *string  `json:"route"`
		Status     *int     `json:"status"`
		DurationMS *float64 `json:"duration_ms"`
		Caller     *string  `json:"caller"`
		RequestID  *string  `json:"request_id"`
		raw        string
	}
	var byID map[string][]line
	var requestLines int
	eventually(t, "a request log line per request", func() (bool, error) {
		byID, requestLines = map[string][]line{}, 0
		for _, raw := range strings.Split(strings.TrimSpace(inst.logs.String()), "\n") {
			var l line
			if err := json.Unmarshal([]byte(raw), &l); err != nil {
				return false, fmt.Errorf("log line is not JSON: %q: %v", raw, err)
			}
			if l.Msg != "request" {
				continue
			}
			l.raw = raw
			requestLines++
			if l.RequestID != nil {
				byID[*l.RequestID] = append(byID[*l.RequestID], l)
			}
		}
		return requestLines >= len(reqs), nil
	})
	if requestLines != len(reqs) {
		t.Errorf("%d request log lines for %d requests", requestLines, len(reqs))
	}
	for i, rq := range reqs {
		lines := byID[ids[i]]
		if len(lines) != 1 {
			t.Errorf("request %d (%s %s): %d log lines, want 1", i, rq.method, rq.path, len(lines))
			continue
		}
		l := lines[0]
		if l.Method == nil || l.Route == nil || l.Status == nil || l.DurationMS == nil || l.Caller == nil {
			t.Errorf("request %d: log line lacks a field: %s", i, l.raw)
			continue
		}
		wantCaller := rq.caller
		if _, known := inst.creds[rq.caller]; !known {
			wantCaller = "" // no or a wrong credential: nobody
		}
		wantRoute := rq.route
		if rq.status == http.StatusUnauthorized && *l.Route == "unmatched" {
			// Authentication runs before routing: a 401 has no pattern.
			wantRoute = "unmatched"
		}
		if *l.Method != rq.method || *l.Route != wantRoute || *l.Status != rq.status || *l.Caller != wantCaller || *l.DurationMS < 0 {
			t.Errorf("request %d: logged method %q route %q status %d caller %q duration %v; want %s %q %d %q",
				i, *l.Method, *l.Route, *l.Status, *l.Caller, *l.DurationMS, rq.method, wantRoute, rq.status, wantCaller)
		}
		if strings.Contains(*l.Route, user) || strings.Contains(l.raw, user) {
			t.Errorf("request %d: the request log line holds the user id: %s", i, l.raw)
		}
	}
	inst.noSecretsInLogs(secrets...)
	for _, s := range []string{access, refresh, offline, stale} {
		for _, enc := range encodings(s)[1:] {
			if strings.Contains(inst.logs.String(), enc) {
				t.Errorf("the log contains an encoding of token material: %q", enc)
			}
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", inst.logs.String())
	}
}
