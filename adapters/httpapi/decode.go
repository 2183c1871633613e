package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds request bodies; tokens are kilobytes at most.
const MaxBodyBytes = 64 << 10

// decodeJSON reads exactly one JSON object into dst, strictly: a media type
// other than JSON, unknown fields, wrong types, trailing data and bodies over
// MaxBodyBytes are all rejected with a problem naming what was wrong. Error
// texts never echo values (they could be tokens).
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) *Problem {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
				"send the body as application/json").withField("Content-Type")
		}
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
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
		return invalidBody("body", fmt.Sprintf("is larger than %d KiB", MaxBodyBytes>>10))
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
