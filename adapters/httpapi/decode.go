package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// maxBodyBytes bounds request bodies; tokens are kilobytes at most.
const maxBodyBytes = 64 << 10

// decodeJSON reads exactly one JSON object into dst, strictly: a media type
// other than JSON, unknown fields, wrong types, trailing data and bodies over
// maxBodyBytes are all rejected with a problem naming what was wrong. Error
// texts never echo values (they could be tokens). The error is a *Problem.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"send the body as application/json").withField("Content-Type")
		}
	}
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return bodyProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return bodyProblem(err)
		}
		return invalidBody("body", "must hold exactly one JSON object")
	}
	return nil
}

func bodyProblem(err error) *Problem {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return invalidBody("body", fmt.Sprintf("is larger than %d KiB", maxBodyBytes>>10))
	case errors.Is(err, io.EOF):
		return invalidBody("body", "is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalidBody("body", "is cut short: not a complete JSON object")
	case errors.As(err, &syntax):
		return invalidBody("body", fmt.Sprintf("is not valid JSON (error at byte %d)", syntax.Offset))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invalidBody("body", "must be a JSON object")
		}
		return invalidBody(typeErr.Field, "must be "+jsonKind(typeErr.Type.Kind().String()))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(name, `"`)
		return invalidBody(field, "is not a known field; check the spelling against the API document")
	}
	return invalidBody("body", "cannot be read as the expected JSON object")
}

func invalidBody(field, reason string) *Problem {
	return newProblem(http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("%s %s", field, reason)).withField(field)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "struct", "map":
		return "an object"
	case "slice", "array":
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
	var req putTokensRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return domain.AuthTokens{}, err
	}
	if req.AccessToken == nil || *req.AccessToken == "" {
		return domain.AuthTokens{}, invalidBody("access_token", "is required")
	}
	now := time.Now().Truncate(time.Microsecond)
	accessExp, err := expiry(now, "access_token_expires_at", req.AccessTokenExpiresAt, "expires_in", req.ExpiresIn)
	if err != nil {
		return domain.AuthTokens{}, err
	}
	refreshExp, err := expiry(now, "refresh_token_expires_at", req.RefreshTokenExpiresAt, "refresh_token_expires_in", req.RefreshTokenExpiresIn)
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
	if tokens.RefreshToken.IsZero() && !refreshExp.IsNever() {
		return domain.AuthTokens{}, invalidBody("refresh_token", "is required when a refresh token expiry is given")
	}
	return tokens, nil
}

// expiry reads one of the two ways OAuth clients express an expiry: an
// absolute RFC 3339 time or expires_in seconds from now. Neither means never.
func expiry(now time.Time, atField string, at *string, inField string, in *int64) (domain.Expiry, error) {
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
		if *in < 0 {
			return domain.Expiry{}, invalidBody(inField, "must not be negative")
		}
		return domain.AfterSeconds(now, *in), nil
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
	var req putOfflineRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return domain.OfflineToken{}, err
	}
	if req.OfflineToken == nil || *req.OfflineToken == "" {
		return domain.OfflineToken{}, invalidBody("offline_token", "is required")
	}
	return domain.OfflineToken{User: user, Token: domain.NewSecret(*req.OfflineToken)}, nil
}
