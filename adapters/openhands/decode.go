package openhands

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// authRow is an auth_tokens row as stored in OpenHands: ciphertexts and
// epoch seconds. Pointers: the columns are NOT NULL in OpenHands' schema,
// but a hand-edited database should fail a row, not the import.
type authRow struct {
	ID             int64
	User           *string
	Provider       *string
	AccessToken    *string
	RefreshToken   *string
	AccessExpires  *int64
	RefreshExpires *int64
}

// offlineRow is an offline_tokens row as stored in OpenHands.
type offlineRow struct {
	User  string
	Token *string
}

// decoder opens OpenHands ciphertexts with the key derived from its JWT secret.
type decoder struct {
	ring *fernet.Keyring // the legacy key alone
}

func newDecoder(jwtSecret domain.Secret) (*decoder, error) {
	if jwtSecret.IsZero() {
		return nil, fmt.Errorf("openhands: the JWT secret is empty")
	}
	ring, err := fernet.NewKeyring(fernet.KeyFromJWTSecret(jwtSecret.Reveal()))
	if err != nil {
		return nil, fmt.Errorf("openhands: %w", err)
	}
	return &decoder{ring: ring}, nil
}

// authTokens decrypts one auth_tokens row. Failures go into the record's
// Err, never into a returned error: one bad row must not stop the others.
func (d *decoder) authTokens(row authRow) ports.ImportedAuthTokens {
	rec := ports.ImportedAuthTokens{
		SourceID: strconv.FormatInt(row.ID, 10),
		User:     deref(row.User),
		Provider: deref(row.Provider),
	}
	fail := func(err error) ports.ImportedAuthTokens {
		rec.Err = err
		return rec
	}
	if row.AccessToken == nil {
		return fail(fmt.Errorf("%w: access_token is NULL", ports.ErrBadCiphertext))
	}
	access, err := d.open("access_token", *row.AccessToken)
	if err != nil {
		return fail(err)
	}
	accessExpiry, err := epochExpiry("access_token_expires_at", row.AccessExpires)
	if err != nil {
		return fail(err)
	}
	var refresh domain.Secret
	refreshExpiry := domain.Never()
	if row.RefreshToken != nil && strings.TrimSpace(*row.RefreshToken) != "" {
		if refresh, err = d.open("refresh_token", *row.RefreshToken); err != nil {
			return fail(err)
		}
	}
	if !refresh.IsZero() {
		if refreshExpiry, err = epochExpiry("refresh_token_expires_at", row.RefreshExpires); err != nil {
			return fail(err)
		}
	}
	rec.AccessToken, rec.RefreshToken = access, refresh
	rec.AccessExpiry, rec.RefreshExpiry = accessExpiry, refreshExpiry
	return rec
}

// offlineToken decrypts one offline_tokens row: the JSON {"tokens": F}, F a
// Fernet token of the JSON {"refresh_token": T}; T is the offline token.
func (d *decoder) offlineToken(row offlineRow) ports.ImportedOfflineToken {
	rec := ports.ImportedOfflineToken{SourceID: row.User, User: row.User}
	if row.Token == nil {
		rec.Err = fmt.Errorf("%w: offline_token is NULL", ports.ErrBadCiphertext)
		return rec
	}
	var outer struct {
		Tokens *string `json:"tokens"`
	}
	if problem := decodeJSON([]byte(*row.Token), &outer); problem != "" || outer.Tokens == nil {
		rec.Err = fmt.Errorf(`%w: offline_token is not the JSON {"tokens": "<Fernet token>"} OpenHands stores%s`,
			ports.ErrBadCiphertext, orMissing(problem, "tokens"))
		return rec
	}
	payload, err := d.open("offline_token", *outer.Tokens)
	if err != nil {
		rec.Err = err
		return rec
	}
	var inner struct {
		RefreshToken *string `json:"refresh_token"`
	}
	if problem := decodeJSON([]byte(payload.Reveal()), &inner); problem != "" || inner.RefreshToken == nil {
		rec.Err = fmt.Errorf(`%w: offline_token decrypts to something other than the JSON {"refresh_token": "..."} OpenHands stores%s`,
			ports.ErrBadCiphertext, orMissing(problem, "refresh_token"))
		return rec
	}
	rec.Token = domain.NewSecret(*inner.RefreshToken)
	return rec
}

// decodeJSON decodes data into v strictly (a member name given twice, an
// unknown or differently cased member, invalid UTF-8 or a lone surrogate is
// refused: Python's json.dumps writes none of them, so a row holding one was
// not written by OpenHands and would be imported as a different token than
// it holds). It returns "" or what was wrong, never quoting data: the
// library's messages may quote a token.
func decodeJSON(data []byte, v any) string {
	err := json.Unmarshal(data, v, json.RejectUnknownMembers(true))
	var syn *jsontext.SyntacticError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, jsontext.ErrDuplicateName):
		return "a member name appears twice"
	case errors.Is(err, json.ErrUnknownName):
		return "it has an unknown member"
	case errors.As(err, &syn) && strings.Contains(syn.Err.Error(), "UTF-8"):
		return "it holds invalid UTF-8"
	case errors.As(err, &syn) && strings.Contains(syn.Err.Error(), "surrogate"):
		return "it holds a lone surrogate escape"
	case errors.As(err, &syn):
		return "it is not valid JSON"
	}
	return "a member is not a string"
}

// orMissing turns decodeJSON's problem into the end of a sentence; no
// problem but no member means member is missing.
func orMissing(problem, member string) string {
	if problem == "" {
		problem = member + " is missing"
	}
	return " (" + problem + ")"
}

// open decrypts one stored value, unwrapping the extra base64 layer when
// there is one. A value that is not a Fernet token at all is a bad
// ciphertext; a well-formed one the key does not open was written under
// another secret (or tampered with).
func (d *decoder) open(field, stored string) (domain.Secret, error) {
	data := fernet.UnwrapLegacy([]byte(strings.TrimSpace(stored)))
	if len(data) == 0 {
		return domain.Secret{}, fmt.Errorf("%w: %s is empty", ports.ErrBadCiphertext, field)
	}
	if !wellFormed(data) {
		return domain.Secret{}, fmt.Errorf("%w: %s is not a Fernet token", ports.ErrBadCiphertext, field)
	}
	secret, err := d.ring.Decrypt(domain.Ciphertext{Data: data})
	if err != nil {
		return domain.Secret{}, fmt.Errorf("%w: %s is a Fernet token that the JWT secret's key does not open "+
			"(written under another secret, or altered)", ports.ErrWrongSecret, field)
	}
	return secret, nil
}

// Fernet token layout (https://github.com/fernet/spec): version byte 0x80,
// 8-byte timestamp, 16-byte IV, whole AES blocks of ciphertext (at least
// one: PKCS#7 always pads), 32-byte HMAC-SHA256; the whole in URL-safe
// base64 with padding, as Python's cryptography writes it.
const (
	fernetVersion  = 0x80
	fernetOverhead = 1 + 8 + aes.BlockSize + sha256.Size
)

// wellFormed reports whether data has the shape of a Fernet token, so that
// a failure to decrypt it can be blamed on the key rather than the data.
func wellFormed(data []byte) bool {
	raw, err := base64.URLEncoding.DecodeString(string(data))
	if err != nil {
		return false
	}
	n := len(raw)
	return n >= fernetOverhead+aes.BlockSize && raw[0] == fernetVersion && (n-fernetOverhead)%aes.BlockSize == 0
}

// Epoch seconds PostgreSQL's timestamptz (and every sane token) can hold:
// the years 1 to 9999.
const (
	minEpoch = -62135596800 // 0001-01-01T00:00:00Z
	maxEpoch = 253402300799 // 9999-12-31T23:59:59Z
)

// epochExpiry maps OpenHands' epoch seconds to an Expiry: 0 (or NULL) is
// "never expires".
func epochExpiry(field string, v *int64) (domain.Expiry, error) {
	if v == nil || *v == 0 {
		return domain.Never(), nil
	}
	if *v < minEpoch || *v > maxEpoch {
		return domain.Expiry{}, fmt.Errorf("%s is %d seconds since 1970, outside the years 1 to 9999", field, *v)
	}
	return domain.At(time.Unix(*v, 0).UTC()), nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
