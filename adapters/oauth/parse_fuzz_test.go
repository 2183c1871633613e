package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

// FuzzParseAnswer checks the provider-answer parser and its interpretation
// on any status and body, with any refresh token and client secret in
// flight. Invariants: it never panics; an answer is either tokens with
// exactly the values the body gives (valid UTF-8, no control characters) or
// an error wrapping one of the three provider sentinels; and no error
// string holds the refresh token, the client secret or the Basic
// credential in any encoding (testlog.Encodings), nor spans lines.
//
// The secrets get a marker prefix ("ʀ", "ȼ") so that a secret can never be
// a word of the fixed text around the provider's words ("HTTP 400",
// "provider rejected"): that would be a coincidence, not a leak.
func FuzzParseAnswer(f *testing.F) {
	const rt, cs = "rt/+=%\"é'\\ 𝄞-OLD", "cs+/=%\"ö SECRET"
	q := url.QueryEscape
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"access_token":"at-NEW","expires_in":28800,"refresh_token":"rt-NEW","refresh_token_expires_in":15724800}`},
		{200, "access_token=at-NEW&expires_in=28800&refresh_token=rt-NEW&refresh_token_expires_in=15724800&token_type=bearer"},
		{200, "\uFEFF {\"access_token\":\"a\\/b\\u00e9\\ud834\\udd1e\",\"expires_in\":\"3600\"}"},
		{200, `{"access_token":"at-NEW","expires_in":0,"refresh_expires_in":0,"refresh_token":"rt-NEW"}`},
		{200, `{"access_token":"at-ONE","access_token":"at-TWO"}`},
		{200, "{\"access_token\":\"at-\xff\"}"},
		{200, `{"access_token":"at-\u0000"}`},
		{200, `{"access_token":"at-NEW","expi`},
		{200, `error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired.`},
		{200, `{"access_token":"at-NEW","error":5}`},
		{400, `{"error":"invalid_grant","error_description":"Token is not active"}`},
		{400, `{"error":"invalid_grant","error_description":"grant_type=refresh_token&refresh_token=` + q(rt) + `&client_secret=` + q(cs) + `"}`},
		{400, `{"error":"invalid_grant","error_description":"` + strings.ToLower(q(rt)) + `"}`},
		{400, "error=invalid_grant&error_description=" + q(`{"refresh_token":"`+strings.ReplaceAll(rt, `"`, `\"`)+`"}`)},
		{401, `{"error":"invalid_client","error_description":"Basic ` + testlog.BasicCredential("id", cs) + `"}`},
		{400, `{"error":"` + rt + `"}`},
		{400, `{"error":"invalid_grant","error_description":"x\nlevel=INFO msg=forged \u202e"}`},
		{302, ``},
		{500, `<html>` + rt + `</html>`},
		{503, `{"error":"temporarily_unavailable"}`},
	} {
		f.Add(seed.status, []byte(seed.body), rt, cs)
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, sent, secret string) {
		status = 200 + (status%400+400)%400 // 200..599
		sent, secret = "ʀ"+sent, "ȼ"+secret
		e := &endpoint{resolved: resolved{name: "corp", clientID: "corp id", clientSecret: domain.NewSecret(secret)}}
		a := answer{status: status, fields: parse(body)}
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		got, err := e.interpret(a, now, e.scrubberFor(domain.NewSecret(sent), a))
		if err == nil {
			checkExactTokens(t, body, got)
			return
		}
		if !errors.Is(err, domain.ErrGrantRevoked) && !errors.Is(err, domain.ErrProviderRejected) && !errors.Is(err, domain.ErrProviderUnavailable) {
			t.Fatalf("error %q wraps no provider sentinel", err)
		}
		if !got.AccessToken.IsZero() || !got.RefreshToken.IsZero() {
			t.Fatal("tokens returned with an error")
		}
		msg := err.Error()
		if !utf8.ValidString(msg) || strings.ContainsAny(msg, "\r\n") || len(msg) > 1000 {
			t.Fatalf("error %q: not one bounded line of UTF-8", msg)
		}
		var secrets []string
		for _, s := range []string{sent, secret, basicCredential("corp id", secret)} {
			if len(s) >= minScrubLen {
				secrets = append(secrets, s)
			}
		}
		if s, enc := testlog.FindSecret(msg, secrets...); s != "" {
			t.Fatalf("error %q holds secret %q as %q", msg, s, enc)
		}
	})
}

// checkExactTokens reads body independently (encoding/json for JSON, a
// plain split for forms) and fails unless got holds exactly its tokens.
func checkExactTokens(t *testing.T, body []byte, got domain.RefreshedTokens) {
	t.Helper()
	values := map[string]string{}
	body = bytes.TrimPrefix(body, []byte("\uFEFF"))
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(t, &m); err != nil {
			panic("a JSON body encoding/json cannot read gave tokens: " + err.Error())
		}
		for _, k := range []string{"access_token", "refresh_token"} {
			if s, ok := m[k].(string); ok {
				values[k] = s
			}
		}
	} else {
		for pair := range strings.SplitSeq(string(body), "&") {
			k, v, _ := strings.Cut(pair, "=")
			if name, err := url.QueryUnescape(k); err == nil && (name == "access_token" || name == "refresh_token") && v != "" {
				values[name], _ = url.QueryUnescape(v)
			}
		}
	}
	access, refresh := got.AccessToken.Reveal(), got.RefreshToken.Reveal()
	if access == "" || access != values["access_token"] || refresh != values["refresh_token"] {
		t.Fatalf("tokens %q, %q; the body gives %q, %q", access, refresh, values["access_token"], values["refresh_token"])
	}
	for _, tok := range []string{access, refresh} {
		if !utf8.ValidString(tok) || strings.ContainsFunc(tok, unicode.IsControl) {
			t.Fatalf("token %q: invalid UTF-8 or control characters", tok)
		}
	}
	if refresh == "" && !got.RefreshExpiry.IsNever() {
		t.Fatalf("a refresh expiry without a refresh token")
	}
}
