package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
)

// TestEverySecretFileIsChecked: one rule for every file that holds a
// secret, however it is named. Before, `import openhands --jwt-secret-file`
// and a provider's client_secret_file read a mode 0644 file that
// TOKENSTORE_JWT_SECRET_FILE refused, and `serve --dev` read its caller
// credential whatever its mode. Each is refused now with the same message
// (its setting, the path, the mode and `chmod 600`), and accepted at 0600.
func TestEverySecretFileIsChecked(t *testing.T) {
	t.Parallel()
	const jwt = "the-replaced-systems-jwt-secret"
	key := fernetKey(t)
	cases := []struct {
		name, setting, content string
		// run uses the file at path; its error is compared.
		run func(t *testing.T, path string) error
	}{
		{"key file", "TOKENSTORE_KEY_FILE (key_file)", key + "\n", func(t *testing.T, path string) error {
			_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_KEY_FILE": path}))
			return err
		}},
		{"JWT secret file setting", "TOKENSTORE_JWT_SECRET_FILE (jwt_secret_file)", jwt + "\n", func(t *testing.T, path string) error {
			_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_JWT_SECRET_FILE": path}))
			return err
		}},
		{"JWT secret file flag of the import", "import openhands: --jwt-secret-file", jwt + "\n", func(t *testing.T, path string) error {
			var out bytes.Buffer
			return cli.Run(t.Context(), []string{"import", "openhands", "--source-dsn", "postgres://u@127.0.0.1:1/x", "--jwt-secret-file", path},
				cli.Env{Stdout: &out, Stderr: &out, Getenv: envOf(nil)})
		}},
		{"client secret file", "TOKENSTORE_PROVIDERS[0] (gitlab).client_secret_file", "client-secret\n", func(t *testing.T, path string) error {
			_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_PROVIDERS": `[{"name":"gitlab","client_id":"id","client_secret_file":"` + path + `"}]`}))
			return err
		}},
		{"webhook secret file", "TOKENSTORE_WEBHOOKS[0] (crm).secret_file", "whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY=\n", func(t *testing.T, path string) error {
			_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_WEBHOOKS": `[{"name":"crm","url":"https://crm.example/h","events":["tokens.deleted"],"secret_file":"` + path + `"}]`}))
			return err
		}},
		{"config file with an inline secret", "config file", "jwt_secret: " + jwt + "\n", func(t *testing.T, path string) error {
			_, err := cli.Load(path, false, envOf(nil))
			return err
		}},
		{"development caller credential", "development caller credential", "dev-credential\n", func(t *testing.T, path string) error {
			// --dev reads DIR/caller-credential (and DIR/keys, made private here).
			dir := filepath.Dir(path)
			if err := os.Rename(path, filepath.Join(dir, "caller-credential")); err != nil {
				t.Fatal(err)
			}
			writeAt(t, filepath.Join(dir, "keys"), key+"\n", 0o600)
			var out bytes.Buffer
			return cli.Run(t.Context(), []string{"serve", "--dev"}, cli.Env{Stdout: &out, Stderr: &out,
				Getenv: envOf(map[string]string{"TOKENSTORE_DEV_DIR": dir, "TOKENSTORE_DATABASE_URL": "postgres://u@127.0.0.1:1/x?connect_timeout=1"})})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			shared := writeFile(t, "secret", tc.content, 0o644)
			err := tc.run(t, shared)
			path := shared
			if tc.name == "development caller credential" {
				path = filepath.Join(filepath.Dir(shared), "caller-credential")
			}
			wantErr(t, err, tc.setting+": "+path+" is readable by group or others (mode 0644); run `chmod 600 "+path+"`")
			if err != nil {
				wantNoSecretText(t, err.Error(), strings.TrimSpace(tc.content))
			}

			private := writeFile(t, "secret", tc.content, 0o600)
			if err := tc.run(t, private); err != nil && strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("a 0600 file was refused: %v", err)
			}
		})
	}
}

func writeAt(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestJWTSecretFileKeepsSpaces: a secret file loses only its final line
// breaks, as `import openhands --jwt-secret-file` always read it; before,
// TOKENSTORE_JWT_SECRET_FILE also dropped spaces, so one file derived two
// different keys.
func TestJWTSecretFileKeepsSpaces(t *testing.T) {
	t.Parallel()
	const secret = "  a secret with spaces\t "
	path := writeFile(t, "jwt", secret+"\r\n", 0o600)
	cfg, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_JWT_SECRET_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	if want := fernet.KeyFromJWTSecret(secret); len(cfg.Keys.Keys) != 1 || cfg.Keys.Keys[0].ID() != want.ID() {
		t.Errorf("key %v, want the one derived from the file's text without its final line break (%v)", cfg.Keys.Keys, want)
	}
}
