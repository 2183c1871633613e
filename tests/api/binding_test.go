package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// Fernet has no associated data, so without binding a ciphertext moved to
// another row or column would decrypt there. Every case moves real
// ciphertexts with SQL and expects an integrity error, never the token.
func TestMovedCiphertextIsRejected(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	ctx := context.Background()
	put := func(user, provider, access, refresh string) {
		r := inst.do("PUT", tokensPath(user, provider), callerAll,
			map[string]any{"access_token": access, "refresh_token": refresh, "expires_in": 7200})
		wantStatus(t, r, http.StatusOK)
	}
	put("mallory", "gitlab", "mallory-access", "mallory-refresh")
	put("victim", "gitlab", "victim-access", "victim-refresh")
	put("victim", "github", "victim-gh-access", "victim-gh-refresh")
	put("bystander", "gitlab", "bystander-access", "bystander-refresh")
	for _, u := range []string{"mallory", "victim"} {
		r := inst.do("PUT", "/v1/users/"+u+"/offline-token", callerAll, map[string]any{"offline_token": u + "-offline"})
		wantStatus(t, r, http.StatusOK)
	}

	cases := []struct {
		name string
		sql  string
		path string // read afterwards; must fail
	}{
		{"another user's access token",
			`UPDATE auth_tokens SET access_token = (SELECT access_token FROM auth_tokens WHERE user_id = 'victim' AND provider = 'gitlab')
			 WHERE user_id = 'mallory' AND provider = 'gitlab'`,
			tokensPath("mallory", "gitlab")},
		{"another provider's access token of the same user",
			`UPDATE auth_tokens SET access_token = (SELECT access_token FROM auth_tokens WHERE user_id = 'victim' AND provider = 'github')
			 WHERE user_id = 'victim' AND provider = 'gitlab'`,
			tokensPath("victim", "gitlab")},
		{"the refresh token column copied into the access token column",
			`UPDATE auth_tokens SET access_token = refresh_token WHERE user_id = 'victim' AND provider = 'github'`,
			tokensPath("victim", "github")},
		{"another user's offline token",
			`UPDATE offline_tokens SET token = (SELECT token FROM offline_tokens WHERE user_id = 'victim') WHERE user_id = 'mallory'`,
			"/v1/users/mallory/offline-token"},
		{"an access token moved into the offline tokens table",
			`UPDATE offline_tokens SET token = (SELECT access_token FROM auth_tokens WHERE user_id = 'victim' AND provider = 'gitlab'),
			 key_id = (SELECT key_id FROM auth_tokens WHERE user_id = 'victim' AND provider = 'gitlab') WHERE user_id = 'victim'`,
			"/v1/users/victim/offline-token"},
	}
	for _, tc := range cases {
		// Sequential: each case edits rows the next one reads.
		if _, err := inst.pool.Exec(ctx, tc.sql); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r := inst.do("GET", tc.path, callerAll, nil)
		wantProblem(t, r, http.StatusInternalServerError, "integrity_error", "")
		if strings.Contains(string(r.body), "victim-") || strings.Contains(string(r.body), "mallory-") {
			t.Errorf("%s: the answer leaks a token: %s", tc.name, r.body)
		}
	}
	logs := inst.logs.String()
	if n := strings.Count(logs, "integrity: a stored ciphertext belongs to another place"); n != len(cases) {
		t.Errorf("%d integrity log lines, want %d", n, len(cases))
	}
	if !strings.Contains(logs, `"user":"mallory"`) {
		t.Error("the integrity log line does not name the row's user")
	}
	inst.noSecretsInLogs("victim-access", "victim-refresh", "victim-gh-access", "victim-gh-refresh",
		"mallory-access", "mallory-refresh", "victim-offline", "mallory-offline")

	// A row nobody touched still reads normally.
	r := inst.do("GET", tokensPath("bystander", "gitlab"), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	var got struct {
		AccessToken string `json:"access_token"`
	}
	r.json(t, &got)
	if got.AccessToken != "bystander-access" {
		t.Errorf("untouched row reads %q", got.AccessToken)
	}
}
