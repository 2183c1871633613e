package refresh_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// mislabels are Content-Types real providers and proxies put on JSON.
var mislabels = []string{"text/plain", labelNone, "text/html; charset=utf-8", "application/octet-stream"}

// TestAnswersReadWhateverTheLabel: a rotating provider whose successful
// answers carry the wrong Content-Type (or none) is refreshed like any
// other: the new tokens are stored and served, and the rotated refresh token
// is the one sent next time. Before, such an answer was a failure: the
// service backed off and then sent the rotated-away token, and the strict
// provider revoked the grant.
func TestAnswersReadWhateverTheLabel(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	in := c.instances[0]
	type variant struct {
		label string
		form  bool
	}
	var variants []variant
	for _, l := range mislabels {
		variants = append(variants, variant{l, false}, variant{l, true})
	}
	variants = append(variants, variant{"application/json", true}) // GitHub's form, labelled JSON
	for i, v := range variants {
		user := "label-" + strings.NewReplacer("/", "-", " ", "", ";", "", "=", "").Replace(v.label) + "-" + string(rune('a'+i))
		g := c.fake.NewGrant()
		c.fake.Set(g.id, func(b *behavior) { b.label, b.formEncoded = v.label, v.form })
		c.putGrant(t, user, g, 0)
		for round := 1; round <= 2; round++ {
			wantToken(t, user, in.get(t, user), c.fake.Access(g.id))
			if n := c.fake.Refreshes(g.id); n != round {
				t.Fatalf("%s: %d refreshes after round %d", user, n, round)
			}
			if r := c.row(t, user); r.refresh != c.fake.Current(g.id) {
				t.Fatalf("%s: the stored refresh token is not the rotated one", user)
			}
			c.expireNow(t, user)
		}
		if c.fake.Revoked(g.id) {
			t.Errorf("%s: the grant was revoked", user)
		}
	}
	if n := c.fake.Reuses(); n != 0 {
		t.Errorf("%d refresh tokens presented twice, want 0", n)
	}
}

// TestErrorsClassifiedWhateverTheLabel: an error answer means the same
// whatever its label: invalid_grant (HTTP 400 or GitHub's 200
// bad_refresh_token) is a revoked grant (409 reauth_required, no provider
// call again), not a rejected request retried every few minutes;
// invalid_client stays a configuration problem.
func TestErrorsClassifiedWhateverTheLabel(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{})
	in := c.instances[0]
	for i, label := range mislabels {
		for _, m := range []mode{modeInvalidGrant, modeBadRefreshToken200} {
			user := "revoked-" + string(rune('a'+i)) + "-" + []string{modeInvalidGrant: "400", modeBadRefreshToken200: "200"}[m]
			g := c.fake.NewGrant()
			c.fake.Set(g.id, func(b *behavior) { b.mode, b.label = m, label })
			c.putGrant(t, user, g, 0)
			wantStatus(t, user, in.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
			if st := in.status(t, user); st.State != "reauth_required" || st.refreshError() != "invalid_grant" {
				t.Errorf("%s (%q): state %q refresh_error %q; want reauth_required / invalid_grant", user, label, st.State, st.refreshError())
			}
			wantStatus(t, user+" again", in.get(t, user), http.StatusConflict, httpapi.CodeReauthRequired)
			if n := c.fake.Calls(g.id); n != 1 {
				t.Errorf("%s: %d provider calls, want 1", user, n)
			}
		}
		user := "refused-" + string(rune('a'+i))
		g := c.fake.NewGrant()
		c.fake.Set(g.id, func(b *behavior) { b.mode, b.label = modeInvalidClient, label })
		c.putGrant(t, user, g, 0)
		wantStatus(t, user, in.get(t, user), http.StatusServiceUnavailable, httpapi.CodeUnavailable)
		if st := in.status(t, user); st.refreshError() != "provider_rejected" {
			t.Errorf("%s (%q): refresh_error %q, want provider_rejected", user, label, st.refreshError())
		}
	}
}

// echoes are the ways a careless provider repeats the request in its
// error_description.
var echoes = map[string]func(echoed) string{
	"body":          func(e echoed) string { return e.body },
	"body, low hex": func(e echoed) string { return lowerHex(e.body) },
	"body, base64":  func(e echoed) string { return base64.StdEncoding.EncodeToString([]byte(e.body)) },
	"form as JSON": func(e echoed) string {
		v, _ := url.ParseQuery(e.body)
		b, _ := json.Marshal(v)
		return string(b)
	},
	"python JSON":   func(e echoed) string { return testlog.PythonJSON(e.refreshToken + " " + e.clientSecret) },
	"authorization": func(e echoed) string { return "Authorization: " + e.authorization },
	"base64url":     func(e echoed) string { return base64.RawURLEncoding.EncodeToString([]byte(e.refreshToken)) },
	"cut":           func(e echoed) string { return e.body[:len(e.body)-5] },
}

func lowerHex(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			b.WriteString(strings.ToLower(s[i : i+3]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// TestEchoedRequestNeverLogged: a provider that echoes the request (the
// refresh token and client secret form-encoded, JSON-escaped, in base64,
// the Basic credential) in its error answers under any label: every log
// line of every instance and every answer is searched for every secret in
// every encoding.
func TestEchoedRequestNeverLogged(t *testing.T) {
	t.Parallel()
	for _, style := range []oauth.AuthMethod{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost} {
		t.Run(string(style), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, options{authStyle: style, refresh: lease(2*time.Second, 2*time.Second)})
			in := c.instances[0]
			var answers []string
			i := 0
			for name, echo := range echoes {
				for _, m := range []mode{modeInvalidGrant, modeInvalidClient} {
					i++
					user := "echo-" + string(rune('a'+i))
					g := c.fake.NewGrant()
					c.fake.Set(g.id, func(b *behavior) { b.mode, b.echo, b.label = m, echo, mislabels[i%len(mislabels)] })
					c.putGrant(t, user, g, 0)
					r := in.get(t, user)
					if r.status == http.StatusOK {
						t.Fatalf("%s (%s): 200", user, name)
					}
					answers = append(answers, string(r.body))
				}
			}
			if err := in.stop(); err != nil {
				t.Fatal(err)
			}
			logs := in.logs.String()
			for _, msg := range []string{"refresh token rejected by the provider", "the provider rejected the refresh request", "the grant was revoked: ", "client authentication failed: "} {
				if !strings.Contains(logs, msg) {
					t.Errorf("no log line holds %q: the check would prove nothing", msg)
				}
			}
			secrets := append(c.fake.Secrets(), testlog.BasicCredential(c.fake.clientID, c.fake.clientSecret))
			if s, enc := testlog.FindSecret(logs+strings.Join(answers, "\n"), secrets...); s != "" {
				t.Errorf("secret %q logged or answered as %q", s, enc)
			}
			c.checkLogs()
		})
	}
}
