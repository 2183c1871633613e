package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// NewCallers names the setting, the entry and the field of the first
// invalid entry.
func TestNewCallers(t *testing.T) {
	t.Parallel()
	_, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	callers, err := httpapi.NewCallers([]httpapi.CallerConfig{{Name: "billing", CredentialHash: hash, Permissions: []string{"tokens:read"}}}, "callers")
	if err != nil || len(callers) != 1 || callers[0].Name != "billing" || callers[0].Permissions[0] != httpapi.PermTokensRead {
		t.Fatalf("NewCallers = %+v, %v", callers, err)
	}
	_, err = httpapi.NewCallers([]httpapi.CallerConfig{{Name: "billing", CredentialHash: hash, Permissions: []string{"tokens:read"}}, {CredentialHash: hash}}, "TOKENSTORE_CALLERS")
	if err == nil || err.Error() != "TOKENSTORE_CALLERS[1].name: must not be empty" {
		t.Errorf("err = %v, want the setting, index and field", err)
	}
}

// A read may wait for a refresh only as long as the write timeout allows,
// or its answer is cut off.
func TestValidateRefreshWait(t *testing.T) {
	t.Parallel()
	cfg := httpapi.DefaultConfig()
	cfg.WriteTimeout = 10 * time.Second
	if err := cfg.Validate(5 * time.Second); err != nil {
		t.Errorf("wait 5s, write timeout 10s: %v", err)
	}
	if err := cfg.Validate(10 * time.Second); err == nil || !strings.Contains(err.Error(), "TOKENSTORE_REFRESH_WAIT_TIMEOUT") {
		t.Errorf("wait 10s, write timeout 10s: err = %v, want the wait named", err)
	}
	cfg.WriteTimeout = 0 // no limit
	if err := cfg.Validate(time.Hour); err != nil {
		t.Errorf("no write timeout: %v", err)
	}
}
