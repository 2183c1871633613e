package cli_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
)

const webhookSecret = "whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSY="

// TestLoadWebhooks: the webhooks setting, from TOKENSTORE_WEBHOOKS' JSON or
// the config file's YAML list, gives the validated endpoints.
func TestLoadWebhooks(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "crm.secret", webhookSecret+"\n", 0o600)
	fromEnv, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_WEBHOOKS": `[{"name":"crm","url":"https://crm.example/h",` +
		`"events":["tokens.reauth_required","tokens.recovered"],"secret_file":"` + secret + `","timeout":"20s","max_age":"48h"}]`}))
	if err != nil {
		t.Fatal(err)
	}
	file := "webhooks:\n  - name: crm\n    url: https://crm.example/h\n    events: [tokens.reauth_required, tokens.recovered]\n" +
		"    secret_file: " + secret + "\n    timeout: 20s\n    max_age: 48h\n"
	fromFile, err := cli.Load(writeFile(t, "tokenstore.yaml", file, 0o644), false, envOf(nil))
	if err != nil {
		t.Fatal(err) // a secret_file is no inline secret: the config file may be readable
	}
	for name, cfg := range map[string]cli.Config{"env": fromEnv, "file": fromFile} {
		if len(cfg.Webhooks) != 1 {
			t.Fatalf("%s: %d webhooks", name, len(cfg.Webhooks))
		}
		e := cfg.Webhooks[0]
		if e.Name != "crm" || e.URL != "https://crm.example/h" || !slices.Equal(e.Events, []string{"tokens.reauth_required", "tokens.recovered"}) ||
			e.Timeout != 20*time.Second || e.MaxAge != 48*time.Hour {
			t.Errorf("%s: endpoint %+v (timeout %s, max age %s)", name, e, e.Timeout, e.MaxAge)
		}
	}
}

// TestWebhooksSettingIsStrict: TOKENSTORE_WEBHOOKS and the file's list are
// decoded as strictly as callers and providers; errors name the entry and
// the member, never the secret.
func TestWebhooksSettingIsStrict(t *testing.T) {
	t.Parallel()
	secret := writeFile(t, "crm.secret", webhookSecret+"\n", 0o600)
	entry := `"name":"crm","url":"https://crm.example/h","events":["tokens.deleted"],"secret_file":"` + secret + `"`
	for _, tc := range []struct{ name, value, want string }{
		{"member twice", `[{` + entry + `,"url":"https://other.example/"}]`, "TOKENSTORE_WEBHOOKS[0].url: given twice"},
		{"case-folded member", `[{` + entry + `,"Secret_File":"x"}]`, `TOKENSTORE_WEBHOOKS[0].Secret_File: unknown member "Secret_File" (did you mean secret_file?)`},
		{"inline secret", `[{` + entry + `,"secret":"` + webhookSecret + `"}]`, `TOKENSTORE_WEBHOOKS[0].secret: unknown member "secret"`},
		{"events not a list", `[{"name":"crm","url":"https://crm.example/h","events":"tokens.deleted"}]`, "TOKENSTORE_WEBHOOKS[0].events: must be a list of strings"},
		{"not a list", `{` + entry + `}`, "TOKENSTORE_WEBHOOKS: must be a list of {name, url, events, secret_file, timeout, max_age}"},
		{"unknown kind", `[{"name":"crm","url":"https://crm.example/h","events":["tokens_deleted"],"secret_file":"` + secret + `"}]`,
			`TOKENSTORE_WEBHOOKS[0] (crm).events[0]: "tokens_deleted" is not an event kind: use tokens.stored, tokens.refreshed`},
		{"plain http", `[{"name":"crm","url":"http://crm.example/h","events":["tokens.deleted"],"secret_file":"` + secret + `"}]`,
			"TOKENSTORE_WEBHOOKS[0] (crm).url: must be https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := cli.Load("", false, envOf(map[string]string{"TOKENSTORE_WEBHOOKS": tc.value}))
			wantErr(t, err, tc.want)
			if err != nil {
				wantOperatorWords(t, err, webhookSecret, strings.TrimPrefix(webhookSecret, "whsec_"))
			}
		})
	}
	path := writeFile(t, "tokenstore.yaml", "webhooks:\n  - name: crm\n    url: https://crm.example/h\n    url: https://other.example/\n", 0o600)
	_, err := cli.Load(path, false, envOf(nil))
	wantErr(t, err, "webhooks[0].url: given twice")
}
