package fernet_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	fernetgo "github.com/fernet/fernet-go"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/domain"
)

func mustKeyring(t testing.TB, primary fernet.Key, older ...fernet.Key) *fernet.Keyring {
	t.Helper()
	r, err := fernet.NewKeyring(primary, older...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return r
}

func mustEncrypt(t testing.TB, r *fernet.Keyring, plaintext string) domain.Ciphertext {
	t.Helper()
	c, err := r.Encrypt(domain.NewSecret(plaintext))
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return c
}

// assertDecryptErr checks err is ErrDecrypt, says why, and leaks nothing.
func assertDecryptErr(t *testing.T, err error, wantMsg string, secrets ...string) {
	t.Helper()
	if !errors.Is(err, domain.ErrDecrypt) {
		t.Fatalf("error %v does not wrap domain.ErrDecrypt", err)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("error %q does not say %q", err, wantMsg)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains secret material %q", err, s)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	r := mustKeyring(t, mustGenerateKey(t))
	tests := []struct {
		name      string
		plaintext string
	}{
		{"empty", ""},
		{"one byte", "x"},
		{"one AES block exactly", "0123456789abcdef"},
		{"github token", "gho_16C7e42F292c6912E7710c838347Ae178B4a"},
		{"non-ASCII", "tökén-✓ 令牌 🔑"},
		{"NUL and control bytes", "a\x00b\x01\n\r\t"},
		{"invalid UTF-8 survives", "\xff\xfe"},
		{"long", strings.Repeat("eyJhbGciOiJSUzI1NiJ9.", 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := mustEncrypt(t, r, tt.plaintext)
			if c.KeyID != r.PrimaryKeyID() {
				t.Errorf("KeyID = %s, want primary %s", c.KeyID, r.PrimaryKeyID())
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(c.Data, []byte(tt.plaintext)) {
				t.Errorf("ciphertext contains the plaintext")
			}
			got, err := r.Decrypt(c)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if got.Reveal() != tt.plaintext {
				t.Errorf("Decrypt = %q, want %q", got.Reveal(), tt.plaintext)
			}
			again := mustEncrypt(t, r, tt.plaintext)
			if bytes.Equal(again.Data, c.Data) {
				t.Errorf("two encryptions of the same plaintext are identical (IV reused)")
			}
		})
	}
}

// TestCiphertextIsStandardFernet: what we store must stay readable by any
// Fernet implementation, including the Python one we migrate from.
func TestCiphertextIsStandardFernet(t *testing.T) {
	t.Parallel()
	k := mustParseKey(t, fixedKey)
	r := mustKeyring(t, k)
	c := mustEncrypt(t, r, "hello")
	if !bytes.HasPrefix(c.Data, []byte("gAAAAA")) {
		t.Errorf("ciphertext %q does not look like a Fernet token", c.Data)
	}
	msg := fernetgo.VerifyAndDecrypt(c.Data, 0, fernetgo.MustDecodeKeys(fixedKey))
	if string(msg) != "hello" {
		t.Errorf("fernet-go read %q, want %q", msg, "hello")
	}
}

// TestSealOpenOwnBuffers: Open hands back a buffer of its own (clearing
// it, as callers do, does not touch the next Open's) and Seal neither keeps
// nor changes the plaintext it is given.
func TestSealOpenOwnBuffers(t *testing.T) {
	t.Parallel()
	r := mustKeyring(t, mustGenerateKey(t))
	msg := []byte("\x02binary envelope \x00\xff")
	want := bytes.Clone(msg)
	c, err := r.Seal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg, want) {
		t.Fatalf("Seal changed its input")
	}
	clear(msg)
	first, err := r.Open(c)
	if err != nil || !bytes.Equal(first, want) {
		t.Fatalf("Open = %q, %v; want the bytes sealed", first, err)
	}
	clear(first)
	second, err := r.Open(c)
	if err != nil || !bytes.Equal(second, want) {
		t.Fatalf("Open after clearing the first result = %q, %v", second, err)
	}
}

func TestDecryptFailures(t *testing.T) {
	t.Parallel()
	keyA, keyB := mustGenerateKey(t), mustGenerateKey(t)
	ringA, ringB := mustKeyring(t, keyA), mustKeyring(t, keyB)
	const plaintext = "gho_plaintext_that_must_not_leak"
	fromA := mustEncrypt(t, ringA, plaintext)
	leaks := []string{plaintext, keyA.Encode(), keyB.Encode()}

	flip := func(i int) []byte {
		d := bytes.Clone(fromA.Data)
		raw, _ := base64.URLEncoding.DecodeString(string(d))
		raw[i] ^= 0x01
		return []byte(base64.URLEncoding.EncodeToString(raw))
	}
	rawLen := base64.URLEncoding.DecodedLen(len(fromA.Data))

	tests := []struct {
		name    string
		ring    *fernet.Keyring
		c       domain.Ciphertext
		wantMsg string
	}{
		{"wrong key, id says B", ringB, domain.Ciphertext{KeyID: keyB.ID(), Data: fromA.Data}, "not valid under key " + string(keyB.ID())},
		{"wrong key, no id", ringB, domain.Ciphertext{Data: fromA.Data}, "not valid under any of the 1 keys"},
		{"unknown key id", ringB, fromA, "unknown key id " + string(keyA.ID()) + ": add the key to the keyring"},
		{"unknown malformed key id", ringA, domain.Ciphertext{KeyID: "x\ny", Data: fromA.Data}, `unknown key id "x\ny"`},
		{"tampered ciphertext byte", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: flip(30)}, "tampered"},
		{"tampered timestamp", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: flip(5)}, "tampered"},
		{"tampered IV", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: flip(12)}, "tampered"},
		{"tampered HMAC", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: flip(rawLen - 5)}, "tampered"},
		{"tampered version", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: flip(0)}, "version byte"},
		{"tampered, no id", ringA, domain.Ciphertext{Data: flip(30)}, "not valid under any"},
		{"truncated base64 text", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: fromA.Data[:len(fromA.Data)-3]}, "not URL-safe base64"},
		{"truncated by one block", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: []byte(base64.URLEncoding.EncodeToString(func() []byte {
			raw, _ := base64.URLEncoding.DecodeString(string(fromA.Data))
			return raw[:len(raw)-16]
		}()))}, "tampered"},
		{"truncated mid-block", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: []byte(base64.URLEncoding.EncodeToString(func() []byte {
			raw, _ := base64.URLEncoding.DecodeString(string(fromA.Data))
			return raw[:len(raw)-7]
		}()))}, "whole number of AES blocks"},
		{"too short", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: fromA.Data[:40]}, "shorter than the smallest Fernet token"},
		{"header only", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: []byte("gAAAAAA=")}, "shorter than the smallest"},
		{"garbage", ringA, domain.Ciphertext{KeyID: keyA.ID(), Data: []byte("not a token at all!")}, "not URL-safe base64"},
		{"binary garbage", ringA, domain.Ciphertext{Data: []byte{0xff, 0x00, 0x80}}, "not URL-safe base64"},
		{"plaintext stored unencrypted", ringA, domain.Ciphertext{Data: []byte("gho16C7e42F292c6912E7710c838347Ae178B4a")}, "not"},
		{"empty", ringA, domain.Ciphertext{KeyID: keyA.ID()}, "ciphertext is empty"},
		{"empty, no id", ringA, domain.Ciphertext{Data: []byte{}}, "ciphertext is empty"},
		{"base64-wrapped legacy token", ringA, domain.Ciphertext{Data: []byte(base64.StdEncoding.EncodeToString(fromA.Data))}, "UnwrapLegacy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.ring.Decrypt(tt.c)
			if err == nil {
				t.Fatalf("Decrypt succeeded with %q", got.Reveal())
			}
			assertDecryptErr(t, err, tt.wantMsg, leaks...)
			if !got.IsZero() {
				t.Errorf("Decrypt returned a value alongside an error")
			}
			msg, err := tt.ring.Open(tt.c)
			assertDecryptErr(t, err, tt.wantMsg, leaks...)
			if msg != nil {
				t.Errorf("Open returned bytes alongside an error")
			}
			if !strings.Contains(tt.name, "unknown") { // the data itself is fine there
				_, err := tt.ring.KeyOf(tt.c.Data)
				assertDecryptErr(t, err, "", leaks...)
			}
		})
	}
}

// TestShortTokenWithValidHMACDoesNotPanic: fernet-go slices the payload
// before checking its length, so a key holder could crash a caller with a
// 60-byte token; the format check must stop it first.
func TestShortTokenWithValidHMACDoesNotPanic(t *testing.T) {
	t.Parallel()
	k := mustParseKey(t, fixedKey)
	r := mustKeyring(t, k)
	for _, n := range []int{0, 8, 16, 20} { // payload shorter than the IV ends
		raw := make([]byte, 1+n)
		raw[0] = 0x80
		tok := signed(t, raw)
		_, err := r.Decrypt(domain.Ciphertext{KeyID: k.ID(), Data: tok})
		assertDecryptErr(t, err, "shorter than the smallest")
	}
}

// signed appends the HMAC fixedKey's signing half gives to raw.
func signed(t *testing.T, raw []byte) []byte {
	t.Helper()
	key, _ := base64.StdEncoding.DecodeString(fixedKey)
	mac := hmacSHA256(key[:16], raw)
	return []byte(base64.URLEncoding.EncodeToString(append(raw, mac...)))
}

func hmacSHA256(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

func TestNewPrimaryKey(t *testing.T) {
	t.Parallel()
	keyA, keyB, keyC := mustGenerateKey(t), mustGenerateKey(t), mustGenerateKey(t)
	before := mustKeyring(t, keyA)
	fromA := mustEncrypt(t, before, "written before the change")
	bytesFromA, err := before.Seal([]byte("\x02a"))
	if err != nil {
		t.Fatal(err)
	}

	after := mustKeyring(t, keyB, keyA)
	if got := after.PrimaryKeyID(); got != keyB.ID() {
		t.Errorf("PrimaryKeyID = %s, want %s", got, keyB.ID())
	}
	got, err := after.Decrypt(fromA)
	if err != nil || got.Reveal() != "written before the change" {
		t.Fatalf("old ciphertext after the change: %q, %v", got.Reveal(), err)
	}
	if msg, err := after.Open(bytesFromA); err != nil || string(msg) != "\x02a" {
		t.Fatalf("old bytes after the change: %q, %v", msg, err)
	}
	fromB := mustEncrypt(t, after, "written after the change")
	if fromB.KeyID != keyB.ID() {
		t.Errorf("new ciphertext KeyID = %s, want the new primary %s", fromB.KeyID, keyB.ID())
	}
	if _, err := before.Decrypt(fromB); !errors.Is(err, domain.ErrDecrypt) {
		t.Errorf("the old ring read a value sealed by the new key: %v", err)
	}

	for _, tc := range []struct {
		data []byte
		want domain.KeyID
	}{{fromA.Data, keyA.ID()}, {fromB.Data, keyB.ID()}} {
		if id, err := after.KeyOf(tc.data); err != nil || id != tc.want {
			t.Errorf("KeyOf = %s, %v; want %s", id, err, tc.want)
		}
		got, err := after.Decrypt(domain.Ciphertext{Data: tc.data})
		if err != nil || got.IsZero() {
			t.Errorf("Decrypt without key id: %v", err)
		}
	}

	retired := mustKeyring(t, keyC, keyB)
	_, err = retired.Decrypt(fromA)
	assertDecryptErr(t, err, "unknown key id "+string(keyA.ID()))
	_, err = retired.KeyOf(fromA.Data)
	assertDecryptErr(t, err, "not valid under any of the 2 keys")
}

func TestNewKeyring(t *testing.T) {
	t.Parallel()
	a, b, c := mustGenerateKey(t), mustGenerateKey(t), mustGenerateKey(t)
	aAgain := mustParseKey(t, a.Encode())
	tests := []struct {
		name    string
		primary fernet.Key
		older   []fernet.Key
		wantIDs []domain.KeyID
		wantErr string
	}{
		{"primary only", a, nil, []domain.KeyID{a.ID()}, ""},
		{"primary first", c, []fernet.Key{a, b}, []domain.KeyID{c.ID(), a.ID(), b.ID()}, ""},
		{"primary repeated as older", a, []fernet.Key{b, aAgain}, nil,
			"duplicate key " + string(a.ID()) + ": the primary key and older key #2 are the same key"},
		{"older repeated", a, []fernet.Key{b, c, b}, nil, "older key #1 and older key #3 are the same key"},
		{"zero primary", fernet.Key{}, []fernet.Key{a}, nil, "the primary key is the zero Key"},
		{"zero older", a, []fernet.Key{{}}, nil, "older key #1 is the zero Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := fernet.NewKeyring(tt.primary, tt.older...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewKeyring error = %v, want %q", err, tt.wantErr)
				}
				for _, k := range []fernet.Key{a, b, c} {
					if strings.Contains(err.Error(), k.Encode()) {
						t.Errorf("error %q contains key material", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("NewKeyring: %v", err)
			}
			if fmt.Sprint(r.Keys()) != fmt.Sprint(tt.wantIDs) {
				t.Errorf("Keys() = %v, want %v", r.Keys(), tt.wantIDs)
			}
			if r.PrimaryKeyID() != tt.wantIDs[0] {
				t.Errorf("PrimaryKeyID() = %s, want %s", r.PrimaryKeyID(), tt.wantIDs[0])
			}
		})
	}
}

func TestNewKeyringDoesNotAliasCallerSlice(t *testing.T) {
	t.Parallel()
	a, b, c := mustGenerateKey(t), mustGenerateKey(t), mustGenerateKey(t)
	older := []fernet.Key{b}
	r := mustKeyring(t, a, older...)
	older[0] = c
	if got := r.Keys(); len(got) != 2 || got[1] != b.ID() {
		t.Errorf("Keys() = %v after the caller changed its slice", got)
	}
	r.Keys()[0] = "changed"
	if r.PrimaryKeyID() != a.ID() {
		t.Errorf("Keys() exposes the ring's slice")
	}
}

func TestKeyringNeverPrintsMaterial(t *testing.T) {
	t.Parallel()
	a, b := mustGenerateKey(t), mustGenerateKey(t)
	r := mustKeyring(t, a, b)
	want := fmt.Sprintf("fernet-keyring(primary=%s, keys=2)", a.ID())
	type holder struct{ ring *fernet.Keyring }
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("started", "keyring", r)
	if !strings.Contains(log.String(), want) {
		t.Errorf("slog output %q does not summarise the ring as %q", log.String(), want)
	}
	for _, out := range []string{
		fmt.Sprintf("%v", r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), fmt.Sprintf("%x", r), fmt.Sprint(r),
		fmt.Sprintf("%+v", holder{r}), fmt.Sprintf("%#v", holder{r}), r.String(), r.GoString(), log.String(),
	} {
		for _, k := range []fernet.Key{a, b} {
			if strings.Contains(out, k.Encode()) {
				t.Errorf("%q contains key material", out)
			}
		}
	}
	if got := fmt.Sprint(r); got != want {
		t.Errorf("Sprint = %q, want %q", got, want)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	r := mustKeyring(t, mustGenerateKey(t), mustGenerateKey(t))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				want := fmt.Sprintf("token-%d-%d", i, j)
				c, err := r.Encrypt(domain.NewSecret(want))
				if err != nil {
					t.Error(err)
					return
				}
				got, err := r.Decrypt(c)
				if err != nil || got.Reveal() != want {
					t.Errorf("Decrypt = %q, %v; want %q", got.Reveal(), err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The keyring's overhead over bare fernet-go (key lookup by id, format
// checks, copying the plaintext out of a Secret) must stay small next to
// the cryptography itself: these targets are ratios measured in one run,
// the two sides interleaved so machine noise hits both alike.
const (
	encryptTarget = 1.3
	decryptTarget = 1.5 // the format check decodes the base64 once more (1.23x measured)
)

func ratioBench(b *testing.B, target float64, base, ours func()) {
	b.Helper()
	b.ReportAllocs()
	var tBase, tOurs time.Duration
	for b.Loop() {
		start := time.Now()
		base()
		mid := time.Now()
		ours()
		tBase += mid.Sub(start)
		tOurs += time.Since(mid)
	}
	ratio := float64(tOurs) / float64(tBase)
	b.ReportMetric(ratio, "x-fernet-go")
	if ratio > target {
		b.Errorf("%.2fx bare fernet-go; target <= %.1fx", ratio, target)
	}
}

func BenchmarkEncrypt(b *testing.B) {
	key := mustGenerateKey(b)
	r := mustKeyring(b, key)
	raw := fernetgo.MustDecodeKeys(key.Encode())[0]
	const token = "gho_16C7e42F292c6912E7710c838347Ae178B4a"
	s := domain.NewSecret(token)
	ratioBench(b, encryptTarget,
		func() {
			if _, err := fernetgo.EncryptAndSign([]byte(token), raw); err != nil {
				b.Fatal(err)
			}
		},
		func() {
			if _, err := r.Encrypt(s); err != nil {
				b.Fatal(err)
			}
		})
}

func BenchmarkDecrypt(b *testing.B) {
	key := mustGenerateKey(b)
	// The ring holds three keys; the ciphertext's key id picks one directly.
	r := mustKeyring(b, key, mustGenerateKey(b), mustGenerateKey(b))
	c := mustEncrypt(b, r, "gho_16C7e42F292c6912E7710c838347Ae178B4a")
	raw := fernetgo.MustDecodeKeys(key.Encode())
	ratioBench(b, decryptTarget,
		func() {
			if fernetgo.VerifyAndDecrypt(c.Data, 0, raw) == nil {
				b.Fatal("decrypt failed")
			}
		},
		func() {
			if _, err := r.Decrypt(c); err != nil {
				b.Fatal(err)
			}
		})
}
