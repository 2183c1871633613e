package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

func validAuthTokens() domain.AuthTokens {
	return domain.AuthTokens{
		User:          "f47ac10b-58cc-4372-a567-0e02b2c3d479",
		Provider:      domain.ProviderGitLab,
		AccessToken:   domain.NewSecret(plaintext),
		RefreshToken:  domain.NewSecret(plaintext + "-refresh"),
		AccessExpiry:  domain.At(now.Add(time.Hour)),
		RefreshExpiry: domain.At(now.Add(30 * 24 * time.Hour)),
	}
}

func TestAuthTokensValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mutate    func(*domain.AuthTokens)
		wantField string // "" means valid
	}{
		{"complete", func(*domain.AuthTokens) {}, ""},
		{"no refresh token, never", func(a *domain.AuthTokens) {
			a.RefreshToken, a.RefreshExpiry = domain.Secret{}, domain.Never()
		}, ""},
		{"refresh token never expires", func(a *domain.AuthTokens) { a.RefreshExpiry = domain.Never() }, ""},
		{"access never expires", func(a *domain.AuthTokens) { a.AccessExpiry = domain.Never() }, ""},
		{"access already expired is still storable", func(a *domain.AuthTokens) {
			a.AccessExpiry = domain.At(now.Add(-time.Hour))
		}, ""},
		{"custom provider", func(a *domain.AuthTokens) { a.Provider = "gitlab-internal" }, ""},

		{"empty user", func(a *domain.AuthTokens) { a.User = "" }, "user"},
		{"user with newline", func(a *domain.AuthTokens) { a.User = "alice\n" }, "user"},
		{"user too long", func(a *domain.AuthTokens) { a.User = domain.UserID(strings.Repeat("a", 256)) }, "user"},
		{"user invalid UTF-8", func(a *domain.AuthTokens) { a.User = "\xff" }, "user"},
		{"empty provider", func(a *domain.AuthTokens) { a.Provider = "" }, "provider"},
		{"upper-case provider", func(a *domain.AuthTokens) { a.Provider = "GitHub" }, "provider"},
		{"provider too long", func(a *domain.AuthTokens) { a.Provider = domain.Provider(strings.Repeat("a", 65)) }, "provider"},
		{"empty access token", func(a *domain.AuthTokens) { a.AccessToken = domain.Secret{} }, "access_token"},
		{"refresh expiry without refresh token", func(a *domain.AuthTokens) { a.RefreshToken = domain.Secret{} }, "refresh_token_expires_at"},
		{"past refresh expiry without refresh token", func(a *domain.AuthTokens) {
			a.RefreshToken, a.RefreshExpiry = domain.Secret{}, domain.At(now.Add(-time.Hour))
		}, "refresh_token_expires_at"},

		// Order: the first failing field is reported.
		{"user checked before provider", func(a *domain.AuthTokens) { a.User, a.Provider = "", "" }, "user"},
		{"provider checked before access token", func(a *domain.AuthTokens) {
			a.Provider, a.AccessToken = "", domain.Secret{}
		}, "provider"},
		{"access token checked before refresh expiry", func(a *domain.AuthTokens) {
			a.AccessToken, a.RefreshToken = domain.Secret{}, domain.Secret{}
		}, "access_token"},
		{"zero value", func(a *domain.AuthTokens) { *a = domain.AuthTokens{} }, "user"},

		// Token values: no control characters, valid UTF-8; non-ASCII is kept.
		{"access token with NUL", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("a\x00b") }, "access_token"},
		{"access token with newline", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tok\n") }, "access_token"},
		{"access token with CR", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tok\r") }, "access_token"},
		{"access token with tab", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("t\tok") }, "access_token"},
		{"access token with U+001F", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tok\x1f") }, "access_token"},
		{"access token with DEL", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tok\x7f") }, "access_token"},
		{"access token with invalid UTF-8", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tok-\xff\xfe") }, "access_token"},
		{"access token with a UTF-8-encoded surrogate", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tok-\xed\xa0\x80") }, "access_token"},
		{"refresh token with NUL", func(a *domain.AuthTokens) { a.RefreshToken = domain.NewSecret("r\x00") }, "refresh_token"},
		{"refresh token with invalid UTF-8", func(a *domain.AuthTokens) { a.RefreshToken = domain.NewSecret("\xc0\xaf") }, "refresh_token"},
		{"access token checked before refresh token", func(a *domain.AuthTokens) {
			a.AccessToken, a.RefreshToken = domain.NewSecret("a\x00"), domain.NewSecret("r\x00")
		}, "access_token"},
		{"non-ASCII access token is kept", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tök-名前-😀") }, ""},
		{"C1 control U+0085 is not refused", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret("tok\u0085") }, ""},
		{"every VSCHAR", func(a *domain.AuthTokens) { a.AccessToken = domain.NewSecret(vschars()) }, ""},
		{"space inside", func(a *domain.AuthTokens) { a.RefreshToken = domain.NewSecret("r t") }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := validAuthTokens()
			tc.mutate(&tok)
			err := tok.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			assertValidationError(t, err, tc.wantField)
			assertNoLeak(t, err.Error())
		})
	}
}

func TestOfflineTokenValidate(t *testing.T) {
	t.Parallel()
	valid := func() domain.OfflineToken {
		return domain.OfflineToken{User: "alice", Token: domain.NewSecret(plaintext)}
	}
	tests := []struct {
		name      string
		mutate    func(*domain.OfflineToken)
		wantField string
	}{
		{"valid", func(*domain.OfflineToken) {}, ""},
		{"storage timestamps ignored", func(o *domain.OfflineToken) { o.CreatedAt, o.UpdatedAt = now, now }, ""},
		{"empty user", func(o *domain.OfflineToken) { o.User = "" }, "user"},
		{"user with control char", func(o *domain.OfflineToken) { o.User = "a\u0085" }, "user"},
		{"user too long", func(o *domain.OfflineToken) { o.User = domain.UserID(strings.Repeat("é", 128)) }, "user"},
		{"empty token", func(o *domain.OfflineToken) { o.Token = domain.Secret{} }, "offline_token"},
		{"user checked before token", func(o *domain.OfflineToken) { o.User, o.Token = "", domain.Secret{} }, "user"},
		{"zero value", func(o *domain.OfflineToken) { *o = domain.OfflineToken{} }, "user"},
		{"token with NUL", func(o *domain.OfflineToken) { o.Token = domain.NewSecret("c\x00") }, "offline_token"},
		{"token with newline", func(o *domain.OfflineToken) { o.Token = domain.NewSecret("c\n") }, "offline_token"},
		{"token with DEL", func(o *domain.OfflineToken) { o.Token = domain.NewSecret("\x7fc") }, "offline_token"},
		{"token with invalid UTF-8", func(o *domain.OfflineToken) { o.Token = domain.NewSecret("c\xff") }, "offline_token"},
		{"non-ASCII token is kept", func(o *domain.OfflineToken) { o.Token = domain.NewSecret("jwt.ü.名") }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := valid()
			tc.mutate(&tok)
			err := tok.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			assertValidationError(t, err, tc.wantField)
			assertNoLeak(t, err.Error())
		})
	}
}

// vschars is every character RFC 6749 Appendix A allows in a token.
func vschars() string {
	var b strings.Builder
	for c := byte(0x20); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}

// TestCheckTokenNeverEchoesTheValue: the error names the field and the
// offending character's position, never the token.
func TestCheckTokenNeverEchoesTheValue(t *testing.T) {
	t.Parallel()
	const secret = "gho_checksecret123"
	for _, v := range []string{secret + "\x00", "\n" + secret, secret + "\xff"} {
		err := domain.CheckToken("access_token", domain.NewSecret(v))
		assertValidationError(t, err, "access_token")
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains the token", err)
		}
	}
	if err := domain.CheckToken("refresh_token", domain.Secret{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token: %v, want must not be empty", err)
	}
}

func TestHasRefreshToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    domain.Secret
		want bool
	}{
		{"zero", domain.Secret{}, false},
		{"empty", domain.NewSecret(""), false},
		{"set", domain.NewSecret("r"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok := domain.AuthTokens{RefreshToken: tc.s}
			if got := tok.HasRefreshToken(); got != tc.want {
				t.Fatalf("HasRefreshToken = %v, want %v", got, tc.want)
			}
		})
	}
}
