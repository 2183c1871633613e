package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	svix "github.com/svix/svix-webhooks/go"

	"github.com/tokenstore/tokenstore/adapters/webhook"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

var kinds = []string{"tokens.stored", "tokens.reauth_required", "tokens.deleted"}

// newSecret returns a fresh signing secret, whsec_ and 32 random bytes in
// base64, and those bytes.
func newSecret(t *testing.T) (string, []byte) {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key), key
}

// secretFile writes content to a private file and returns its path.
func secretFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// endpoint builds one endpoint to url signing with secrets.
func endpoint(t *testing.T, url, timeout string, secrets ...string) webhook.Endpoint {
	t.Helper()
	eps, err := webhook.NewEndpoints([]webhook.EndpointSettings{{
		Name: "crm", URL: url, Events: []string{"tokens.reauth_required"},
		SecretFile: secretFile(t, strings.Join(secrets, "\n")+"\n", 0o600), Timeout: timeout,
	}}, "webhooks", kinds)
	if err != nil {
		t.Fatal(err)
	}
	return eps[0]
}

// Every test sends through its receiver's own client (srv.Client()): an
// httptest server's Close also closes the idle connections of
// http.DefaultTransport, which would break a parallel test's delivery.

// received is what the test's receiver saw of one request.
type received struct {
	header http.Header
	body   []byte
}

// receiver starts a server answering with answer and recording every
// request.
func receiver(t *testing.T, answer http.HandlerFunc) (*httptest.Server, <-chan received) {
	t.Helper()
	got := make(chan received, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), body}
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// specVerify checks a delivery as the Standard Webhooks specification
// describes it, written from the text, not from either library: one of the
// space-separated "v1,<base64>" signatures is the HMAC-SHA256, keyed with
// the secret's decoded bytes, of "id.timestamp.body".
func specVerify(key []byte, h http.Header, body []byte) bool {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// TestDeliverSigns: a delivery carries the Standard Webhooks headers and
// body, and its signature verifies with Svix's verifier (an independent
// implementation: signing uses the standard-webhooks library) and with one
// written from the specification.
func TestDeliverSigns(t *testing.T) {
	t.Parallel()
	secret, key := newSecret(t)
	srv, got := receiver(t, status(http.StatusNoContent))
	ep := endpoint(t, srv.URL+"/hooks?tenant=a", "", secret)
	ts := time.Now().Truncate(time.Second)
	body := []byte(`{"type":"tokens.reauth_required","data":{"user":"alice","provider":"gitlab"}}`)
	if err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), ep, webhook.Message{ID: "evt_01J9", Timestamp: ts, Body: body}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	r := <-got
	if !bytes.Equal(r.body, body) {
		t.Errorf("body = %q, want %q", r.body, body)
	}
	for name, want := range map[string]string{"webhook-id": "evt_01J9", "webhook-timestamp": strconv.FormatInt(ts.Unix(), 10), "content-type": "application/json"} {
		if v := r.header.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	wh, err := svix.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Errorf("svix Verify: %v", err)
	}
	if !specVerify(key, r.header, r.body) {
		t.Errorf("signature %q does not verify as the specification says", r.header.Get("webhook-signature"))
	}
	other, _ := newSecret(t)
	if wh, _ := svix.NewWebhook(other); wh.Verify(r.body, r.header) == nil {
		t.Error("another secret verified the delivery")
	}
	r.header.Set("webhook-id", "evt_01J8")
	if wh.Verify(r.body, r.header) == nil {
		t.Error("a changed webhook-id still verified: the id is not signed")
	}
}

// TestDeliverSignsWithEverySecret: during a rotation the file holds the new
// and the old secret; each delivery carries both signatures, so a receiver
// holding either verifies it.
func TestDeliverSignsWithEverySecret(t *testing.T) {
	t.Parallel()
	oldSecret, oldKey := newSecret(t)
	newSecretText, newKey := newSecret(t)
	srv, got := receiver(t, status(http.StatusOK))
	ep := endpoint(t, srv.URL, "", newSecretText, oldSecret)
	if err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), ep, webhook.Message{ID: "evt_2", Body: []byte(`{}`)}); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	r := <-got
	if sigs := strings.Split(r.header.Get("webhook-signature"), " "); len(sigs) != 2 {
		t.Fatalf("webhook-signature has %d signatures, want 2: %q", len(sigs), sigs)
	}
	for i, s := range []struct {
		secret string
		key    []byte
	}{{newSecretText, newKey}, {oldSecret, oldKey}} {
		wh, err := svix.NewWebhook(s.secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("secret #%d: svix Verify: %v", i+1, err)
		}
		if !specVerify(s.key, r.header, r.body) {
			t.Errorf("secret #%d: no signature verifies as the specification says", i+1)
		}
	}
}

// TestDeliverOutcomes: 2xx is delivered; 410 says the endpoint is gone;
// every other answer, and no answer, is undelivered (retried), 4xx
// included, as the Standard Webhooks specification counts them.
func TestDeliverOutcomes(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	for _, tc := range []struct {
		code int
		want error
	}{
		{200, nil}, {202, nil}, {204, nil},
		{410, webhook.ErrEndpointGone},
		{400, webhook.ErrUndelivered}, {401, webhook.ErrUndelivered}, {404, webhook.ErrUndelivered},
		{408, webhook.ErrUndelivered}, {500, webhook.ErrUndelivered}, {502, webhook.ErrUndelivered},
		{304, webhook.ErrUndelivered},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			t.Parallel()
			srv, _ := receiver(t, status(tc.code))
			err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), endpoint(t, srv.URL, "", secret), webhook.Message{ID: "evt_3", Body: []byte(`{}`)})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Deliver = %v, want %v", err, tc.want)
			}
			var de *webhook.DeliveryError
			if tc.want != nil && (!errors.As(err, &de) || de.Status != tc.code || de.Endpoint != "crm") {
				t.Errorf("Deliver = %#v, want a DeliveryError for crm with status %d", err, tc.code)
			}
		})
	}
}

// TestDeliverConnectionRefused: no receiver listening is undelivered, and
// the error names no URL.
func TestDeliverConnectionRefused(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	srv := httptest.NewServer(status(200))
	url := srv.URL + "/hook?token=receiver-own-token"
	srv.Close()
	err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), endpoint(t, url, "", secret), webhook.Message{ID: "evt_4", Body: []byte(`{}`)})
	if !errors.Is(err, webhook.ErrUndelivered) {
		t.Fatalf("Deliver = %v, want ErrUndelivered", err)
	}
	if strings.Contains(err.Error(), "receiver-own-token") || strings.Contains(err.Error(), "/hook") {
		t.Errorf("error %q quotes the endpoint's URL", err)
	}
}

// TestDeliverRefusesRedirects: a 3xx is a failure named as a redirect, and
// the place it points to is never called.
func TestDeliverRefusesRedirects(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	target, hits := receiver(t, status(http.StatusOK))
	for _, code := range []int{301, 302, 303, 307, 308} {
		srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL, code) })
		err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), endpoint(t, srv.URL, "", secret), webhook.Message{ID: "evt_5", Body: []byte(`{}`)})
		var de *webhook.DeliveryError
		if !errors.Is(err, webhook.ErrUndelivered) || !errors.As(err, &de) || de.Status != code || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("%d: Deliver = %v, want ErrUndelivered naming a redirect", code, err)
		}
	}
	select {
	case r := <-hits:
		t.Fatalf("the redirect was followed: target got %s", r.header.Get("webhook-id"))
	default:
	}
}

// TestDeliverTimesOut: a receiver that does not answer within the
// endpoint's timeout is undelivered, said as a timeout, and the delivery
// does not wait for it.
func TestDeliverTimesOut(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	release := make(chan struct{})
	srv, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), endpoint(t, srv.URL, "50ms", secret), webhook.Message{ID: "evt_6", Body: []byte(`{}`)})
	if !errors.Is(err, webhook.ErrUndelivered) || !strings.Contains(err.Error(), "timeout (50ms)") {
		t.Fatalf("Deliver = %v, want ErrUndelivered naming the 50ms timeout", err)
	}
}

// TestDeliverHonoursRetryAfter: a 429 or 503 with Retry-After (seconds or
// an HTTP-date) says when to retry, as a domain.RetryAtError around
// ErrUndelivered; an invalid or past one is ignored.
func TestDeliverHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		code  int
		value string
		want  time.Time // zero: no RetryAtError
	}{
		{429, "120", now.Add(2 * time.Minute)},
		{503, "0", now},
		{429, now.Add(time.Hour).Format(http.TimeFormat), now.Add(time.Hour)},
		{429, now.Add(-time.Hour).Format(http.TimeFormat), time.Time{}},
		{429, "-5", time.Time{}},
		{429, "soon", time.Time{}},
		{500, "30", now.Add(30 * time.Second)},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.code, tc.value), func(t *testing.T) {
			t.Parallel()
			srv, _ := receiver(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", tc.value)
				w.WriteHeader(tc.code)
			})
			s := webhook.New(webhook.WithClock(func() time.Time { return now }), webhook.WithHTTPClient(srv.Client()))
			err := s.Deliver(t.Context(), endpoint(t, srv.URL, "", secret), webhook.Message{ID: "evt_7", Timestamp: time.Now(), Body: []byte(`{}`)})
			if !errors.Is(err, webhook.ErrUndelivered) {
				t.Fatalf("Deliver = %v, want ErrUndelivered", err)
			}
			var ra *domain.RetryAtError
			switch ok := errors.As(err, &ra); {
			case tc.want.IsZero() && ok:
				t.Errorf("RetryAtError at %v, want none", ra.At)
			case !tc.want.IsZero() && (!ok || !ra.At.Equal(tc.want)):
				t.Errorf("Deliver = %v, want a RetryAtError at %v", err, tc.want)
			}
		})
	}
}

// TestDeliverRefusesInvalidIDs: an id the signed content or a header
// cannot carry is refused before anything is sent.
func TestDeliverRefusesInvalidIDs(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	srv, got := receiver(t, status(200))
	ep := endpoint(t, srv.URL, "", secret)
	for _, id := range []string{"", "evt.1", "evt 1", "evt\n1", "évt", strings.Repeat("a", 257)} {
		if err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), ep, webhook.Message{ID: id, Body: []byte(`{}`)}); !errors.Is(err, webhook.ErrInvalidMessage) {
			t.Errorf("id %q: Deliver = %v, want ErrInvalidMessage", id, err)
		}
	}
	if err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), webhook.Endpoint{Name: "bare", URL: srv.URL, Timeout: time.Second}, webhook.Message{ID: "evt_8"}); !errors.Is(err, webhook.ErrInvalidMessage) {
		t.Errorf("an endpoint without secrets: Deliver = %v, want ErrInvalidMessage", err)
	}
	if len(got) != 0 {
		t.Errorf("%d requests were sent", len(got))
	}
}

// TestNoSecretInOutput: neither the signing secret nor its key, in any
// encoding, reaches an error (even from a receiver echoing everything it
// got) or a rendering of the endpoint.
func TestNoSecretInOutput(t *testing.T) {
	t.Parallel()
	secret, key := newSecret(t)
	b64 := strings.TrimPrefix(secret, webhook.SecretPrefix)
	echo := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "5")
			w.Header().Set("X-Echo", secret)
			w.WriteHeader(code)
			_ = r.Header.Write(w)
			fmt.Fprintf(w, "%s %s %x", secret, b64, key)
		}
	}
	var out strings.Builder
	for _, code := range []int{302, 400, 410, 429, 500} {
		srv, _ := receiver(t, echo(code))
		ep := endpoint(t, srv.URL, "", secret)
		err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(t.Context(), ep, webhook.Message{ID: "evt_9", Body: []byte(`{}`)})
		fmt.Fprintf(&out, "%v\n%+v\n%#v\n%v %+v %#v %s\n", err, err, err, ep, ep, ep, ep)
	}
	srv, _ := receiver(t, status(200))
	ep := endpoint(t, srv.URL, "", secret)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("endpoint", "endpoint", ep, "endpoints", []webhook.Endpoint{ep})
	for _, s := range []string{secret, b64, string(key), fmt.Sprintf("%x", key)} {
		if found, enc := testlog.FindSecret(out.String(), s); found != "" {
			t.Fatalf("output holds the secret (as %q):\n%s", enc, out.String())
		}
	}
	if !strings.Contains(out.String(), "crm") {
		t.Fatalf("output does not name the endpoint:\n%s", out.String())
	}
}

// TestDeliverHonoursCancellation: a cancelled context ends the delivery as
// undelivered.
func TestDeliverHonoursCancellation(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	srv, _ := receiver(t, status(200))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := webhook.New(webhook.WithHTTPClient(srv.Client())).Deliver(ctx, endpoint(t, srv.URL, "", secret), webhook.Message{ID: "evt_10", Body: []byte(`{}`)})
	if !errors.Is(err, webhook.ErrUndelivered) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver = %v, want ErrUndelivered wrapping context.Canceled", err)
	}
}
