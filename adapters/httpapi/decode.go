package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/tokenstore/tokenstore/domain"
)

// maxBodyBytes bounds request bodies; tokens are kilobytes at most.
const maxBodyBytes = 64 << 10

// readBody reads a whole JSON request body: a media type other than JSON
// and bodies over maxBodyBytes are refused with a problem naming what was
// wrong. The error is a *Problem.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"send the body as application/json").withField("Content-Type")
		}
		// JSON is UTF-8 (RFC 8259 section 8.1): a body declared in another
		// charset would be read as something its sender did not mean.
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return nil, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"send the body as UTF-8 (charset=utf-8 or no charset)").withField("Content-Type")
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, invalidBody("body", fmt.Sprintf("is larger than %d KiB", maxBodyBytes>>10))
		}
		return nil, invalidBody("body", "could not be read in full; send it again")
	}
	return data, nil
}

// strict is how every request body is decoded: go-json-experiment/json's
// defaults refuse duplicate member names (the last one would silently win),
// invalid UTF-8 and lone surrogate escapes (both would become U+FFFD: a
// different secret) and match names case-sensitively; unknown members are
// refused too. The body is one JSON value with nothing after it.
var strict = json.RejectUnknownMembers(true)

// unmarshal decodes data, a whole request body, into dst (a pointer to a
// struct of optional members) under the strict rules. The error is a
// *Problem naming the member at fault (or "body"); its detail never repeats
// a value, which could be a token.
func unmarshal(data []byte, dst any) error {
	if len(bytes.Trim(data, " \t\r\n")) == 0 {
		return invalidBody("body", "is empty; send a JSON object")
	}
	err := json.Unmarshal(data, dst, strict)
	if err == nil {
		return nil
	}
	var (
		syntax   *jsontext.SyntacticError
		semantic *json.SemanticError
	)
	switch {
	case errors.As(err, &syntax):
		return syntaxProblem(data, syntax)
	case errors.As(err, &semantic):
		field := member(semantic.JSONPointer)
		switch {
		case errors.Is(semantic.Err, json.ErrUnknownName):
			return unknownMember(field, dst)
		case field == "body":
			return invalidBody("body", "must be a JSON object")
		}
		return invalidBody(field, "must be "+jsonKind(semantic.GoType))
	}
	return invalidBody("body", "cannot be read as the expected JSON object")
}

// syntaxProblem explains where and why data is not strict JSON. The cause
// is read from the input at the error's offset, not from the error's text
// (which quotes the input).
func syntaxProblem(data []byte, e *jsontext.SyntacticError) *Problem {
	field := member(e.JSONPointer)
	switch {
	case errors.Is(e.Err, jsontext.ErrDuplicateName):
		return invalidBody(field, "is given more than once; send each member once")
	case errors.Is(e.Err, io.ErrUnexpectedEOF):
		return invalidBody("body", "is cut short: not a complete JSON object")
	}
	if v, err := jsontext.NewDecoder(bytes.NewReader(data)).ReadValue(); err == nil && len(v) < len(data) {
		// One whole value, then more than white space.
		return invalidBody("body", "must hold exactly one JSON object")
	}
	off := int(min(max(e.ByteOffset, 0), int64(len(data))))
	rest := data[off:]
	switch {
	case invalidUTF8At(rest):
		return invalidBody(field, fmt.Sprintf("is not valid UTF-8 (byte %d); send the exact characters", off))
	case len(rest) > 0 && rest[0] == '\\' && field != "body":
		return invalidBody(field, `has an invalid escape sequence; a lone surrogate such as \ud800 is not a character`)
	case len(rest) > 0 && rest[0] < 0x20 && field != "body":
		return invalidBody(field, "has a raw control character; JSON strings must escape them")
	case !utf8.Valid(data):
		return invalidBody("body", "is not valid UTF-8; send the exact characters")
	}
	return invalidBody("body", fmt.Sprintf("is not valid JSON (near byte %d)", off))
}

// invalidUTF8At reports whether b starts with a byte sequence that is not
// UTF-8.
func invalidUTF8At(b []byte) bool {
	r, n := utf8.DecodeRune(b)
	return len(b) > 0 && r == utf8.RuneError && n == 1
}

// member is the request member a JSON pointer is in: its first token, or
// "body" for the top level (and for a member without a name).
func member(p jsontext.Pointer) string {
	for tok := range p.Tokens() {
		if tok != "" {
			return tok
		}
	}
	return "body"
}

// unknownMember names an unknown member and, when it differs from a known
// one only in case, the right spelling: names are case-sensitive.
func unknownMember(name string, dst any) *Problem {
	if name == "" {
		return invalidBody("body", "has a member with an empty name; check the member names against the API document")
	}
	if len(name) > 64 { // do not echo a long blob back
		name = strings.ToValidUTF8(name[:64], "") + "…"
	}
	for _, known := range memberNames(dst) {
		if strings.EqualFold(known, name) {
			return invalidBody(name, fmt.Sprintf("is not a known field; member names are case-sensitive: use %s", known))
		}
	}
	return invalidBody(name, "is not a known field; check the spelling against the API document")
}

// memberNames lists the JSON member names of the struct dst points to.
func memberNames(dst any) []string {
	t := reflect.TypeOf(dst)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	names := make([]string, 0, t.NumField())
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

func invalidBody(field, reason string) *Problem {
	return newProblem(http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("%s %s", field, reason)).withField(field)
}

// validationProblem is a domain rule's refusal as a 400 naming its field.
func validationProblem(err error) error {
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		return invalidBody(ve.Field, ve.Reason)
	}
	return err
}

func jsonKind(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number written with digits only (no fraction or exponent)"
	case reflect.Bool:
		return "true or false"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "of another type"
}

// pathUser and pathUserProvider validate path values; a bad one is a 400
// naming it, the user checked first.
func pathUser(r *http.Request) (domain.UserID, error) {
	u, err := domain.ParseUserID(r.PathValue("user"))
	if err != nil {
		return "", newProblem(http.StatusBadRequest, CodeInvalidRequest, err.Error()).withField("user")
	}
	return u, nil
}

func pathUserProvider(r *http.Request) (domain.UserID, domain.Provider, error) {
	u, err := pathUser(r)
	if err != nil {
		return "", "", err
	}
	prov, err := domain.ParseProvider(r.PathValue("provider"))
	if err != nil {
		return "", "", newProblem(http.StatusBadRequest, CodeInvalidRequest, err.Error()).withField("provider")
	}
	return u, prov, nil
}

type putTokensRequest struct {
	AccessToken           *string `json:"access_token"`
	RefreshToken          *string `json:"refresh_token"`
	AccessTokenExpiresAt  *string `json:"access_token_expires_at"`
	ExpiresIn             *int64  `json:"expires_in"`
	RefreshTokenExpiresAt *string `json:"refresh_token_expires_at"`
	RefreshTokenExpiresIn *int64  `json:"refresh_token_expires_in"`
}

// decodeAuthTokens reads PUT tokens: the path's user and provider, then the
// body, checked in that order; relative expiries count from the moment the
// body is in.
func decodeAuthTokens(w http.ResponseWriter, r *http.Request) (domain.AuthTokens, error) {
	user, provider, err := pathUserProvider(r)
	if err != nil {
		return domain.AuthTokens{}, err
	}
	body, err := readBody(w, r)
	if err != nil {
		return domain.AuthTokens{}, err
	}
	return parseAuthTokens(user, provider, body, time.Now())
}

// parseAuthTokens reads a PUT tokens body received at now: exactly the
// members given, or a *Problem naming the first one at fault.
func parseAuthTokens(user domain.UserID, provider domain.Provider, body []byte, now time.Time) (domain.AuthTokens, error) {
	var req putTokensRequest
	if err := unmarshal(body, &req); err != nil {
		return domain.AuthTokens{}, err
	}
	if req.AccessToken == nil || *req.AccessToken == "" {
		return domain.AuthTokens{}, invalidBody("access_token", "is required")
	}
	now = now.Truncate(time.Microsecond) // PostgreSQL keeps microseconds
	accessExp, err := expiry(now, "access_token_expires_at", req.AccessTokenExpiresAt, "expires_in", req.ExpiresIn, accessLifetime)
	if err != nil {
		return domain.AuthTokens{}, err
	}
	refreshExp, err := expiry(now, "refresh_token_expires_at", req.RefreshTokenExpiresAt, "refresh_token_expires_in", req.RefreshTokenExpiresIn, refreshLifetime)
	if err != nil {
		return domain.AuthTokens{}, err
	}
	tokens := domain.AuthTokens{
		User: user, Provider: provider,
		AccessToken:  domain.NewSecret(*req.AccessToken),
		AccessExpiry: accessExp, RefreshExpiry: refreshExp,
	}
	if req.RefreshToken != nil {
		tokens.RefreshToken = domain.NewSecret(*req.RefreshToken)
	}
	if tokens.RefreshToken.IsZero() && (req.RefreshTokenExpiresAt != nil || req.RefreshTokenExpiresIn != nil) {
		return domain.AuthTokens{}, invalidBody("refresh_token", "is required when a refresh token expiry is given")
	}
	if err := tokens.Validate(); err != nil {
		return domain.AuthTokens{}, validationProblem(err)
	}
	return tokens, nil
}

// lifetime reads an "expires_in"-style member: seconds from now, or an
// error reason.
type lifetime func(now time.Time, seconds int64) (domain.Expiry, string)

// accessLifetime: expires_in is a whole number of seconds, at least 1. A 0
// would be read as "expired now" by some clients and "no expiry" by others
// (golang.org/x/oauth2, Keycloak), so it is refused: a token that never
// expires is sent without an expiry.
func accessLifetime(now time.Time, seconds int64) (domain.Expiry, string) {
	if seconds < 1 {
		return domain.Expiry{}, "must be at least 1 (seconds); leave it out for an access token that never expires"
	}
	return domain.AfterSeconds(now, seconds), ""
}

// refreshLifetime: refresh_token_expires_in 0 means the refresh token does
// not expire, as Keycloak's refresh_expires_in 0 for offline tokens does and
// as tokenstore reads it in a provider's answer: one meaning everywhere.
func refreshLifetime(now time.Time, seconds int64) (domain.Expiry, string) {
	switch {
	case seconds < 0:
		return domain.Expiry{}, "must not be negative; 0 (or leaving it out) means the refresh token does not expire"
	case seconds == 0:
		return domain.Never(), ""
	}
	return domain.AfterSeconds(now, seconds), ""
}

// expiry reads one of the two ways OAuth clients express an expiry: an
// absolute RFC 3339 time or seconds from now; both at once are refused.
// Neither means never.
func expiry(now time.Time, atField string, at *string, inField string, in *int64, life lifetime) (domain.Expiry, error) {
	switch {
	case at != nil && in != nil:
		return domain.Expiry{}, invalidBody(inField, "and "+atField+" both give the expiry; send one of them")
	case at != nil:
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return domain.Expiry{}, invalidBody(atField, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		return domain.At(t.Truncate(time.Microsecond)), nil // PostgreSQL keeps microseconds
	case in != nil:
		exp, reason := life(now, *in)
		if reason != "" {
			return domain.Expiry{}, invalidBody(inField, reason)
		}
		return exp, nil
	}
	return domain.Never(), nil
}

type putOfflineRequest struct {
	OfflineToken *string `json:"offline_token"`
}

// decodeOfflineToken reads PUT offline-token: the path's user, then the body.
func decodeOfflineToken(w http.ResponseWriter, r *http.Request) (domain.OfflineToken, error) {
	user, err := pathUser(r)
	if err != nil {
		return domain.OfflineToken{}, err
	}
	body, err := readBody(w, r)
	if err != nil {
		return domain.OfflineToken{}, err
	}
	return parseOfflineToken(user, body)
}

// parseOfflineToken reads a PUT offline-token body: exactly the token
// given, or a *Problem naming the member at fault.
func parseOfflineToken(user domain.UserID, body []byte) (domain.OfflineToken, error) {
	var req putOfflineRequest
	if err := unmarshal(body, &req); err != nil {
		return domain.OfflineToken{}, err
	}
	if req.OfflineToken == nil || *req.OfflineToken == "" {
		return domain.OfflineToken{}, invalidBody("offline_token", "is required")
	}
	tok := domain.OfflineToken{User: user, Token: domain.NewSecret(*req.OfflineToken)}
	if err := tok.Validate(); err != nil {
		return domain.OfflineToken{}, validationProblem(err)
	}
	return tok, nil
}
