package api_test

import (
	"net/http"
	"testing"
)

func TestSmokeStoreAndRead(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	r := inst.do("PUT", "/v1/users/alice/providers/gitlab/tokens", callerAll,
		map[string]any{"access_token": "glpat-smoke", "refresh_token": "glrt-smoke", "expires_in": 7200})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("PUT = %d %s", r.StatusCode, r.body)
	}
	r = inst.do("GET", "/v1/users/alice/providers/gitlab/tokens", callerAll, nil)
	var got struct {
		AccessToken string `json:"access_token"`
	}
	r.json(t, &got)
	if r.StatusCode != http.StatusOK || got.AccessToken != "glpat-smoke" {
		t.Fatalf("GET = %d %s", r.StatusCode, r.body)
	}
	inst.noSecretsInLogs("glpat-smoke", "glrt-smoke")
}
