package cli_test

import (
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
)

// TestDatabaseTimeoutSetting: database.timeout is read from its variable,
// defaults to postgres.DefaultTimeout, and must sit between the lock
// timeout and the HTTP write timeout, or a request could be cut off
// without an answer.
func TestDatabaseTimeoutSetting(t *testing.T) {
	t.Parallel()
	callers, _ := callersJSON(t, "svc")
	base := func(extra map[string]string) map[string]string {
		env := map[string]string{
			"TOKENSTORE_DATABASE_URL": "postgres://u@127.0.0.1:5432/tokens",
			"TOKENSTORE_KEYS":         fernetKey(t),
			"TOKENSTORE_CALLERS":      callers,
		}
		for k, v := range extra {
			env[k] = v
		}
		return env
	}
	cfg, err := cli.Load("", false, envOf(base(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.Timeout != postgres.DefaultTimeout {
		t.Errorf("default database.timeout = %s, want %s", cfg.Database.Timeout, postgres.DefaultTimeout)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if cfg, err = cli.Load("", false, envOf(base(map[string]string{"TOKENSTORE_DATABASE_TIMEOUT": "9s"}))); err != nil {
		t.Fatal(err)
	} else if cfg.Database.Timeout != 9*time.Second {
		t.Errorf("TOKENSTORE_DATABASE_TIMEOUT=9s gave %s", cfg.Database.Timeout)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"not below the write timeout", map[string]string{"TOKENSTORE_DATABASE_TIMEOUT": "29500ms"},
			[]string{"TOKENSTORE_DATABASE_TIMEOUT (database.timeout) is 29.5s", "TOKENSTORE_HTTP_WRITE_TIMEOUT is 30s"}},
		{"not above the lock timeout", map[string]string{"TOKENSTORE_DATABASE_TIMEOUT": "2s"},
			[]string{"TOKENSTORE_DATABASE_LOCK_TIMEOUT (database.lock_timeout) is 5s", "TOKENSTORE_DATABASE_TIMEOUT (database.timeout) is 2s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := cli.Load("", false, envOf(base(tc.env)))
			if err != nil {
				t.Fatal(err)
			}
			wantErr(t, cfg.Validate(), tc.want...)
		})
	}
}
