package refresh_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
)

// TestNoTokenMaterialInLogs drives every refresh outcome that logs
// (success, revoked grant, refused client, provider down, a failed commit)
// with a provider that echoes the refresh token and the client secret in its
// error descriptions, at debug level, and checks that no instance logged any
// token, the client secret or the caller credential. (Every other test in
// this package runs the same check when it ends.)
func TestNoTokenMaterialInLogs(t *testing.T) {
	t.Parallel()
	c := newCluster(t, options{instances: 2, refresh: lease(2*time.Second, 2*time.Second), providerTimeout: time.Second})
	c.fake.SetDefaults(func(b *behavior) { b.echoSecrets = true })
	a, b := c.instances[0], c.instances[1]

	ok := c.fake.NewGrant()
	c.putGrant(t, "log-ok", ok, 0)
	wantToken(t, "success", a.get(t, "log-ok"), c.fake.Access(ok.id))

	revoked := c.fake.NewGrant()
	c.fake.Set(revoked.id, func(b *behavior) { b.mode = modeInvalidGrant })
	c.putGrant(t, "log-revoked", revoked, 0)
	wantStatus(t, "invalid_grant", b.get(t, "log-revoked"), http.StatusConflict, httpapi.CodeReauthRequired)

	refused := c.fake.NewGrant()
	c.fake.Set(refused.id, func(b *behavior) { b.mode = modeInvalidClient })
	c.putGrant(t, "log-refused", refused, 0)
	wantStatus(t, "invalid_client", a.get(t, "log-refused"), http.StatusServiceUnavailable, httpapi.CodeUnavailable)

	down := c.fake.NewGrant()
	c.fake.Set(down.id, func(b *behavior) { b.mode = mode5xx })
	c.putGrant(t, "log-down", down, 0)
	wantStatus(t, "5xx", b.get(t, "log-down"), http.StatusServiceUnavailable, httpapi.CodeUnavailable)

	limited := c.fake.NewGrant()
	c.fake.Set(limited.id, func(b *behavior) { b.mode = mode429 })
	c.putGrant(t, "log-limited", limited, 0)
	wantStatus(t, "429", a.get(t, "log-limited"), http.StatusServiceUnavailable, httpapi.CodeUnavailable)

	lost := c.fake.NewGrant()
	c.putGrant(t, "log-lost", lost, 0)
	var once atomic.Bool
	c.fake.SetHook(func(call hookCall) {
		if call.grant == lost.id && !once.Swap(true) {
			if _, err := c.db.Exec(context.Background(),
				`ALTER TABLE auth_tokens ADD CONSTRAINT block_writes CHECK (false) NOT VALID`); err != nil {
				t.Errorf("hook: %v", err)
			}
		}
	})
	r := a.get(t, "log-lost")
	c.exec(t, `ALTER TABLE auth_tokens DROP CONSTRAINT IF EXISTS block_writes`)
	wantStatus(t, "failed commit", r, http.StatusServiceUnavailable, httpapi.CodeUnavailable)
	eventually(t, 15*time.Second, "the interrupted refresh marked", func() (bool, string) {
		r := b.get(t, "log-lost")
		return r.code == httpapi.CodeReauthRequired, r.String()
	})

	for _, in := range c.instances {
		if err := in.stop(); err != nil {
			t.Fatal(err)
		}
	}
	all := a.logs.String() + b.logs.String()
	for _, msg := range []string{
		"tokens refreshed",
		"refresh token rejected by the provider",
		"the provider rejected the refresh request",
		"refresh failed transiently",
		"refresh failed after the request was sent",
		"refreshed tokens could not be stored",
		"refresh was interrupted",
	} {
		if !strings.Contains(all, msg) {
			t.Errorf("no log line %q: the check would prove nothing", msg)
		}
	}
	c.checkLogs()
}
