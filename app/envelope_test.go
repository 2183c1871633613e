package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/domain"
)

// TestBinaryEnvelopeLayout pins the bytes: stored envelopes must open in
// every later release, so a change here is a new format version, never an
// edit of this one.
func TestBinaryEnvelopeLayout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		place  Place
		secret string
		want   []byte
	}{
		{"access token", AccessTokenPlace("alice", "github"), "tok", []byte("\x02\x01\x05alice\x06github\x00\x00\x00\x03tok")},
		{"refresh token", RefreshTokenPlace("alice", "gitlab"), "r", []byte("\x02\x02\x05alice\x06gitlab\x00\x00\x00\x01r")},
		{"offline token", OfflineTokenPlace("bob"), "xy", []byte("\x02\x03\x03bob\x00\x00\x00\x00\x02xy")},
		{"secret over 255 bytes", OfflineTokenPlace("b"), strings.Repeat("s", 258), append([]byte("\x02\x03\x01b\x00\x00\x00\x01\x02"), strings.Repeat("s", 258)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := binaryEnvelope(tt.place, tt.secret)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("binaryEnvelope = %q, want %q", got, tt.want)
			}
			if cap(got) != len(got) {
				t.Errorf("buffer capacity %d for %d bytes: the envelope is built in a buffer of its exact size", cap(got), len(got))
			}
			secret, format, err := openEnvelope(got, tt.place)
			if err != nil || secret.Reveal() != tt.secret || format != EnvelopeBinary {
				t.Errorf("openEnvelope = %s, %v; want the secret, binary", format, err)
			}
		})
	}
}

// ring is a real Fernet keyring with the key testdata's vectors use.
func ring(t testing.TB) *fernet.Keyring {
	t.Helper()
	k, err := fernet.ParseKey("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	if err != nil {
		t.Fatal(err)
	}
	r, err := fernet.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealUnsealBinaryRoundTrip(t *testing.T) {
	t.Parallel()
	r := ring(t)
	longUser := domain.UserID(strings.Repeat("u", domain.MaxUserIDLen))
	longProvider := domain.Provider(strings.Repeat("p", domain.MaxProviderLen))
	tests := []struct {
		name   string
		place  Place
		secret string
	}{
		{"access token", AccessTokenPlace("alice", "github"), "gho_16C7e42F292c6912E7710c838347Ae178B4a"},
		{"refresh token", RefreshTokenPlace("alice", "gitlab"), "glrt-0123"},
		{"offline token", OfflineTokenPlace("bob@example.com"), "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"},
		{"one byte", OfflineTokenPlace("b"), "x"},
		{"non-ASCII", AccessTokenPlace("ユーザー", "keycloak"), "tökén-✓ 令牌 🔑"},
		{"bytes that are not UTF-8 survive", AccessTokenPlace("u", "github"), "\xff\xfe\x00\x02{"},
		{"longest user and provider", RefreshTokenPlace(longUser, longProvider), "r"},
		{"long secret", AccessTokenPlace("u", "github"), strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 3000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Seal(r, tt.place, domain.NewSecret(tt.secret))
			if err != nil {
				t.Fatal(err)
			}
			msg, err := r.Open(c)
			if err != nil || len(msg) == 0 || msg[0] != binaryEnvelopeVersion {
				t.Fatalf("the sealed plaintext is not a binary envelope (%v)", err)
			}
			got, format, err := unseal(r, tt.place, c)
			if err != nil || got.Reveal() != tt.secret || format != EnvelopeBinary {
				t.Fatalf("unseal = %s, %v; want the secret back from a binary envelope", format, err)
			}
		})
	}
}

// TestSealRefusesWhatTheEnvelopeCannotName: the encoder holds the rules the
// decoder checks, so it never writes an envelope that would not open.
func TestSealRefusesWhatTheEnvelopeCannotName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		place   Place
		secret  string
		wantMsg string
	}{
		{"empty user", AccessTokenPlace("", "github"), "s", "user id is 0 bytes"},
		{"user over 255 bytes", AccessTokenPlace(domain.UserID(strings.Repeat("u", 256)), "github"), "s", "user id is 256 bytes"},
		{"provider over 64 bytes", AccessTokenPlace("u", domain.Provider(strings.Repeat("p", 65))), "s", "provider name is 65 bytes"},
		{"auth token without provider", RefreshTokenPlace("u", ""), "s", "provider name is 0 bytes"},
		{"offline token with a provider", Place{Table: offlineTokensTable, Field: offlineTokenField, User: "u", Provider: "github"}, "s", "has no provider"},
		{"place without a code", Place{Table: eventsTable, Field: "access_token", User: "u", Provider: "github"}, "s", "no place code for events.access_token"},
		{"empty secret", AccessTokenPlace("u", "github"), "", "secret is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Seal(newFakeKeyring("k1"), tt.place, domain.NewSecret(tt.secret))
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Seal = %q, %v; want an error saying %q", c.Data, err, tt.wantMsg)
			}
		})
	}
}

// validEnvelope is the envelope the corruption tests start from: every
// field present, lengths that differ from the bytes around them.
func validEnvelope(t testing.TB) (Place, string, []byte) {
	t.Helper()
	place, secret := RefreshTokenPlace("alice", "gitlab"), "glrt-SECRET-material"
	msg, err := binaryEnvelope(place, secret)
	if err != nil {
		t.Fatal(err)
	}
	return place, secret, msg
}

// refused checks that opening msg at place fails as an invalid envelope
// (domain.ErrDecrypt through Unseal), saying wantMsg, without the secret.
func refused(t *testing.T, msg []byte, place Place, secret, wantMsg string) {
	t.Helper()
	ct, _ := newFakeKeyring("k1").Seal(msg)
	got, err := Unseal(newFakeKeyring("k1"), place, ct)
	if err == nil {
		t.Fatalf("%q opened as %q", msg, got.Reveal())
	}
	if !errors.Is(err, domain.ErrDecrypt) || !errors.Is(err, errEnvelope) || errors.Is(err, ErrMisplaced) {
		t.Errorf("err = %v, want ErrDecrypt and an invalid envelope", err)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("err = %v, want it to say %q", err, wantMsg)
	}
	for _, leak := range []string{secret, "SECRET", "material"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("err = %v quotes the secret", err)
		}
	}
}

func TestBinaryEnvelopeRefusesEveryTruncation(t *testing.T) {
	t.Parallel()
	place, secret, msg := validEnvelope(t)
	for n := 1; n < len(msg); n++ { // n == 0 is the empty plaintext, below
		refused(t, msg[:n], place, secret, "truncated")
	}
	refused(t, nil, place, secret, "the plaintext is empty")
}

func TestBinaryEnvelopeRefusesEveryExtension(t *testing.T) {
	t.Parallel()
	place, secret, msg := validEnvelope(t)
	for _, tail := range [][]byte{{0}, {binaryEnvelopeVersion}, []byte("x"), []byte(secret), msg} {
		refused(t, append(bytes.Clone(msg), tail...), place, secret, "(extended)")
	}
}

func TestBinaryEnvelopeRefusesOtherVersions(t *testing.T) {
	t.Parallel()
	place, secret, msg := validEnvelope(t)
	for v := range 256 {
		if v == binaryEnvelopeVersion || v == '{' {
			continue
		}
		bad := bytes.Clone(msg)
		bad[0] = byte(v)
		refused(t, bad, place, secret, "neither a binary envelope")
		if _, err := decodeBinaryEnvelope(bad); err == nil || !strings.Contains(err.Error(), "not the format version 2") {
			t.Errorf("version byte %d: decodeBinaryEnvelope err = %v", v, err)
		}
	}
	bad := bytes.Clone(msg)
	bad[0] = '{'
	refused(t, bad, place, secret, "JSON envelope: not valid JSON")
}

// TestBinaryEnvelopeRefusesEveryFieldCorruption sets each length and the
// place code to every other value it can hold: none decodes.
func TestBinaryEnvelopeRefusesEveryFieldCorruption(t *testing.T) {
	t.Parallel()
	place, secret, msg := validEnvelope(t)
	u := int(msg[2])
	p := int(msg[3+u])
	sAt := 4 + u + p
	for code := range 256 {
		if code == int(placeRefreshToken) {
			continue
		}
		bad := bytes.Clone(msg)
		bad[1] = byte(code)
		switch code {
		case int(placeAccessToken): // a valid envelope of the access token's place
			_, err := Unseal(newFakeKeyring("k1"), place, mustSeal(t, bad))
			if !errors.Is(err, ErrMisplaced) {
				t.Errorf("place code %d: err = %v, want ErrMisplaced", code, err)
			}
		case int(placeOfflineToken):
			refused(t, bad, place, secret, "an offline token has no provider")
		default:
			refused(t, bad, place, secret, "unknown place code")
		}
	}
	for v := range 256 {
		if v == u {
			continue
		}
		bad := bytes.Clone(msg)
		bad[2] = byte(v)
		refused(t, bad, place, secret, "binary envelope")
	}
	for v := range 256 {
		if v == p {
			continue
		}
		bad := bytes.Clone(msg)
		bad[3+u] = byte(v)
		refused(t, bad, place, secret, "binary envelope")
	}
	s := len(secret)
	for _, v := range []uint32{0, 1, uint32(s - 1), uint32(s + 1), uint32(s + 4), 1 << 16, 1<<32 - 1} {
		bad := bytes.Clone(msg)
		bad[sAt], bad[sAt+1], bad[sAt+2], bad[sAt+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		refused(t, bad, place, secret, "secret")
	}
	// Each byte of S set to every other value.
	for i := range 4 {
		for v := range 256 {
			if byte(v) == msg[sAt+i] {
				continue
			}
			bad := bytes.Clone(msg)
			bad[sAt+i] = byte(v)
			refused(t, bad, place, secret, "secret")
		}
	}
}

func mustSeal(t testing.TB, msg []byte) domain.Ciphertext {
	t.Helper()
	c, err := newFakeKeyring("k1").Seal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBinaryEnvelopeMisplaced: a valid binary envelope opened at any other
// place fails with ErrMisplaced (and ErrDecrypt), and the sealer logs the
// row's identity, never its material.
func TestBinaryEnvelopeMisplaced(t *testing.T) {
	t.Parallel()
	r := ring(t)
	const secret = "gho_MISPLACED_material"
	sealedAt := RefreshTokenPlace("alice", "gitlab")
	c, err := Seal(r, sealedAt, domain.NewSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	for name, at := range map[string]Place{
		"another user":      RefreshTokenPlace("bob", "gitlab"),
		"a user prefix":     RefreshTokenPlace("alic", "gitlab"),
		"another provider":  RefreshTokenPlace("alice", "github"),
		"another field":     AccessTokenPlace("alice", "gitlab"),
		"another table":     OfflineTokenPlace("alice"),
		"an unknown place":  {Table: eventsTable, Field: refreshTokenField, User: "alice", Provider: "gitlab"},
		"a provider suffix": RefreshTokenPlace("alice", "gitlab2"),
	} {
		var log bytes.Buffer
		s := sealer{crypter: r, log: slog.New(slog.NewJSONHandler(&log, nil))}
		got, err := s.openAt(at, c)
		if !errors.Is(err, ErrMisplaced) || !errors.Is(err, domain.ErrDecrypt) || !got.IsZero() {
			t.Errorf("%s: openAt = %v, want ErrMisplaced and ErrDecrypt, no secret", name, err)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(log.String(), secret) {
			t.Errorf("%s: the error or the log quotes the secret", name)
		}
		if !strings.Contains(log.String(), "integrity") || !strings.Contains(log.String(), `"user":"`+string(at.User)+`"`) {
			t.Errorf("%s: log %s, want an integrity line naming the row", name, log.String())
		}
	}
	if got, err := Unseal(r, sealedAt, c); err != nil || got.Reveal() != secret {
		t.Errorf("at its own place: %v", err)
	}
}

// jsonVectors mirrors testdata/json_envelopes.json: values the release
// before the binary envelope sealed.
type jsonVectors struct {
	FernetKey string `json:"fernet_key"`
	Vectors   []struct {
		Name       string `json:"name"`
		Table      string `json:"table"`
		Field      string `json:"field"`
		User       string `json:"user"`
		Provider   string `json:"provider"`
		Secret     string `json:"secret"`
		KeyID      string `json:"key_id"`
		Ciphertext string `json:"ciphertext"`
	} `json:"vectors"`
}

// TestJSONEnvelopesOfThePreviousReleaseOpen: rows sealed before the binary
// envelope (real Fernet tokens, testdata) still open at their place, are
// recognised as JSON (re-encryption rewrites them), and still refuse any
// other place.
func TestJSONEnvelopesOfThePreviousReleaseOpen(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/json_envelopes.json")
	if err != nil {
		t.Fatal(err)
	}
	var all jsonVectors
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	r := ring(t)
	for _, v := range all.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			place := Place{Table: v.Table, Field: v.Field, User: domain.UserID(v.User), Provider: domain.Provider(v.Provider)}
			c := domain.Ciphertext{KeyID: domain.KeyID(v.KeyID), Data: []byte(v.Ciphertext)}
			got, format, err := unseal(r, place, c)
			if err != nil || got.Reveal() != v.Secret || format != EnvelopeJSON {
				t.Fatalf("unseal = %s, %v; want the secret from a JSON envelope", format, err)
			}
			elsewhere := place
			elsewhere.User += "x"
			if _, err := Unseal(r, elsewhere, c); !errors.Is(err, ErrMisplaced) || !errors.Is(err, domain.ErrDecrypt) {
				t.Errorf("at another user's place: err = %v, want ErrMisplaced", err)
			}
			if _, err := Unseal(r, place, domain.Ciphertext{Data: c.Data}); err != nil {
				t.Errorf("without a key id (every key tried): %v", err)
			}
		})
	}
}

// TestJSONEnvelopeRoundTrip: the JSON envelope the json setting writes is
// the one the previous release wrote (and read).
func TestJSONEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	place := AccessTokenPlace("alice", "github")
	msg, err := jsonEnvelopeOf(place, "gho_\xff")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"t":"auth_tokens","f":"access_token","u":"alice","p":"github","s":"Z2hvX/8="}`; string(msg) != want {
		t.Errorf("jsonEnvelopeOf = %s, want %s", msg, want)
	}
	got, format, err := openEnvelope(msg, place)
	if err != nil || got.Reveal() != "gho_\xff" || format != EnvelopeJSON {
		t.Errorf("openEnvelope = %s, %v", format, err)
	}
}

func TestJSONEnvelopeErrorsDoNotEchoContent(t *testing.T) {
	t.Parallel()
	place := AccessTokenPlace("alice", "github")
	const secret = "gho_SECRET_material"
	tests := []struct {
		name, plaintext, wantMsg string
	}{
		{"truncated", `{"v":1,"s":"` + secret, "not valid JSON"},
		{"wrong type", `{"v":1,"u":["` + secret + `"]}`, `member "u" cannot hold a JSON array`},
		{"number into string", `{"v":1,"t":12345678901234567}`, `member "t" cannot hold a JSON number`},
		{"secret not base64", `{"v":1,"s":"` + secret + `!"}`, "undecodable"},
		{"unknown version", `{"v":2,"s":"Z2hv"}`, "JSON envelope of unknown version 2"},
		{"no version", `{"t":"auth_tokens"}`, "unknown version 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			refused(t, []byte(tt.plaintext), place, secret, tt.wantMsg)
			ct := mustSeal(t, []byte(tt.plaintext))
			_, err := Unseal(newFakeKeyring("k1"), place, ct)
			if err != nil && strings.Contains(err.Error(), "12345678901234567") {
				t.Errorf("err = %v quotes the plaintext", err)
			}
		})
	}
}

// TestUnsealRefusesValuesWithoutEnvelope: a Fernet token of a bare token
// (as the replaced system stored them; `import openhands` re-seals them in
// envelopes) is not a stored value, and saying so quotes none of it.
func TestUnsealRefusesValuesWithoutEnvelope(t *testing.T) {
	t.Parallel()
	r := ring(t)
	const bare = "gho_BARE_token_material"
	c, err := r.Seal([]byte(bare))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Unseal(r, AccessTokenPlace("alice", "github"), c)
	if !errors.Is(err, domain.ErrDecrypt) || !strings.Contains(err.Error(), "neither a binary envelope") || strings.Contains(err.Error(), "BARE") {
		t.Errorf("err = %v, want ErrDecrypt saying it is no envelope, without the token", err)
	}
	// The replaced system's values still open as they are, for the importer.
	if got, err := r.Decrypt(c); err != nil || got.Reveal() != bare {
		t.Errorf("Decrypt = %v", err)
	}
}

// FuzzDecodeBinaryEnvelope: no input panics, and what decodes re-encodes to
// exactly the input (one encoding per value, nothing ignored).
func FuzzDecodeBinaryEnvelope(f *testing.F) {
	for _, tc := range []struct {
		place  Place
		secret string
	}{
		{AccessTokenPlace("alice", "github"), "tok"},
		{RefreshTokenPlace("alice", "gitlab"), "glrt-0123"},
		{OfflineTokenPlace("bob"), "xy"},
		{OfflineTokenPlace("b"), strings.Repeat("s", 300)},
	} {
		msg, err := binaryEnvelope(tc.place, tc.secret)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
		f.Add(msg[:len(msg)-1])
		f.Add(append(bytes.Clone(msg), 0))
	}
	f.Add([]byte{})
	f.Add([]byte{binaryEnvelopeVersion})
	f.Add([]byte("\x02\x01\xff"))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		env, err := decodeBinaryEnvelope(msg)
		if err != nil {
			if !errors.Is(err, errEnvelope) {
				t.Fatalf("err = %v, want errEnvelope", err)
			}
			return
		}
		tf := codedPlaces[env.place]
		place := Place{Table: tf.table, Field: tf.field, User: domain.UserID(env.user), Provider: domain.Provider(env.provider)}
		again, err := binaryEnvelope(place, string(env.secret))
		if err != nil {
			t.Fatalf("a decoded envelope does not encode: %v", err)
		}
		if !bytes.Equal(again, msg) {
			t.Fatalf("decoded %q, which encodes as %q", msg, again)
		}
		if secret, _, err := openEnvelope(msg, place); err != nil || secret.Reveal() != string(env.secret) {
			t.Fatalf("openEnvelope at its own place: %v", err)
		}
	})
}

// TestImportSealsInTheEnvelopeAskedFor: an import seals in
// ImportOptions.Envelope, binary by default.
func TestImportSealsInTheEnvelopeAskedFor(t *testing.T) {
	t.Parallel()
	for _, f := range []EnvelopeFormat{"", EnvelopeBinary, EnvelopeJSON} {
		store, ring := newMemStore(), newFakeKeyring("k1")
		im := NewImporter(nil, declared, ring, store, nil)
		if _, err := im.Import(context.Background(), mixedSource(), ImportOptions{Envelope: f}); err != nil {
			t.Fatal(err)
		}
		got := storedFormats(t, store, ring)
		if got[f.OrDefault()] == 0 || len(got) != 1 {
			t.Errorf("Envelope %q: stored formats %v, want %s only", f, got, f.OrDefault())
		}
	}
}

func TestConfigValidateRefusesAnUnknownEnvelope(t *testing.T) {
	t.Parallel()
	for _, f := range []EnvelopeFormat{"", EnvelopeBinary, EnvelopeJSON} {
		if err := (Config{Envelope: f}).Validate(nil); err != nil {
			t.Errorf("Envelope %q: %v", f, err)
		}
	}
	if err := (Config{Envelope: "cbor"}).Validate(nil); err == nil || !strings.Contains(err.Error(), "TOKENSTORE_ENVELOPE") {
		t.Errorf(`Envelope "cbor": %v, want refused naming the setting`, err)
	}
}
