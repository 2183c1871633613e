package app

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/tokenstore/tokenstore/domain"
)

// The envelope is the plaintext tokenstore seals (ports.TokenCrypter.Seal)
// for every stored value: the value and the place it belongs to (Place).
// Two formats are read, told apart by their first byte; new values are
// sealed in the binary one.
//
// # Binary envelope (format version 2)
//
// Fixed-width fields, lengths before the bytes they count, integers
// big-endian. U, P and S are the lengths of the user id, the provider name
// and the secret in bytes:
//
//	offset    size  field
//	0         1     format version: 0x02 (a JSON envelope starts with '{', 0x7B)
//	1         1     place: 0x01 auth_tokens.access_token,
//	                       0x02 auth_tokens.refresh_token,
//	                       0x03 offline_tokens.token
//	2         1     U: 1 to 255 (domain.MaxUserIDLen)
//	3         U     the user id
//	3+U       1     P: 1 to 64 (domain.MaxProviderLen) for an auth_tokens
//	                place, 0 for offline_tokens (it has no provider)
//	4+U       P     the provider name
//	4+U+P     4     S: 1 to 2^32-1, uint32 big-endian
//	8+U+P     S     the secret, the token's bytes as given
//	8+U+P+S         end: an envelope is exactly 8+U+P+S bytes
//
// The decoder refuses, with an error that names offsets and lengths but
// never the bytes: another first byte, an unknown place code, a length out
// of its bounds (P must also match the place), fewer bytes than the lengths
// announce (truncation) and any byte after the secret (extension). So one
// value has exactly one encoding and every byte string decodes to at most
// one value. No length is trusted before the bytes it counts are present:
// the decoder slices the opened buffer and allocates only the secret's copy,
// so a wrong S cannot make it read past the buffer or allocate 4 GiB.
//
// Fixed widths, not uvarints: a uvarint decoder also accepts overlong forms
// (0x80 0x00 for 0), which a strict decoder would have to refuse one by one;
// one byte bounds U and P by construction (the domain's limits are 255 and
// 64) and the secret, the one length that can exceed a byte, takes four
// bytes where a uvarint would take one or two: at most 3 bytes more per
// value, which Fernet's 16-byte padding mostly absorbs. Place codes, not
// the table and field names: the three places are a closed set, the codes
// keep an envelope small, and an unknown code is refused rather than taken
// for a new place. A code keeps its meaning forever (testdata pins the
// bytes); a new place gets the next one.
//
// # JSON envelope (format version 1)
//
// What tokenstore sealed before the binary envelope, as encoding/json
// writes this struct:
//
//	{"v":1,"t":"<table>","f":"<field>","u":"<user>","p":"<provider>","s":"<secret, base64>"}
//
// ("p" left out for offline tokens). It is read as before (encoding/json,
// "v" must be 1), and written only where the envelope setting says json
// (EnvelopeJSON). `tokenstore keys rotate --envelopes` rewrites every value
// in the format the setting names.

// binaryEnvelopeVersion is the binary envelope's first byte.
const binaryEnvelopeVersion = 0x02

// jsonEnvelopeVersion is the JSON envelope's "v"; its first byte is '{'.
const jsonEnvelopeVersion = 1

// binaryEnvelopeFixed counts the binary envelope's bytes besides the user
// id, the provider name and the secret: version, place, U, P and S.
const binaryEnvelopeFixed = 1 + 1 + 1 + 1 + 4

// placeCode is a place's byte in the binary envelope.
type placeCode byte

// The place codes. Never renumber one: stored envelopes carry them.
const (
	placeAccessToken  placeCode = 0x01
	placeRefreshToken placeCode = 0x02
	placeOfflineToken placeCode = 0x03
)

// The fields of the places (Place.Field).
const (
	accessTokenField  = "access_token"
	refreshTokenField = "refresh_token"
	offlineTokenField = "token"
)

// codedPlaces maps codes to (table, field); index 0 is no code.
var codedPlaces = [...]struct{ table, field string }{
	placeAccessToken:  {authTokensTable, accessTokenField},
	placeRefreshToken: {authTokensTable, refreshTokenField},
	placeOfflineToken: {offlineTokensTable, offlineTokenField},
}

// codeOf is p's place code, false when p's table and field have none.
func codeOf(p Place) (placeCode, bool) {
	for code, tf := range codedPlaces {
		if code != 0 && tf.table == p.Table && tf.field == p.Field {
			return placeCode(code), true
		}
	}
	return 0, false
}

func (c placeCode) known() bool { return c != 0 && int(c) < len(codedPlaces) }

// hasProvider: auth tokens belong to a user and a provider, offline tokens
// to a user alone.
func (c placeCode) hasProvider() bool { return c != placeOfflineToken }

// EnvelopeFormat names an envelope format: the one new values are sealed
// in (the envelope setting), or the one a stored value was found in.
type EnvelopeFormat string

const (
	// EnvelopeBinary is the binary envelope (format version 2): the
	// default, which "" stands for.
	EnvelopeBinary EnvelopeFormat = "binary"
	// EnvelopeJSON is the JSON envelope (format version 1), the one
	// releases before the binary envelope read: sealing in it keeps what
	// this release writes readable by them (a rolling deploy from one of
	// them, or a return to one).
	EnvelopeJSON EnvelopeFormat = "json"
)

// EnvelopeFormats lists the formats' names, the default first.
func EnvelopeFormats() []string { return []string{string(EnvelopeBinary), string(EnvelopeJSON)} }

// OrDefault is f, or EnvelopeBinary when f is unset ("").
func (f EnvelopeFormat) OrDefault() EnvelopeFormat { return cmp.Or(f, EnvelopeBinary) }

// envelope returns the envelope of secret at place in format f, in a new
// buffer the caller clears once sealed.
func (f EnvelopeFormat) envelope(place Place, secret string) ([]byte, error) {
	switch f.OrDefault() {
	case EnvelopeBinary:
		return binaryEnvelope(place, secret)
	case EnvelopeJSON:
		return jsonEnvelopeOf(place, secret)
	}
	return nil, fmt.Errorf("unknown envelope format %q: want one of %s", string(f), strings.Join(EnvelopeFormats(), ", "))
}

// binaryEnvelope returns the binary envelope of secret at place in a new
// buffer of exactly its size, which the caller clears once sealed. It fails,
// saying which rule, for a place without a code, a user id or provider name
// outside its bounds, and an empty secret; never quoting the secret.
func binaryEnvelope(place Place, secret string) ([]byte, error) {
	code, ok := codeOf(place)
	if !ok {
		return nil, fmt.Errorf("binary envelope: no place code for %s.%s", place.Table, place.Field)
	}
	u, p, s := len(place.User), len(place.Provider), len(secret)
	switch {
	case u == 0 || u > domain.MaxUserIDLen:
		return nil, fmt.Errorf("binary envelope: the user id is %d bytes, not 1 to %d", u, domain.MaxUserIDLen)
	case code.hasProvider() && (p == 0 || p > domain.MaxProviderLen):
		return nil, fmt.Errorf("binary envelope: the provider name is %d bytes, not 1 to %d", p, domain.MaxProviderLen)
	case !code.hasProvider() && p != 0:
		return nil, fmt.Errorf("binary envelope: %s.%s has no provider, but one is given", place.Table, place.Field)
	case s == 0:
		return nil, errors.New("binary envelope: the secret is empty")
	case uint64(s) > math.MaxUint32:
		return nil, fmt.Errorf("binary envelope: the secret is %d bytes, over the %d a uint32 counts", s, uint64(math.MaxUint32))
	}
	buf := make([]byte, 0, binaryEnvelopeFixed+u+p+s)
	buf = append(buf, binaryEnvelopeVersion, byte(code), byte(u))
	buf = append(buf, place.User...)
	buf = append(buf, byte(p))
	buf = append(buf, place.Provider...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(s))
	return append(buf, secret...), nil
}

// decodedEnvelope is a binary envelope's fields, slices of the buffer it
// was decoded from.
type decodedEnvelope struct {
	place                  placeCode
	user, provider, secret []byte
}

// at reports whether the envelope names place, comparing without copying.
func (e decodedEnvelope) at(place Place) bool {
	tf := codedPlaces[e.place]
	return tf.table == place.Table && tf.field == place.Field &&
		string(e.user) == string(place.User) && string(e.provider) == string(place.Provider)
}

// errEnvelope is wrapped by every error decoding an envelope.
var errEnvelope = errors.New("not a valid envelope")

// decodeBinaryEnvelope decodes msg, all of it, as a binary envelope (see
// the layout above). Errors wrap errEnvelope and give offsets and lengths,
// never content.
func decodeBinaryEnvelope(msg []byte) (decodedEnvelope, error) {
	bad := func(format string, args ...any) (decodedEnvelope, error) {
		return decodedEnvelope{}, fmt.Errorf("%w: binary envelope of %d bytes: %s", errEnvelope, len(msg), fmt.Sprintf(format, args...))
	}
	if len(msg) < binaryEnvelopeFixed {
		return bad("shorter than its %d bytes of fixed fields (truncated)", binaryEnvelopeFixed)
	}
	if msg[0] != binaryEnvelopeVersion {
		return bad("the first byte is not the format version %d", binaryEnvelopeVersion)
	}
	code := placeCode(msg[1])
	if !code.known() {
		return bad("unknown place code %d at offset 1", msg[1])
	}
	u := int(msg[2])
	if u == 0 {
		return bad("the user id's length (offset 2) is 0")
	}
	if len(msg) < binaryEnvelopeFixed+u {
		return bad("it ends inside its %d-byte user id (truncated)", u)
	}
	user := msg[3 : 3+u]
	p := int(msg[3+u])
	switch {
	case code.hasProvider() && (p == 0 || p > domain.MaxProviderLen):
		return bad("the provider name's length (offset %d) is %d, not 1 to %d", 3+u, p, domain.MaxProviderLen)
	case !code.hasProvider() && p != 0:
		return bad("the provider name's length (offset %d) is %d, but an offline token has no provider", 3+u, p)
	case len(msg) < binaryEnvelopeFixed+u+p:
		return bad("it ends inside its %d-byte provider name (truncated)", p)
	}
	provider := msg[4+u : 4+u+p]
	s := binary.BigEndian.Uint32(msg[4+u+p:])
	rest := uint64(len(msg) - (binaryEnvelopeFixed + u + p))
	switch {
	case s == 0:
		return bad("the secret's length (offset %d) is 0", 4+u+p)
	case rest < uint64(s):
		return bad("it ends inside its %d-byte secret, %d bytes in (truncated)", s, rest)
	case rest > uint64(s):
		return bad("%d bytes follow its %d-byte secret (extended)", rest-uint64(s), s)
	}
	return decodedEnvelope{place: code, user: user, provider: provider, secret: msg[binaryEnvelopeFixed+u+p:]}, nil
}

// jsonEnvelope is the JSON envelope (format version 1). The secret is
// bytes (base64 in JSON) so any token, even one that is not valid UTF-8,
// round-trips exactly.
type jsonEnvelope struct {
	V        int    `json:"v"`
	Table    string `json:"t"`
	Field    string `json:"f"`
	User     string `json:"u"`
	Provider string `json:"p,omitempty"`
	Secret   []byte `json:"s"`
}

// jsonEnvelopeOf returns the JSON envelope of secret at place in a new
// buffer, which the caller clears once sealed.
func jsonEnvelopeOf(place Place, secret string) ([]byte, error) {
	raw := []byte(secret)
	defer clear(raw)
	msg, err := json.Marshal(jsonEnvelope{
		V: jsonEnvelopeVersion, Table: place.Table, Field: place.Field,
		User: string(place.User), Provider: string(place.Provider), Secret: raw,
	})
	if err != nil {
		return nil, fmt.Errorf("JSON envelope: %T", err) // the error could quote the secret
	}
	return msg, nil
}

// decodeJSONEnvelope decodes msg as a JSON envelope, as tokenstore read
// them before the binary one. The caller clears the returned envelope's
// Secret (and msg). Errors wrap errEnvelope and never quote msg.
func decodeJSONEnvelope(msg []byte) (jsonEnvelope, error) {
	var env jsonEnvelope
	if err := json.Unmarshal(msg, &env); err != nil {
		clear(env.Secret)
		return jsonEnvelope{}, fmt.Errorf("%w: JSON envelope: %s", errEnvelope, jsonProblem(err))
	}
	if env.V != jsonEnvelopeVersion {
		clear(env.Secret)
		return jsonEnvelope{}, fmt.Errorf("%w: JSON envelope of unknown version %d", errEnvelope, env.V)
	}
	return env, nil
}

// jsonProblem describes a decoding failure without its text: a SyntaxError
// quotes the offending character and an UnmarshalTypeError may quote the
// value, both of which are token material here.
func jsonProblem(err error) string {
	var (
		syntax   *json.SyntaxError
		mismatch *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("not valid JSON (syntax error at byte %d)", syntax.Offset)
	case errors.As(err, &mismatch):
		kind, _, _ := strings.Cut(mismatch.Value, " ") // "number 12", keep "number"
		return fmt.Sprintf("member %q cannot hold a JSON %s", mismatch.Field, kind)
	default:
		return fmt.Sprintf("undecodable (%T)", err)
	}
}

// openEnvelope decodes an opened envelope, binary or JSON, and checks it
// was sealed for place. It returns the secret, a copy the caller owns, and
// the format it was in. A valid envelope of another place fails with
// ErrMisplaced; an invalid one with errEnvelope. It does not clear msg.
func openEnvelope(msg []byte, place Place) (domain.Secret, EnvelopeFormat, error) {
	switch {
	case len(msg) > 0 && msg[0] == binaryEnvelopeVersion:
		env, err := decodeBinaryEnvelope(msg)
		if err != nil {
			return domain.Secret{}, EnvelopeBinary, err
		}
		if !env.at(place) {
			return domain.Secret{}, EnvelopeBinary, ErrMisplaced
		}
		return domain.NewSecret(string(env.secret)), EnvelopeBinary, nil
	case len(msg) > 0 && msg[0] == '{':
		env, err := decodeJSONEnvelope(msg)
		if err != nil {
			return domain.Secret{}, EnvelopeJSON, err
		}
		defer clear(env.Secret)
		got := Place{Table: env.Table, Field: env.Field, User: domain.UserID(env.User), Provider: domain.Provider(env.Provider)}
		if got != place {
			return domain.Secret{}, EnvelopeJSON, ErrMisplaced
		}
		return domain.NewSecret(string(env.Secret)), EnvelopeJSON, nil
	case len(msg) == 0:
		return domain.Secret{}, EnvelopeBinary, fmt.Errorf("%w: the plaintext is empty", errEnvelope)
	default:
		return domain.Secret{}, EnvelopeBinary, fmt.Errorf("%w: the plaintext is neither a binary envelope (first byte %d) "+
			"nor a JSON one (first byte '{'): written by a later release, or not by tokenstore", errEnvelope, binaryEnvelopeVersion)
	}
}
