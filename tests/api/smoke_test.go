package api_test

import (
	"context"
	"testing"

	"github.com/tokenstore/tokenstore/client"
)

func TestSmokeStoreAndRead(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	c := inst.api(callerAll)
	ctx := context.Background()
	if _, err := c.PutTokens(ctx, "alice", "gitlab", client.PutTokensRequest{
		AccessToken: "glpat-smoke", RefreshToken: ptr("glrt-smoke"), ExpiresIn: ptr(int64(7200))}); err != nil {
		t.Fatalf("PutTokens: %v", err)
	}
	got, err := c.GetAccessToken(ctx, "alice", "gitlab")
	if err != nil || got.AccessToken != "glpat-smoke" {
		t.Fatalf("GetAccessToken = %+v, %v", got, err)
	}
	inst.noSecretsInLogs("glpat-smoke", "glrt-smoke")
}
