package api_test

// Strict edges (issue 9): a request either means exactly one thing or is
// refused with a 400 naming the field, and a refused request changes
// nothing that is stored.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestStrictBodiesChangeNothing: every body the lenient decoder used to
// accept (and store as a different secret, or with a defeated check) is a
// 400 naming the field, for a user with tokens stored (they stay as they
// were) and for a new one (nothing is stored).
func TestStrictBodiesChangeNothing(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	tokens := []struct{ name, body, field string }{
		{"raw invalid UTF-8", "{\"access_token\":\"tok-\xff\xfe\"}", "access_token"},
		{"lone surrogate", `{"access_token":"tok-\ud800"}`, "access_token"},
		{"duplicate access_token", `{"access_token":"first","access_token":"second"}`, "access_token"},
		{"duplicate expires_in defeating validation", `{"access_token":"x","expires_in":-5,"expires_in":60}`, "expires_in"},
		{"duplicate access_token_expires_at reviving an expired token",
			`{"access_token":"x","access_token_expires_at":"2000-01-01T00:00:00Z","access_token_expires_at":"2099-01-01T00:00:00Z"}`, "access_token_expires_at"},
		{"ACCESS_TOKEN", `{"ACCESS_TOKEN":"upper"}`, "ACCESS_TOKEN"},
		{"Refresh_Token", `{"access_token":"a","Refresh_Token":"r"}`, "Refresh_Token"},
		{"Refresh_Token alone", `{"Refresh_Token":"r"}`, "Refresh_Token"},
		{"NUL in access_token", `{"access_token":"a\u0000b"}`, "access_token"},
		{"raw invalid UTF-8 in refresh_token", "{\"access_token\":\"a\",\"refresh_token\":\"r-\xff\"}", "refresh_token"},
		{"lone surrogate in refresh_token", `{"access_token":"a","refresh_token":"r-\udc00"}`, "refresh_token"},
		{"duplicate refresh_token", `{"access_token":"a","refresh_token":"r1","refresh_token":"r2"}`, "refresh_token"},
		{"control character in refresh_token", `{"access_token":"a","refresh_token":"r\n"}`, "refresh_token"},
		{"expires_in 0", `{"access_token":"a","expires_in":0}`, "expires_in"},
		{"both forms of the access expiry", `{"access_token":"a","expires_in":60,"access_token_expires_at":"2099-01-01T00:00:00Z"}`, "expires_in"},
		{"both forms of the refresh expiry", `{"access_token":"a","refresh_token":"r","refresh_token_expires_in":0,"refresh_token_expires_at":"2099-01-01T00:00:00Z"}`, "refresh_token_expires_in"},
	}
	offline := []struct{ name, body, field string }{
		{"offline: raw invalid UTF-8", "{\"offline_token\":\"c-\xff\xfe\"}", "offline_token"},
		{"offline: lone surrogate", `{"offline_token":"c-\ud800"}`, "offline_token"},
		{"offline: duplicate offline_token", `{"offline_token":"c1","offline_token":"c2"}`, "offline_token"},
		{"offline: Offline_Token", `{"Offline_Token":"c"}`, "Offline_Token"},
		{"offline: NUL", `{"offline_token":"c\u0000"}`, "offline_token"},
		{"offline: DEL", `{"offline_token":"c\u007f"}`, "offline_token"},
	}

	stored := uniq("stored-")
	access, refresh, offTok := uniq("at-"), uniq("rt-"), uniq("off-")
	wantStatus(t, inst.do("PUT", tokensPath(stored, "github"), callerAll,
		map[string]any{"access_token": access, "refresh_token": refresh, "expires_in": 3600}), http.StatusOK)
	wantStatus(t, inst.do("PUT", offlinePath(stored), callerAll, map[string]any{"offline_token": offTok}), http.StatusOK)
	before := inst.do("GET", providersPath(stored), callerAll, nil)
	wantStatus(t, before, http.StatusOK)
	offBefore := inst.do("GET", offlinePath(stored), callerAll, nil)
	wantStatus(t, offBefore, http.StatusOK)

	// refuse sends body to user's route and checks that it is refused.
	refuse := func(t *testing.T, offline bool, user, body, field string) {
		path := tokensPath(user, "github")
		if offline {
			path = offlinePath(user)
		}
		wantProblem(t, inst.forT(t).do("PUT", path, callerAll, body), http.StatusBadRequest, "invalid_request", field)
	}
	t.Run("cases", func(t *testing.T) {
		for i, tc := range append(tokens, offline...) {
			isOffline := i >= len(tokens)
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				fresh := uniq("fresh-")
				refuse(t, isOffline, stored, tc.body, tc.field)
				refuse(t, isOffline, fresh, tc.body, tc.field)
				inst := inst.forT(t)
				if isOffline {
					wantProblem(t, inst.do("GET", offlinePath(fresh), callerAll, nil), http.StatusNotFound, "not_found", "")
					return
				}
				r := inst.do("GET", providersPath(fresh), callerAll, nil)
				wantStatus(t, r, http.StatusOK)
				if m := objectKeys(t, r, "user", "providers"); len(m["providers"].([]any)) != 0 {
					t.Errorf("a refused PUT stored tokens: %s", r.body)
				}
			})
		}
	})
	// The stored user's tokens are as they were: same token, same status,
	// same updated_at.
	if after := inst.do("GET", providersPath(stored), callerAll, nil); string(after.body) != string(before.body) {
		t.Errorf("refused PUTs changed the stored status:\nbefore %s\nafter  %s", before.body, after.body)
	}
	r := inst.do("GET", tokensPath(stored, "github"), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	if m := objectKeys(t, r, "user", "provider", "access_token", "access_token_expires_at"); m["access_token"] != access {
		t.Errorf("GET = %s, want the stored access token", r.body)
	}
	if after := inst.do("GET", offlinePath(stored), callerAll, nil); string(after.body) != string(offBefore.body) {
		t.Errorf("refused PUTs changed the offline token:\nbefore %s\nafter  %s", offBefore.body, after.body)
	}
}

// TestTokensRoundTripExactly: what is accepted is stored and returned byte
// for byte, non-ASCII and escapes included.
func TestTokensRoundTripExactly(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := uniq("exact-")
	const body = `{"access_token":"tök-名前-😀-\u00e9-\ud83d\ude00-\ufffd-+/=%\"'"}`
	var want struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, inst.do("PUT", tokensPath(user, "github"), callerAll, body), http.StatusOK)
	r := inst.do("GET", tokensPath(user, "github"), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	if m := objectKeys(t, r, "user", "provider", "access_token", "access_token_expires_at"); m["access_token"] != want.AccessToken {
		t.Errorf("GET access_token = %q, want %q", m["access_token"], want.AccessToken)
	}
}

// TestUncleanPathsAreRefused: paths the router would clean answer a 400
// naming the path value (after the 401 for a missing credential), never a
// redirect, and store nothing.
func TestUncleanPathsAreRefused(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	body := `{"access_token":"at-unclean"}`
	offBody := `{"offline_token":"off-unclean"}`
	tests := []struct{ method, path, body, field string }{
		{"PUT", "/v1/users//providers/github/tokens", body, "user"},
		{"PUT", "/v1/users/alice/providers//tokens", body, "provider"},
		{"PUT", "/v1/users/./providers/github/tokens", body, "user"},
		{"PUT", "/v1/users/../providers/github/tokens", body, "user"},
		{"PUT", "/v1/users/alice/providers/../tokens", body, "provider"},
		{"PUT", "/v1/users/%2E%2E/providers/github/tokens", body, "user"},
		{"PUT", "/v1/users//offline-token", offBody, "user"},
		{"PUT", "/v1/users/../offline-token", offBody, "user"},
		{"GET", "/v1/users//providers", "", "user"},
		{"GET", "/v1/users/alice/providers//tokens", "", "provider"},
		{"DELETE", "/v1/users//offline-token", "", "user"},
		{"PUT", "/v1//users/alice/providers/github/tokens", body, "path"},
		{"PUT", "/v1/users/alice/providers/github/tokens/.", body, "path"},
		{"PUT", "/v1/users/alice/x/../providers/github/tokens", body, "path"},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.method+" "+tc.path, func(t *testing.T) {
				t.Parallel()
				inst := inst.forT(t)
				var b []byte
				if tc.body != "" {
					b = []byte(tc.body)
				}
				send := func(caller string) response {
					h := map[string]string{"Content-Type": "application/json"}
					if caller != "" {
						h["Authorization"] = inst.bearer(caller)
					}
					return inst.send(rawRequest{method: tc.method, path: tc.path, header: h, body: b})
				}
				r := send("")
				wantProblem(t, r, http.StatusUnauthorized, "unauthenticated", "")
				r = send(callerAll)
				wantProblem(t, r, http.StatusBadRequest, "invalid_request", tc.field)
				if loc := r.Header.Get("Location"); loc != "" {
					t.Errorf("Location %q on a 400", loc)
				}
			})
		}
	})
	for _, table := range []string{"auth_tokens", "offline_tokens"} {
		var n int
		if err := inst.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s holds %d rows (%v) after refused requests; want 0", table, n, err)
		}
	}
}

// TestPercentEncodedPathValues: an encoded character in a path value has
// one meaning: a%2Fb is the user "a/b" (not the path a/b, which is no
// route), a%252Fb the user "a%2Fb"; %2E%2E is the dot-segment "..", which no
// user id may be.
func TestPercentEncodedPathValues(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	// Paths written out: tokensPath and the like escape what they are given.
	rawTokens := func(u string) string { return "/v1/users/" + u + "/providers/github/tokens" }
	for _, tc := range []struct{ escaped, user string }{
		{"a%2Fb", "a/b"},
		{"a%2fb", "a/b"},
		{"a%252Fb", "a%2Fb"},
		{"%2E%2E%2E", "..."},
	} {
		access := uniq("at-")
		wantStatus(t, inst.do("PUT", rawTokens(tc.escaped), callerAll, map[string]any{"access_token": access}), http.StatusOK)
		var n int
		if err := inst.pool.QueryRow(context.Background(),
			"SELECT count(*) FROM auth_tokens WHERE user_id = $1 AND provider = 'github'", tc.user).Scan(&n); err != nil || n != 1 {
			t.Errorf("%s: %d rows (%v) for user_id %q, want 1", tc.escaped, n, err, tc.user)
		}
		r := inst.do("GET", rawTokens(tc.escaped), callerAll, nil)
		wantStatus(t, r, http.StatusOK)
		if m := objectKeys(t, r, "user", "provider", "access_token", "access_token_expires_at"); m["user"] != tc.user || m["access_token"] != access {
			t.Errorf("%s: GET = %s, want user %q", tc.escaped, r.body, tc.user)
		}
	}
	wantProblem(t, inst.do("GET", "/v1/users/a/b/providers/github/tokens", callerAll, nil), http.StatusNotFound, "not_found", "")
	for _, p := range []string{rawTokens("%2E%2E"), "/v1/users/%2E/offline-token", "/v1/users/..%2F/providers"} {
		r := inst.do("GET", p, callerAll, nil)
		if strings.HasSuffix(p, "..%2F/providers") {
			wantStatus(t, r, http.StatusOK) // the user "../": not a dot-segment
			continue
		}
		wantProblem(t, r, http.StatusBadRequest, "invalid_request", "user")
	}
}

// TestRequestFailedLogCarriesTheRequestID: the ERROR line of an unexpected
// failure, and the request's own line, carry the request_id its 500 body
// points to.
func TestRequestFailedLogCarriesTheRequestID(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	// A missing table is a bug, not an outage: a 500.
	if _, err := inst.pool.Exec(context.Background(), "ALTER TABLE offline_tokens RENAME TO offline_tokens_gone"); err != nil {
		t.Fatal(err)
	}
	r := inst.do("GET", offlinePath(uniq("u-")), callerAll, nil)
	p := wantProblem(t, r, http.StatusInternalServerError, "internal", "")
	var failed, request bool
	eventually(t, "the request's log lines", func() (bool, error) {
		failed, request = false, false
		for _, raw := range strings.Split(strings.TrimSpace(inst.logs.String()), "\n") {
			var l struct {
				Msg       string `json:"msg"`
				Level     string `json:"level"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(raw), &l); err != nil {
				return false, err
			}
			switch {
			case l.Msg == "request failed" && l.Level == "ERROR" && l.RequestID == p.RequestID:
				failed = true
			case l.Msg == "request" && l.RequestID == p.RequestID:
				request = true
			}
		}
		return failed && request, nil
	})
}

// TestQueryAndCharsetAreRefused: a query string (which no route reads) and
// a body declared in another charset are refused, and store nothing.
func TestQueryAndCharsetAreRefused(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := uniq("q-")
	wantProblem(t, inst.do("PUT", tokensPath(user, "github")+"?dry_run=true", callerAll, map[string]any{"access_token": uniq("at-")}),
		http.StatusBadRequest, "invalid_request", "dry_run")
	wantProblem(t, inst.do("GET", providersPath(user)+"?state=expired", callerAll, nil), http.StatusBadRequest, "invalid_request", "state")
	r := inst.send(rawRequest{method: "PUT", path: offlinePath(user), body: []byte(`{"offline_token":"caf\xe9"}`),
		header: map[string]string{"Authorization": inst.bearer(callerAll), "Content-Type": "application/json; charset=iso-8859-1"}})
	wantProblem(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type")
	r = inst.do("GET", providersPath(user), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	if m := objectKeys(t, r, "user", "providers"); len(m["providers"].([]any)) != 0 {
		t.Errorf("a refused PUT stored tokens: %s", r.body)
	}
	wantProblem(t, inst.do("GET", offlinePath(user), callerAll, nil), http.StatusNotFound, "not_found", "")
}
