package cli_test

import (
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
)

// Keys come from the first configured source: TOKENSTORE_KEYS, the key
// file, the legacy JWT secret. Nothing is generated outside --dev.
func TestKeySources(t *testing.T) {
	t.Parallel()
	a, b := fernetKey(t), fernetKey(t)
	ka, _ := fernet.ParseKey(a)
	kb, _ := fernet.ParseKey(b)
	const jwt = "the-replaced-systems-jwt-secret"
	legacy := fernet.KeyFromJWTSecret(jwt)
	lineFile := writeFile(t, "keys", "# newest\n"+a+"\n\n"+b+" # older\n", 0o600)
	jsonFile := writeFile(t, "keys.json", `[{"key":"`+b+`","created_at":"2026-11-01","note":"new"},{"key":"`+a+`"}]`, 0o600)
	objFile := writeFile(t, "keys-obj.json", `{"keys":[{"key":"`+a+`"}]}`, 0o600)
	jwtFile := writeFile(t, "jwt", jwt+"\n", 0o600)

	tests := []struct {
		name   string
		env    map[string]string
		want   []fernet.Key
		source string
	}{
		{"env keys", map[string]string{"TOKENSTORE_KEYS": a + "," + b}, []fernet.Key{ka, kb}, "TOKENSTORE_KEYS"},
		{"env keys win over the key file", map[string]string{"TOKENSTORE_KEYS": b, "TOKENSTORE_KEY_FILE": lineFile}, []fernet.Key{kb}, "TOKENSTORE_KEYS"},
		{"line key file", map[string]string{"TOKENSTORE_KEY_FILE": lineFile, "TOKENSTORE_JWT_SECRET": jwt}, []fernet.Key{ka, kb}, "key file " + lineFile},
		{"JSON list key file", map[string]string{"TOKENSTORE_KEY_FILE": jsonFile}, []fernet.Key{kb, ka}, "key file " + jsonFile},
		{"JSON object key file", map[string]string{"TOKENSTORE_KEY_FILE": objFile}, []fernet.Key{ka}, "key file " + objFile},
		{"legacy JWT secret", map[string]string{"TOKENSTORE_JWT_SECRET": jwt}, []fernet.Key{legacy}, "legacy JWT secret"},
		{"legacy JWT secret file", map[string]string{"TOKENSTORE_JWT_SECRET_FILE": jwtFile}, []fernet.Key{legacy}, "legacy JWT secret"},
		{"nothing", map[string]string{}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := cli.Load("", false, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.KeySource != tc.source || len(cfg.Keys.Keys) != len(tc.want) {
				t.Fatalf("source %q, %d keys; want %q, %d", cfg.KeySource, len(cfg.Keys.Keys), tc.source, len(tc.want))
			}
			for i, k := range tc.want {
				if cfg.Keys.Keys[i].ID() != k.ID() {
					t.Errorf("key #%d = %s, want %s", i, cfg.Keys.Keys[i].ID(), k.ID())
				}
			}
		})
	}
}

func TestKeySourcesInvalid(t *testing.T) {
	t.Parallel()
	const jwt = "the-replaced-systems-jwt-secret"
	open := writeFile(t, "jwt", jwt, 0o644)
	private := writeFile(t, "jwt2", jwt, 0o600)
	badJSON := writeFile(t, "bad.json", `[{"key":"x","colour":"red"}]`, 0o600)
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"readable JWT secret file", map[string]string{"TOKENSTORE_JWT_SECRET_FILE": open}, []string{"TOKENSTORE_JWT_SECRET_FILE", "chmod 600"}},
		{"both JWT forms", map[string]string{"TOKENSTORE_JWT_SECRET_FILE": private, "TOKENSTORE_JWT_SECRET": jwt}, []string{"one way"}},
		{"short JWT secret", map[string]string{"TOKENSTORE_JWT_SECRET": "short"}, []string{"TOKENSTORE_JWT_SECRET", "16 bytes"}},
		{"unknown JSON field", map[string]string{"TOKENSTORE_KEY_FILE": badJSON}, []string{"TOKENSTORE_KEY_FILE", "not valid JSON"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := cli.Load("", false, envOf(tc.env))
			wantErr(t, err, tc.want...)
			if err != nil {
				wantNoSecretText(t, err.Error(), jwt)
			}
		})
	}
}

func wantNoSecretText(t *testing.T, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("%q reveals the secret", text)
	}
}

// A config file holding keys or secrets inline must be private; one that
// only names files and variables may be readable.
func TestConfigFileWithInlineSecretsMustBePrivate(t *testing.T) {
	t.Parallel()
	key := fernetKey(t)
	cases := []struct {
		name, file string
		secret     bool
	}{
		{"inline keys", "keys: [" + key + "]\n", true},
		{"inline JWT secret", "jwt_secret: the-replaced-systems-jwt-secret\n", true},
		{"database password", "database:\n  url: postgres://u:pw@db/x\n", true},
		{"client secret", "providers:\n  - {name: gitlab, client_id: x, client_secret: s3cret}\n", true},
		{"client secret in JSON", `providers: [{"name": "gitlab", "client_id": "x", "client_secret": "s3cret"}]` + "\n", true},
		{"dotted database password", "database.url: postgres://u:pw@db/x\n", true},
		{"direct database password", "database:\n  url: postgres://u@pgbouncer/x\n  direct_url: postgres://u:pw@db/x\n", true},
		{"only references", "key_file: /etc/tokenstore/keys\ndatabase:\n  url: postgres://u@db/x\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "tokenstore.yaml", tc.file, 0o644)
			_, err := cli.Load(path, false, envOf(nil))
			if tc.secret {
				wantErr(t, err, "config file", "chmod 600", "inline")
			} else if err != nil && strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("a file without secrets was refused: %v", err)
			}
		})
	}
}

// A read waiting for a refresh must get its answer before the server's
// write timeout cuts the connection.
func TestValidateWaitTimeoutBelowWriteTimeout(t *testing.T) {
	t.Parallel()
	cfg := validConfig(t)
	cfg.App.Refresh.WaitTimeout = cfg.HTTP.WriteTimeout
	wantErr(t, cfg.Validate(), "TOKENSTORE_REFRESH_WAIT_TIMEOUT", "TOKENSTORE_HTTP_WRITE_TIMEOUT")
}
