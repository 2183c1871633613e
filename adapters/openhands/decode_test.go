package openhands

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	fernetgo "github.com/fernet/fernet-go"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// The fixture's ciphertexts were made by Python's cryptography Fernet the
// way OpenHands makes them (tests/openhands/make_fixture.py).
const fixturePath = "../../tests/openhands/testdata/openhands_fixture.json"

type fixture struct {
	JWTSecret   string `json:"jwt_secret"`
	OtherSecret string `json:"other_secret"`
	AuthTokens  []struct {
		ID             int64  `json:"id"`
		User           string `json:"keycloak_user_id"`
		Provider       string `json:"identity_provider"`
		AccessToken    string `json:"access_token"`
		RefreshToken   string `json:"refresh_token"`
		AccessExpires  int64  `json:"access_token_expires_at"`
		RefreshExpires int64  `json:"refresh_token_expires_at"`
		Note           string `json:"note"`
		Expect         struct {
			Status         string  `json:"status"`
			Reason         string  `json:"reason"`
			AccessToken    string  `json:"access_token"`
			RefreshToken   *string `json:"refresh_token"`
			AccessExpires  int64   `json:"access_token_expires_at"`
			RefreshExpires int64   `json:"refresh_token_expires_at"`
		} `json:"expect"`
	} `json:"auth_tokens"`
	OfflineTokens []struct {
		User   string `json:"user_id"`
		Stored string `json:"offline_token"`
		Note   string `json:"note"`
		Expect struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
			Token  string `json:"offline_token"`
		} `json:"expect"`
	} `json:"offline_tokens"`
}

func loadFixture(t *testing.T) fixture {
	t.Helper()
	raw, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func newTestDecoder(t *testing.T, secret string) *decoder {
	t.Helper()
	d, err := newDecoder(domain.NewSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func expiryOf(epoch int64) domain.Expiry {
	if epoch == 0 {
		return domain.Never()
	}
	return domain.At(time.Unix(epoch, 0))
}

// sourceErrors are the failures this adapter decides; the others (user id,
// provider name, empty token) are the importer's.
var sourceErrors = map[string]error{
	"wrong secret":   ports.ErrWrongSecret,
	"bad ciphertext": ports.ErrBadCiphertext,
}

func TestAuthTokensFromPythonFernet(t *testing.T) {
	f := loadFixture(t)
	d := newTestDecoder(t, f.JWTSecret)
	for _, row := range f.AuthTokens {
		t.Run(row.Note, func(t *testing.T) {
			rec := d.authTokens(authRow{
				ID: row.ID, User: &row.User, Provider: &row.Provider,
				AccessToken: &row.AccessToken, RefreshToken: &row.RefreshToken,
				AccessExpires: &row.AccessExpires, RefreshExpires: &row.RefreshExpires,
			})
			if rec.User != row.User || rec.Provider != row.Provider {
				t.Errorf("identity %q/%q, want %q/%q", rec.User, rec.Provider, row.User, row.Provider)
			}
			want, isSourceError := sourceErrors[row.Expect.Reason]
			switch {
			case isSourceError:
				if !errors.Is(rec.Err, want) {
					t.Fatalf("err = %v, want %v", rec.Err, want)
				}
				if !rec.AccessToken.IsZero() || !rec.RefreshToken.IsZero() {
					t.Error("a failed row carries token material")
				}
				for _, s := range []string{row.AccessToken, row.RefreshToken, f.JWTSecret} {
					if s != "" && strings.Contains(rec.Err.Error(), s) {
						t.Errorf("error %q contains stored material", rec.Err)
					}
				}
				return
			case rec.Err != nil:
				t.Fatalf("unexpected error: %v", rec.Err)
			case row.Expect.Status == "failed":
				return // rejected by the importer, not here
			}
			if got := rec.AccessToken.Reveal(); got != row.Expect.AccessToken {
				t.Errorf("access token %q, want %q", got, row.Expect.AccessToken)
			}
			if row.Expect.RefreshToken == nil {
				if !rec.RefreshToken.IsZero() {
					t.Errorf("refresh token %q, want none", rec.RefreshToken.Reveal())
				}
			} else if got := rec.RefreshToken.Reveal(); got != *row.Expect.RefreshToken {
				t.Errorf("refresh token %q, want %q", got, *row.Expect.RefreshToken)
			}
			if !rec.AccessExpiry.Equal(expiryOf(row.Expect.AccessExpires)) {
				t.Errorf("access expiry %s, want %d", rec.AccessExpiry, row.Expect.AccessExpires)
			}
			if !rec.RefreshExpiry.Equal(expiryOf(row.Expect.RefreshExpires)) {
				t.Errorf("refresh expiry %s, want %d", rec.RefreshExpiry, row.Expect.RefreshExpires)
			}
		})
	}
}

func TestOfflineTokensFromPythonFernet(t *testing.T) {
	f := loadFixture(t)
	d := newTestDecoder(t, f.JWTSecret)
	for _, row := range f.OfflineTokens {
		t.Run(row.Note+"/"+row.User, func(t *testing.T) {
			rec := d.offlineToken(offlineRow{User: row.User, Token: &row.Stored})
			if rec.User != row.User || rec.SourceID != row.User {
				t.Errorf("identity %q (source id %q), want %q", rec.User, rec.SourceID, row.User)
			}
			if want, ok := sourceErrors[row.Expect.Reason]; ok {
				if !errors.Is(rec.Err, want) {
					t.Fatalf("err = %v, want %v", rec.Err, want)
				}
				if strings.Contains(rec.Err.Error(), row.Stored) {
					t.Errorf("error %q contains the stored value", rec.Err)
				}
				return
			}
			if rec.Err != nil {
				t.Fatalf("unexpected error: %v", rec.Err)
			}
			if got := rec.Token.Reveal(); got != row.Expect.Token {
				t.Errorf("offline token %q, want %q", got, row.Expect.Token)
			}
		})
	}
}

// Under another secret, every well-formed ciphertext of the fixture is a
// wrong secret, never a bad ciphertext.
func TestEverythingUnderAnotherSecretIsWrongSecret(t *testing.T) {
	f := loadFixture(t)
	d := newTestDecoder(t, "not-the-secret")
	for _, row := range f.AuthTokens {
		if row.Expect.Reason == "bad ciphertext" {
			continue
		}
		rec := d.authTokens(authRow{ID: row.ID, User: &row.User, Provider: &row.Provider,
			AccessToken: &row.AccessToken, RefreshToken: &row.RefreshToken,
			AccessExpires: &row.AccessExpires, RefreshExpires: &row.RefreshExpires})
		if !errors.Is(rec.Err, ports.ErrWrongSecret) {
			t.Errorf("row %d (%s): err = %v, want wrong secret", row.ID, row.Note, rec.Err)
		}
	}
}

func TestOpenClassifiesValues(t *testing.T) {
	f := loadFixture(t)
	d := newTestDecoder(t, f.JWTSecret)
	good := f.AuthTokens[0].AccessToken
	for _, tc := range []struct {
		name   string
		stored string
		want   error
	}{
		{"empty", "", ports.ErrBadCiphertext},
		{"white space", " \n", ports.ErrBadCiphertext},
		{"not base64", "hello world", ports.ErrBadCiphertext},
		{"base64, not Fernet", "aGVsbG8gd29ybGQ=", ports.ErrBadCiphertext},
		{"truncated", good[:len(good)-8], ports.ErrBadCiphertext},
		{"wrapped garbage", "Z0FBQUFBnotbase64!!", ports.ErrBadCiphertext},
		{"tampered", tamper(good), ports.ErrWrongSecret},
		{"good with trailing newline", good + "\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.open("access_token", tc.stored)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// tamper flips a character in the middle of a token's ciphertext: still a
// well-formed token, no longer authentic.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestMissingColumnsFailTheRow(t *testing.T) {
	f := loadFixture(t)
	d := newTestDecoder(t, f.JWTSecret)
	rec := d.authTokens(authRow{ID: 3})
	if !errors.Is(rec.Err, ports.ErrBadCiphertext) || rec.SourceID != "3" {
		t.Errorf("NULL access token: %+v", rec)
	}
	rec2 := d.offlineToken(offlineRow{User: "u"})
	if !errors.Is(rec2.Err, ports.ErrBadCiphertext) {
		t.Errorf("NULL offline token: %+v", rec2)
	}
}

func TestEpochExpiry(t *testing.T) {
	zero, one, neg := int64(0), int64(1), int64(-1)
	huge, tiny := int64(math.MaxInt64), int64(math.MinInt64)
	for _, tc := range []struct {
		in   *int64
		want domain.Expiry
		bad  bool
	}{
		{nil, domain.Never(), false},
		{&zero, domain.Never(), false},
		{&one, domain.At(time.Unix(1, 0)), false},
		{&neg, domain.At(time.Unix(-1, 0)), false},
		{&huge, domain.Expiry{}, true},
		{&tiny, domain.Expiry{}, true},
	} {
		got, err := epochExpiry("x", tc.in)
		if (err != nil) != tc.bad || !tc.bad && !got.Equal(tc.want) {
			t.Errorf("epochExpiry(%v) = %s, %v", tc.in, got, err)
		}
	}
}

func TestEmptySecretRefused(t *testing.T) {
	if _, err := newDecoder(domain.Secret{}); err == nil {
		t.Fatal("an empty JWT secret was accepted")
	}
}

// TestOfflineTokenJSONIsStrict: an offline_tokens row holds JSON twice (the
// column, and the payload inside its Fernet token); each is read strictly,
// so a row means one token or fails with the reason. encoding/json took the
// last of two members, matched "Refresh_Token" and turned invalid UTF-8
// into U+FFFD: an import would have stored a different token.
func TestOfflineTokenJSONIsStrict(t *testing.T) {
	f := loadFixture(t)
	d := newTestDecoder(t, f.JWTSecret)
	key, err := fernetgo.DecodeKey(fernet.KeyFromJWTSecret(f.JWTSecret).Encode())
	if err != nil {
		t.Fatal(err)
	}
	seal := func(payload string) string {
		tok, err := fernetgo.EncryptAndSign([]byte(payload), key)
		if err != nil {
			t.Fatal(err)
		}
		return string(tok)
	}
	good := seal(`{"refresh_token": "offline-1"}`)
	for _, tc := range []struct{ name, stored, want string }{
		{"outer duplicate", `{"tokens": "` + good + `", "tokens": "` + seal(`{"refresh_token": "offline-2"}`) + `"}`, "a member name appears twice"},
		{"outer case-folded", `{"Tokens": "` + good + `"}`, "unknown member"},
		{"outer unknown member", `{"tokens": "` + good + `", "extra": 1}`, "unknown member"},
		{"outer invalid UTF-8", "{\"tokens\": \"" + good + "\", \"x\xff\": 1}", "invalid UTF-8"},
		{"outer missing", `{}`, "tokens is missing"},
		{"inner duplicate", `{"tokens": "` + seal(`{"refresh_token": "a", "refresh_token": "b"}`) + `"}`, "a member name appears twice"},
		{"inner case-folded", `{"tokens": "` + seal(`{"Refresh_Token": "a"}`) + `"}`, "unknown member"},
		{"inner unknown member", `{"tokens": "` + seal(`{"refresh_token": "a", "scope": "x"}`) + `"}`, "unknown member"},
		{"inner invalid UTF-8", `{"tokens": "` + seal("{\"refresh_token\": \"tok-\xff\xfe\"}") + `"}`, "invalid UTF-8"},
		{"inner lone surrogate", `{"tokens": "` + seal(`{"refresh_token": "tok-\ud800"}`) + `"}`, "lone surrogate"},
		{"inner missing", `{"tokens": "` + seal(`{}`) + `"}`, "refresh_token is missing"},
		{"inner not a string", `{"tokens": "` + seal(`{"refresh_token": 5}`) + `"}`, "not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := d.offlineToken(offlineRow{User: "u", Token: &tc.stored})
			if !errors.Is(rec.Err, ports.ErrBadCiphertext) || !strings.Contains(rec.Err.Error(), tc.want) {
				t.Fatalf("err = %v, want a bad ciphertext saying %q", rec.Err, tc.want)
			}
			for _, leak := range []string{"offline-", "tok-", good} {
				if strings.Contains(rec.Err.Error(), leak) {
					t.Errorf("error %q quotes the row", rec.Err)
				}
			}
		})
	}
	stored := `{"tokens": "` + good + `"}`
	if rec := d.offlineToken(offlineRow{User: "u", Token: &stored}); rec.Err != nil || rec.Token.Reveal() != "offline-1" {
		t.Errorf("strict JSON refused a well-formed row: %+v", rec)
	}
}
