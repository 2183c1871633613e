package webhook_test

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/webhook"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// TestNewEndpoints: a valid entry gets its defaults; each invalid one is
// refused with an error naming the entry and the member, never quoting a
// secret.
func TestNewEndpoints(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	good := secretFile(t, secret+"\n", 0o600)
	valid := func() webhook.EndpointSettings {
		return webhook.EndpointSettings{Name: "crm", URL: "https://crm.example/hooks", Events: []string{"tokens.stored"}, SecretFile: good}
	}
	eps, err := webhook.NewEndpoints([]webhook.EndpointSettings{valid(),
		{Name: "local_relay-2", URL: "http://127.0.0.1:8080/h", Events: kinds, SecretFile: good, Timeout: "30s", MaxAge: "24h"},
		{Name: "v6", URL: "http://[::1]:8080/h", Events: kinds[:1], SecretFile: good},
		{Name: "lh", URL: "http://localhost/h", Events: kinds[:1], SecretFile: good},
	}, "webhooks", kinds)
	if err != nil {
		t.Fatal(err)
	}
	if e := eps[0]; e.Timeout != webhook.DefaultTimeout || e.MaxAge != domain.DefaultRetryMaxAge || !e.Wants("tokens.stored") || e.Wants("tokens.deleted") {
		t.Errorf("defaults: %+v timeout %s max age %s", e, e.Timeout, e.MaxAge)
	}
	if e := eps[1]; e.Timeout != 30*time.Second || e.MaxAge != 24*time.Hour || !e.Wants("tokens.deleted") {
		t.Errorf("given: %+v timeout %s max age %s", e, e.Timeout, e.MaxAge)
	}

	short := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 16))
	long := webhook.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 65))
	for _, tc := range []struct {
		name   string
		change func(*webhook.EndpointSettings)
		want   string
	}{
		{"no name", func(s *webhook.EndpointSettings) { s.Name = "" }, `webhooks[0] ("").name: must be 1 to 64`},
		{"upper-case name", func(s *webhook.EndpointSettings) { s.Name = "CRM" }, `webhooks[0] ("CRM").name`},
		{"name with a line break", func(s *webhook.EndpointSettings) { s.Name = "a\nb" }, `webhooks[0] ("a\nb").name`},
		{"plain http elsewhere", func(s *webhook.EndpointSettings) { s.URL = "http://crm.example/h" }, "webhooks[0] (crm).url: must be https"},
		{"user info", func(s *webhook.EndpointSettings) { s.URL = "https://u:p@crm.example/h" }, "webhooks[0] (crm).url: must not contain a user name or password"},
		{"user only", func(s *webhook.EndpointSettings) { s.URL = "https://u@crm.example/h" }, "webhooks[0] (crm).url: must not contain a user name"},
		{"fragment", func(s *webhook.EndpointSettings) { s.URL = "https://crm.example/h#x" }, "webhooks[0] (crm).url: must not contain a fragment"},
		{"relative", func(s *webhook.EndpointSettings) { s.URL = "/h" }, "webhooks[0] (crm).url: must be an absolute https URL"},
		{"no host", func(s *webhook.EndpointSettings) { s.URL = "https:///h" }, "webhooks[0] (crm).url: must include a host"},
		{"other scheme", func(s *webhook.EndpointSettings) { s.URL = "ftp://crm.example/h" }, "webhooks[0] (crm).url: must be an absolute https URL"},
		{"no events", func(s *webhook.EndpointSettings) { s.Events = nil }, "webhooks[0] (crm).events: must list at least one of tokens.stored"},
		{"unknown event", func(s *webhook.EndpointSettings) { s.Events = []string{"tokens.stored", "tokens_stored"} }, `webhooks[0] (crm).events[1]: "tokens_stored" is not an event kind`},
		{"event twice", func(s *webhook.EndpointSettings) { s.Events = []string{"tokens.stored", "tokens.stored"} }, "webhooks[0] (crm).events[1]: tokens.stored is listed twice"},
		{"bad timeout", func(s *webhook.EndpointSettings) { s.Timeout = "15" }, `webhooks[0] (crm).timeout: "15" is not a positive duration`},
		{"zero timeout", func(s *webhook.EndpointSettings) { s.Timeout = "0s" }, "webhooks[0] (crm).timeout"},
		{"negative max age", func(s *webhook.EndpointSettings) { s.MaxAge = "-1h" }, "webhooks[0] (crm).max_age"},
		{"no secret file", func(s *webhook.EndpointSettings) { s.SecretFile = "" }, "webhooks[0] (crm).secret_file: must name the file"},
		{"missing secret file", func(s *webhook.EndpointSettings) { s.SecretFile = good + ".missing" }, "webhooks[0] (crm).secret_file: stat"},
		{"readable secret file", func(s *webhook.EndpointSettings) { s.SecretFile = secretFile(t, secret, 0o644) }, "webhooks[0] (crm).secret_file: "},
		{"empty secret file", func(s *webhook.EndpointSettings) { s.SecretFile = secretFile(t, "\n", 0o600) }, "holds no secret"},
		{"no prefix", func(s *webhook.EndpointSettings) {
			s.SecretFile = secretFile(t, strings.TrimPrefix(secret, webhook.SecretPrefix), 0o600)
		}, "secret #1 in " + "X does not start with whsec_"},
		{"not base64", func(s *webhook.EndpointSettings) { s.SecretFile = secretFile(t, secret+" "+secret[:20]+"!!!!", 0o600) }, "secret #2 in X is not whsec_ followed by standard base64"},
		{"too short", func(s *webhook.EndpointSettings) { s.SecretFile = secretFile(t, short, 0o600) }, "holds 16 bytes: a signing secret is 24 to 64"},
		{"too long", func(s *webhook.EndpointSettings) { s.SecretFile = secretFile(t, long, 0o600) }, "holds 65 bytes"},
		{"repeated secret", func(s *webhook.EndpointSettings) { s.SecretFile = secretFile(t, secret+"\n"+secret, 0o600) }, "secret #2 in X repeats an earlier one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := valid()
			tc.change(&s)
			_, err := webhook.NewEndpoints([]webhook.EndpointSettings{s}, "webhooks", kinds)
			if err == nil {
				t.Fatal("accepted")
			}
			want := strings.ReplaceAll(tc.want, "in X", "in "+s.SecretFile)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
			if found, enc := testlog.FindSecret(err.Error(), secret, strings.TrimPrefix(secret, webhook.SecretPrefix), short, long); found != "" {
				t.Errorf("error %q holds a secret (as %q)", err, enc)
			}
		})
	}

	t.Run("name twice", func(t *testing.T) {
		t.Parallel()
		_, err := webhook.NewEndpoints([]webhook.EndpointSettings{valid(), valid()}, "TOKENSTORE_WEBHOOKS", kinds)
		if want := "TOKENSTORE_WEBHOOKS[1] (crm).name: TOKENSTORE_WEBHOOKS[0] has the same name"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		if eps, err := webhook.NewEndpoints(nil, "webhooks", kinds); err != nil || eps != nil {
			t.Errorf("NewEndpoints(nil) = %v, %v", eps, err)
		}
	})
}

// TestSecretFileRotation: the file's secrets are separated by spaces or
// line breaks (CRLF too), in any number.
func TestSecretFileRotation(t *testing.T) {
	t.Parallel()
	a, _ := newSecret(t)
	b, _ := newSecret(t)
	for _, content := range []string{a + "\n" + b + "\n", a + " " + b, a + "\r\n" + b + "\r\n"} {
		path := secretFile(t, content, 0o600)
		if _, err := webhook.NewEndpoints([]webhook.EndpointSettings{{Name: "crm", URL: "https://crm.example/", Events: kinds, SecretFile: path}}, "webhooks", kinds); err != nil {
			t.Errorf("%q: %v", content, err)
		}
		_ = os.Remove(path)
	}
}
