package oauth_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// Secrets built to be hard to scrub: every character that an encoding
// changes (/ + = % " ' \ space, non-ASCII, a character outside the BMP).
const (
	hardRefresh = `rt/+=%"é'\ ü𝄞-OLD+1a2b==`
	hardSecret  = `cs+/=%"ö SECRET-9f8e/==`
	hardID      = "corp client:1"
)

// assertNoSecretEncoded fails when s holds any of secrets in any encoding
// (testlog.FindSecret), or any long part of one, as a provider that cuts
// its echo leaves.
func assertNoSecretEncoded(t *testing.T, where, s string, secrets ...string) {
	t.Helper()
	if secret, e := testlog.FindSecret(s, secrets...); secret != "" {
		t.Errorf("%s %q holds secret %q encoded as %q", where, s, secret, e)
	}
	unquoted := strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(s)
	for _, secret := range secrets {
		for _, e := range []string{secret, url.QueryEscape(secret)} {
			for i := 0; i+partWindow <= len(e); i++ {
				if part := e[i : i+partWindow]; strings.Contains(s, part) || strings.Contains(unquoted, part) {
					t.Errorf("%s %q holds part %q of secret %q", where, s, part, secret)
					break
				}
			}
		}
	}
}

// partWindow is the shortest part of a secret the checks look for.
const partWindow = 10

// TestEchoedSecretsAreScrubbed drives providers that echo the request in
// their error answers, in every encoding, and checks that no error message
// holds the refresh token sent, the client secret, the Basic credential or
// a token of the answer, in any encoding, while the provider's other words
// remain.
func TestEchoedSecretsAreScrubbed(t *testing.T) {
	t.Parallel()
	const answerToken = "at-ECHOED/+=%é-7q7q7q"
	lowerHex := regexp.MustCompile(`%[0-9A-F]{2}`)
	rt := hardRefresh
	echoes := map[string]func(req request) string{
		"the body as sent":      func(r request) string { return r.body },
		"the body in lower hex": func(r request) string { return lowerHex.ReplaceAllStringFunc(r.body, strings.ToLower) },
		"the body decoded":      func(r request) string { return fmt.Sprint(r.form) },
		"the form as Go JSON":   func(r request) string { b, _ := json.Marshal(r.form); return string(b) },
		"the form as Python JSON": func(r request) string {
			return testlog.PythonJSON(r.form.Get("refresh_token") + " " + r.form.Get("client_secret"))
		},
		"the Authorization header": func(r request) string { return "got " + r.authorization + " and " + r.pass },
		"the body in base64":       func(r request) string { return base64.StdEncoding.EncodeToString([]byte(r.body)) },
		"the token in base64url": func(r request) string {
			return base64.RawURLEncoding.EncodeToString([]byte(rt)) + " / " + base64.URLEncoding.EncodeToString([]byte(hardSecret))
		},
		"the body cut mid-token": func(r request) string { return r.body[:strings.Index(r.body, "refresh_token=")+32] },
		"the token cut at the start": func(r request) string {
			return rt[len(rt)-15:] + " was rejected"
		},
		"the path-escaped token": func(r request) string { return url.PathEscape(rt) + " " + url.PathEscape(hardSecret) },
		"a token of the answer":  func(r request) string { return "issued " + answerToken },
	}
	labels := []string{jsonCT, formCT, "text/plain", ""}
	for name, echo := range echoes {
		for _, method := range []oauth.AuthMethod{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost} {
			for _, label := range labels {
				t.Run(fmt.Sprintf("%s/%s/%q", name, method, label), func(t *testing.T) {
					t.Parallel()
					srv, _ := fakeProvider(t, func(req request) reply {
						desc := "echo: " + echo(req)
						if label == formCT {
							return reply{status: 400, contentType: label, body: url.Values{
								"error": {"invalid_grant"}, "error_description": {desc}, "access_token": {answerToken},
							}.Encode()}
						}
						b, _ := json.Marshal(map[string]string{"error": "invalid_grant", "error_description": desc, "access_token": answerToken})
						return reply{status: 400, contentType: label, body: string(b)}
					})
					cfg := oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: hardID,
						ClientSecret: domain.NewSecret(hardSecret), TokenURL: srv.URL + "/token", TokenEndpointAuthMethod: method}
					_, err := newRefresher(t, srv, cfg).Refresh(t.Context(), "corp", domain.NewSecret(rt))
					if !errors.Is(err, domain.ErrGrantRevoked) {
						t.Fatalf("error = %v, want ErrGrantRevoked", err)
					}
					msg := err.Error()
					assertNoSecretEncoded(t, "error", msg, rt, hardSecret, testlog.BasicCredential(hardID, hardSecret), answerToken)
					if !strings.Contains(msg, "echo:") || !strings.Contains(msg, "error invalid_grant") {
						t.Errorf("error %q lost the provider's words", msg)
					}
					if !utf8.ValidString(msg) || strings.ContainsAny(msg, "\r\n") {
						t.Errorf("error %q is not one line of UTF-8", msg)
					}
				})
			}
		}
	}
}

// A code that echoes a secret is scrubbed like a description.
func TestEchoInErrorCode(t *testing.T) {
	t.Parallel()
	srv, _ := fakeProvider(t, func(req request) reply {
		return reply{status: 400, contentType: "text/plain", body: `{"error":` + string(must(json.Marshal(req.body))) + `}`}
	})
	cfg := generic(srv.URL)
	cfg.ClientSecret = domain.NewSecret(hardSecret)
	_, err := newRefresher(t, srv, cfg).Refresh(t.Context(), "corp", domain.NewSecret(hardRefresh))
	if !errors.Is(err, domain.ErrProviderRejected) {
		t.Fatalf("error = %v, want ErrProviderRejected", err)
	}
	assertNoSecretEncoded(t, "error", err.Error(), hardRefresh, hardSecret)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestTokensReadExactly: tokens are stored exactly as the provider sent
// them, whatever the escapes, and whatever the label.
func TestTokensReadExactly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		reply         reply
		access, fresh string
	}{
		{"json escapes", reply{status: 200, contentType: "text/plain",
			body: `{"access_token":"a\/b\"c\u00e9\ud834\udd1e","refresh_token":"r+\\x"}`}, "a/b\"cé𝄞", `r+\x`},
		{"raw non-ASCII", okJSON(`{"access_token":"ä-ü","refresh_token":"ß"}`), "ä-ü", "ß"},
		{"form: %2B is a plus, + is a space", reply{status: 200, contentType: "text/plain",
			body: "access_token=a%2Bb+c%2f&refresh_token=%3D%3d"}, "a+b c/", "=="},
		{"form without a label", reply{status: 200, body: "refresh_token=rt-NEW&access_token=at-NEW"}, "at-NEW", "rt-NEW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := fakeProvider(t, always(tt.reply))
			got, err := newRefresher(t, srv, generic(srv.URL)).Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
			if err != nil {
				t.Fatal(err)
			}
			if got.AccessToken.Reveal() != tt.access || got.RefreshToken.Reveal() != tt.fresh {
				t.Errorf("tokens %q, %q; want %q, %q", got.AccessToken.Reveal(), got.RefreshToken.Reveal(), tt.access, tt.fresh)
			}
		})
	}
}

// The client-authentication probe reads invalid_client from the body too.
func TestAutoStyleProbeReadsUnlabelledAnswers(t *testing.T) {
	t.Parallel()
	srv, seen := fakeProvider(t, func(req request) reply {
		rep := paramsOnlyProvider(req)
		rep.contentType = "text/plain"
		return rep
	})
	cfg := generic(srv.URL)
	cfg.TokenEndpointAuthMethod = oauth.AuthMethodAuto
	got, err := newRefresher(t, srv, cfg).Refresh(t.Context(), "corp", domain.NewSecret(oldRefresh))
	if err != nil || got.AccessToken.Reveal() != "at-NEW" {
		t.Fatalf("Refresh = %q, %v", got.AccessToken.Reveal(), err)
	}
	if n := len(drain(seen)); n != 2 {
		t.Errorf("%d requests, want 2 (header refused, then body)", n)
	}
}

// TestTransportErrorsAreScrubbed: net/http's errors quote the request URL
// (with its query) and, for a malformed answer, the server's own bytes.
func TestTransportErrorsAreScrubbed(t *testing.T) {
	t.Parallel()
	const querySecret = "q-SECRET-in-the-query-55"
	t.Run("connection refused: no query in the error", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		cfg := generic(srv.URL)
		cfg.TokenURL = srv.URL + "/token?tenant=" + querySecret
		r := newRefresher(t, srv, cfg)
		srv.Close()
		_, err := r.Refresh(t.Context(), "corp", domain.NewSecret(hardRefresh))
		if !errors.Is(err, domain.ErrProviderUnavailable) {
			t.Fatalf("error = %v", err)
		}
		if msg := err.Error(); strings.Contains(msg, querySecret) || !strings.Contains(msg, srv.URL+"/token") {
			t.Errorf("error %q: want the URL without its query", msg)
		}
	})
	t.Run("a malformed answer echoing the request", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					body, _ := io.ReadAll(req.Body)
					// Not an HTTP status line: net/http quotes it in its error.
					_, _ = io.WriteString(c, "ECHO "+string(body)+" "+req.Header.Get("Authorization")+"\r\n\r\n")
				}
				_ = c.Close()
			}
		}()
		for _, method := range []oauth.AuthMethod{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost} {
			cfg := oauth.ProviderConfig{Name: "corp", Kind: oauth.KindOAuth2, ClientID: hardID,
				ClientSecret: domain.NewSecret(hardSecret), TokenURL: "http://" + ln.Addr().String() + "/token", TokenEndpointAuthMethod: method}
			r, err := oauth.New([]oauth.ProviderConfig{cfg})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Refresh(t.Context(), "corp", domain.NewSecret(hardRefresh))
			if !errors.Is(err, domain.ErrProviderUnavailable) {
				t.Fatalf("error = %v", err)
			}
			assertNoSecretEncoded(t, "error", err.Error(), hardRefresh, hardSecret, testlog.BasicCredential(hardID, hardSecret))
			if !strings.Contains(err.Error(), "malformed HTTP") {
				t.Errorf("error %q does not say what went wrong", err)
			}
		}
	})
}
