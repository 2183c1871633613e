package cli_test

import (
	"bytes"
	"cmp"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
)

// libraryWords are what an error in the operator's words never says: a
// decoder's prefix or a Go type.
var libraryWords = []string{"yaml:", "json:", "jsontext:", "cannot unmarshal", "Go ", "oauth.", "httpapi.", "struct", "[]"}

func wantOperatorWords(t *testing.T, err error, secrets ...string) {
	t.Helper()
	_, text, _ := strings.Cut(err.Error(), ".yaml: ") // after the config file's path
	text = cmp.Or(text, err.Error())
	for _, w := range append(libraryWords, secrets...) {
		if strings.Contains(text, w) {
			t.Errorf("error %q says %q", err, w)
		}
	}
}

// TestListVariablesAreStrictJSON: the JSON of TOKENSTORE_CALLERS and
// TOKENSTORE_PROVIDERS means one thing or stops start-up naming the
// variable and the member. Before, a repeated member took the last value,
// "Name" matched name, and the errors read "yaml: unmarshal errors: field
// x not found in type oauth.ProviderSettings".
func TestListVariablesAreStrictJSON(t *testing.T) {
	t.Parallel()
	const secret = "Sup3rSecretClientValue"
	_, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	caller := `"name":"svc","credential_hash":"` + hash + `","permissions":["tokens:read"]`
	gitlab := `"name":"gitlab","kind":"gitlab","client_id":"id","client_secret":"` + secret + `"`
	for _, tc := range []struct {
		name, variable, value string
		want                  []string
	}{
		{"callers duplicate member", "TOKENSTORE_CALLERS", `[{` + caller + `,"name":"other"}]`,
			[]string{"TOKENSTORE_CALLERS[0].name: given twice"}},
		{"callers case-folded member", "TOKENSTORE_CALLERS", `[{"Name":"svc","credential_hash":"` + hash + `","permissions":["tokens:read"]}]`,
			[]string{`TOKENSTORE_CALLERS[0].Name: unknown member "Name" (did you mean name?)`, "name, credential_hash, permissions"}},
		{"callers unknown member", "TOKENSTORE_CALLERS", `[{` + caller + `,"permission":["x"]}]`,
			[]string{`TOKENSTORE_CALLERS[0].permission: unknown member "permission" (did you mean permissions?)`}},
		{"callers invalid UTF-8", "TOKENSTORE_CALLERS", "[{\"name\":\"sv\xffc\",\"credential_hash\":\"" + hash + "\",\"permissions\":[\"tokens:read\"]}]",
			[]string{"TOKENSTORE_CALLERS[0].name: invalid UTF-8"}},
		{"callers lone surrogate", "TOKENSTORE_CALLERS", `[{"name":"svc\ud800","credential_hash":"` + hash + `","permissions":["tokens:read"]}]`,
			[]string{"TOKENSTORE_CALLERS[0].name: a lone surrogate"}},
		{"callers wrong type", "TOKENSTORE_CALLERS", `[{"name":"svc","credential_hash":"` + hash + `","permissions":"tokens:read"}]`,
			[]string{"TOKENSTORE_CALLERS[0].permissions: must be a list of strings"}},
		{"callers not a list", "TOKENSTORE_CALLERS", `{` + caller + `}`,
			[]string{"TOKENSTORE_CALLERS: must be a list of {name, credential_hash, permissions, providers, user_prefix, client_cert_identity}"}},
		{"callers not JSON", "TOKENSTORE_CALLERS", `[{"name":`, []string{"TOKENSTORE_CALLERS: not valid JSON"}},
		{"callers YAML is not JSON", "TOKENSTORE_CALLERS", `[{name: svc}]`, []string{"TOKENSTORE_CALLERS: not valid JSON"}},
		{"providers duplicate secret", "TOKENSTORE_PROVIDERS", `[{` + gitlab + `,"client_secret":"other"}]`,
			[]string{"TOKENSTORE_PROVIDERS[0].client_secret: given twice"}},
		{"providers duplicate never_expires", "TOKENSTORE_PROVIDERS", `[{"name":"github","never_expires":true,"never_expires":false}]`,
			[]string{"TOKENSTORE_PROVIDERS[0].never_expires: given twice"}},
		{"providers case-folded member", "TOKENSTORE_PROVIDERS", `[{` + gitlab + `,"Client_ID":"x"}]`,
			[]string{`TOKENSTORE_PROVIDERS[0].Client_ID: unknown member "Client_ID" (did you mean client_id?)`, "client_secret_file"}},
		{"providers Go field name", "TOKENSTORE_PROVIDERS", `[{` + gitlab + `,"ClientSecret":"x"}]`,
			[]string{`unknown member "ClientSecret"`}},
		{"providers invalid UTF-8 secret", "TOKENSTORE_PROVIDERS", "[{\"name\":\"gitlab\",\"kind\":\"gitlab\",\"client_id\":\"id\",\"client_secret\":\"" + secret + "\xfe\"}]",
			[]string{"TOKENSTORE_PROVIDERS[0].client_secret: invalid UTF-8"}},
		{"providers wrong type", "TOKENSTORE_PROVIDERS", `[{"name":"github","never_expires":"yes"}]`,
			[]string{"TOKENSTORE_PROVIDERS[0].never_expires: must be true or false"}},
		{"providers revoke_on_delete wrong type", "TOKENSTORE_PROVIDERS", `[{"name":"gitlab","client_id":"id","revoke_on_delete":"yes"}]`,
			[]string{"TOKENSTORE_PROVIDERS[0].revoke_on_delete: must be true or false"}},
		{"providers revoke_on_delete unsupported", "TOKENSTORE_PROVIDERS", `[{"name":"bitbucket","client_id":"id","client_secret":"x","revoke_on_delete":true}]`,
			[]string{"TOKENSTORE_PROVIDERS[0] (bitbucket): providers[bitbucket].revoke_on_delete: bitbucket has no API to revoke tokens"}},
		{"providers second entry", "TOKENSTORE_PROVIDERS", `[{` + gitlab + `},{"name":"github","never_expire":true}]`,
			[]string{`TOKENSTORE_PROVIDERS[1].never_expire: unknown member "never_expire" (did you mean never_expires?)`}},
		{"keys duplicate member", "TOKENSTORE_KEYS", `[{"key":"a","key":"b"}]`, []string{"TOKENSTORE_KEYS", "a member name appears twice"}},
		{"keys case-folded member", "TOKENSTORE_KEYS", `[{"Key":"a"}]`, []string{"TOKENSTORE_KEYS", "unknown member"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := cli.Load("", false, envOf(map[string]string{tc.variable: tc.value}))
			wantErr(t, err, tc.want...)
			if err != nil {
				wantOperatorWords(t, err, secret)
			}
		})
	}
}

// TestConfigFileIsStrict: the YAML file's keys are matched exactly and a
// key given twice is refused (yaml.v3 refuses repeated keys only when it
// decodes into Go values; the loader walks nodes). Its lists go through the
// same strict JSON decoder as the variables.
func TestConfigFileIsStrict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"section twice", "log:\n  level: debug\nlog:\n  format: json\n", []string{`"log" is set twice (lines 1 and 3)`}},
		{"nested and dotted", "http:\n  addr: 127.0.0.1:1\nhttp.addr: 127.0.0.1:2\n", []string{`"http.addr" is set twice`}},
		{"scalar key twice", "log.level: debug\nlog.level: error\n", []string{`"log.level" is set twice`}},
		{"case-folded section", "HTTP:\n  addr: 127.0.0.1:1\n", []string{`unknown setting "HTTP.addr"`}},
		{"case-folded key", "log:\n  Level: debug\n", []string{`unknown setting "log.Level"`}},
		{"provider member twice", "providers:\n  - name: github\n    never_expires: true\n    never_expires: false\n",
			[]string{"providers[0].never_expires: given twice"}},
		{"provider case-folded member", "providers:\n  - name: github\n    Never_Expires: true\n",
			[]string{`providers[0].Never_Expires: unknown member "Never_Expires" (did you mean never_expires?)`}},
		{"provider wrong type", "providers:\n  - name: github\n    never_expires: [true]\n",
			[]string{"providers[0].never_expires: must be true or false"}},
		{"caller unknown member", "callers:\n  - name: a\n    credential_hash: x\n    permission: [tokens:read]\n",
			[]string{`callers[0].permission: unknown member "permission" (did you mean permissions?)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "tokenstore.yaml", tc.file, 0o600)
			_, err := cli.Load(path, false, envOf(nil))
			wantErr(t, err, tc.want...)
			if err != nil {
				wantOperatorWords(t, err)
			}
		})
	}
	// A store-only provider, declared in YAML, with numbers and booleans as
	// YAML writes them.
	path := writeFile(t, "tokenstore.yaml", "providers:\n  - name: corp\n    refresh: false\n  - name: github\n    never_expires: yes\n", 0o600)
	if _, err := cli.Load(path, false, envOf(nil)); err == nil || !strings.Contains(err.Error(), "providers[1].never_expires: must be true or false") {
		t.Errorf("YAML 1.1 'yes' = %v; want refused (YAML 1.2 reads it as a string)", err)
	}
	path = writeFile(t, "tokenstore.yaml", "providers:\n  - name: corp\n    refresh: false\n  - name: github\n    never_expires: true\n", 0o600)
	cfg, err := cli.Load(path, false, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := []domain.Provider{"corp", "github"}; !slices.Equal(cfg.App.Providers, want) {
		t.Errorf("declared providers = %v, want %v", cfg.App.Providers, want)
	}
}

// TestMisspeltVariableStopsStartUp: an unknown TOKENSTORE_ variable was
// ignored, so TOKENSTORE_REFRESH_MARGN=5m silently kept the 15-minute
// default. Now every command refuses it, naming the closest setting and
// never its value.
func TestMisspeltVariableStopsStartUp(t *testing.T) {
	t.Parallel()
	run := func(environ ...string) error {
		var out bytes.Buffer
		return cli.Run(t.Context(), []string{"version"}, cli.Env{Stdout: &out, Stderr: &out, Getenv: envOf(nil),
			Environ: func() []string { return environ }})
	}
	err := run("PATH=/bin", "TOKENSTORE_REFRESH_MARGN=5m-value")
	wantErr(t, err, "unknown variable TOKENSTORE_REFRESH_MARGN: did you mean TOKENSTORE_REFRESH_MARGIN?", "serve --help")
	if err != nil && strings.Contains(err.Error(), "5m-value") {
		t.Errorf("error %q quotes the value", err)
	}
	wantErr(t, run("TOKENSTORE_DATABSE_URL=x", "TOKENSTORE_KEY=y"),
		"TOKENSTORE_DATABSE_URL: did you mean TOKENSTORE_DATABASE_URL?", "TOKENSTORE_KEY: did you mean TOKENSTORE_KEYS?")
	wantErr(t, run("TOKENSTORE_FROBNICATE_EVERYTHING_NOW=1"), "unknown variable TOKENSTORE_FROBNICATE_EVERYTHING_NOW: it is not a setting")
	legit := append(cli.Variables(), "TOKENSTORE_TEST_POSTGRES_IMAGE", "TOKENSTORE_TEST_VERBOSE", "TOKENSTORE_ROTATION_ROWS",
		"TOKENSTORE_FERNET_TEST_PRINT_KEY_ID", "NOT_TOKENSTORE_X")
	var environ []string
	for _, name := range legit {
		environ = append(environ, name+"=v")
	}
	if err := run(environ...); err != nil {
		t.Errorf("legitimate variables refused: %v", err)
	}
}

// TestEveryVariableIsListed: every TOKENSTORE_ name the repository's code,
// docs and configs mention is a variable the program reads (cli.Variables)
// or a test suite's; so the list the misspelling check uses is complete.
func TestEveryVariableIsListed(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..")
	known := cli.Variables()
	name := regexp.MustCompile(`TOKENSTORE_[A-Z0-9_]*[A-Z0-9]`)
	testPrefix := regexp.MustCompile(`^TOKENSTORE_(TEST|ROTATION|FERNET_TEST)(_|$)`)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && (d.Name() == ".git" || d.Name() == ".dev") {
			return cmpErr(err, fs.SkipDir)
		}
		if ext := filepath.Ext(path); d.IsDir() || ext != ".go" && ext != ".md" && ext != ".yaml" && ext != ".yml" && ext != ".sh" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range name.FindAllString(string(b), -1) {
			if !slices.Contains(known, n) && !testPrefix.MatchString(n) && !strings.HasSuffix(path, "strict_test.go") {
				t.Errorf("%s mentions %s, which is neither in cli.Variables nor a test suite's", path, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}
