package fernet_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/domain"
)

// fixedKey is bytes 0..31; fixedKeyID was computed independently in Python:
// hashlib.sha256(b"tokenstore/fernet-key-id/v1\x00" + bytes(range(32))).digest()[:8].hex()
const (
	fixedKey   = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	fixedKeyID = domain.KeyID("9c6973a23fb66330")
)

func mustParseKey(t testing.TB, s string) fernet.Key {
	t.Helper()
	k, err := fernet.ParseKey(s)
	if err != nil {
		t.Fatalf("ParseKey: %v", err)
	}
	return k
}

func mustGenerateKey(t testing.TB) fernet.Key {
	t.Helper()
	k, err := fernet.GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	return k
}

func TestParseKeyAcceptedEncodings(t *testing.T) {
	t.Parallel()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(250 - i) // high bytes, so std and URL alphabets differ
	}
	std := base64.StdEncoding.EncodeToString(raw)
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test key %q does not exercise the standard alphabet", std)
	}
	want := base64.URLEncoding.EncodeToString(raw)
	tests := []struct {
		name string
		in   string
	}{
		{"url-safe padded (Fernet.generate_key)", want},
		{"standard padded (legacy derivation)", std},
		{"url-safe unpadded", base64.RawURLEncoding.EncodeToString(raw)},
		{"standard unpadded", base64.RawStdEncoding.EncodeToString(raw)},
		{"hex (fernet-go DecodeKey)", hex.EncodeToString(raw)},
		{"trailing newline from a key file", want + "\n"},
		{"surrounding spaces", "  " + want + "\t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := fernet.ParseKey(tt.in)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if got := k.Encode(); got != want {
				t.Errorf("Encode() = %q, want %q", got, want)
			}
		})
	}
}

func TestParseKeyRejectsWithoutEchoingTheKey(t *testing.T) {
	t.Parallel()
	good := base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	tests := []struct {
		name    string
		in      string
		wantMsg string
	}{
		{"empty", "", "empty"},
		{"blank", "  \n", "empty"},
		{"too short", good[:41], "not base64"},
		{"missing characters", good[:40], "decodes to 30 bytes"},
		{"43 chars, low bits set", good[:42] + "B", "not base64"},
		{"16 bytes", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16)), "decodes to 16 bytes"},
		{"48 bytes", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 48)), "decodes to 48 bytes"},
		{"invalid characters", "!!" + good[2:], "not base64"},
		{"64 chars, not hex", strings.Repeat("g", 64), "decodes to 48 bytes"},
		{"JWT secret passed as key", "my-super-secret-jwt-signing-key-do-not-leak1", "decodes to 33 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := fernet.ParseKey(tt.in)
			if err == nil {
				t.Fatalf("ParseKey accepted %s as %v", tt.name, k)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("error %q does not say %q", msg, tt.wantMsg)
			}
			if in := strings.TrimSpace(tt.in); len(in) >= 4 && strings.Contains(msg, in[:4]) {
				t.Errorf("error %q quotes the key text", msg)
			}
		})
	}
}

func TestKeyIDIsPinned(t *testing.T) {
	t.Parallel()
	// A change here orphans every stored row: the ids live in the database.
	tests := []struct {
		name string
		key  fernet.Key
		want domain.KeyID
	}{
		{"parsed key bytes 0..31", mustParseKey(t, fixedKey), fixedKeyID},
		// Python: sha256(b"tokenstore/fernet-key-id/v1\x00" + sha256(b"tokenstore-test-jwt-secret-0").digest()).digest()[:8].hex()
		{"legacy JWT-secret key", fernet.KeyFromJWTSecret("tokenstore-test-jwt-secret-0"), "fefb093d713522a1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.key.ID(); got != tt.want {
				t.Errorf("ID() = %s, want %s", got, tt.want)
			}
		})
	}
}

const printIDEnv = "TOKENSTORE_FERNET_TEST_PRINT_KEY_ID"

// TestKeyIDStableAcrossProcesses guards against the replaced system's bug:
// a key id chosen at random per process.
func TestKeyIDStableAcrossProcesses(t *testing.T) {
	if os.Getenv(printIDEnv) == "1" {
		fmt.Printf("key-id=%s\n", mustParseKey(t, fixedKey).ID())
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeyIDStableAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), printIDEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	want := "key-id=" + string(fixedKeyID) + "\n"
	if !strings.Contains(string(out), want) {
		t.Errorf("child printed %q, want a line %q", out, want)
	}
	if got := mustParseKey(t, fixedKey).ID(); got != fixedKeyID {
		t.Errorf("this process: ID() = %s, want %s", got, fixedKeyID)
	}
}

func TestKeyIDDiffersPerKeyAndHidesTheKey(t *testing.T) {
	t.Parallel()
	seen := map[domain.KeyID]bool{}
	for range 50 {
		k := mustGenerateKey(t)
		id := k.ID()
		if len(id) != 16 || strings.Trim(string(id), "0123456789abcdef") != "" {
			t.Fatalf("ID() = %q, want 16 lower-case hex digits", id)
		}
		if seen[id] {
			t.Fatalf("two generated keys share id %s", id)
		}
		seen[id] = true
		raw, _ := base64.URLEncoding.DecodeString(k.Encode())
		if strings.Contains(hex.EncodeToString(raw), string(id)) {
			t.Fatalf("id %s is a slice of the key material", id)
		}
		if again := mustParseKey(t, k.Encode()); again.ID() != id {
			t.Fatalf("re-parsed key has id %s, want %s", again.ID(), id)
		}
	}
}

func TestGenerateKeyEncodesAsPythonFernetKey(t *testing.T) {
	t.Parallel()
	k := mustGenerateKey(t)
	enc := k.Encode()
	raw, err := base64.URLEncoding.DecodeString(enc)
	if err != nil || len(raw) != 32 || len(enc) != 44 {
		t.Fatalf("Encode() = %d chars, decodes to %d bytes (err %v); want 44 chars of URL-safe base64 for 32 bytes",
			len(enc), len(raw), err)
	}
	if strings.ContainsAny(enc, "+/") {
		t.Errorf("Encode() uses the standard alphabet")
	}
	if mustGenerateKey(t).ID() == k.ID() {
		t.Errorf("two generated keys are equal")
	}
}

func TestKeyFromJWTSecretIsSHA256OfSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		secret string
		want   string // base64.b64encode(hashlib.sha256(secret.encode()).digest()), from Python
	}{
		{"tokenstore-test-jwt-secret-0", "tGQQyzSvZj8+1oOF/xIwB75yCyibF7s28Czut+vZL+8="},
		{"jwt-sécret-ü", "+pZFOf5LMcpD/zhGav94/pNfp4T0rY6mf4dlet92/l4="},
	}
	for _, tt := range tests {
		t.Run(tt.secret, func(t *testing.T) {
			t.Parallel()
			got := fernet.KeyFromJWTSecret(tt.secret)
			want := mustParseKey(t, tt.want)
			if got.Encode() != want.Encode() || got.ID() != want.ID() {
				t.Errorf("KeyFromJWTSecret(%q) = %v, want %v", tt.secret, got, want)
			}
		})
	}
}

// TestKeyNeverPrintsItsMaterial checks every way a Key can reach text. The
// material is looked for in each encoding a careless reader might recognise.
func TestKeyNeverPrintsItsMaterial(t *testing.T) {
	t.Parallel()
	k := mustParseKey(t, fixedKey)
	raw, _ := base64.StdEncoding.DecodeString(fixedKey)
	forbidden := []string{
		k.Encode(),
		fixedKey,
		base64.RawURLEncoding.EncodeToString(raw),
		hex.EncodeToString(raw),
		fmt.Sprint(raw), // [0 1 2 ...]
		fmt.Sprint(raw)[5:20],
	}
	want := "fernet-key(" + string(fixedKeyID) + ")"

	type config struct {
		Name   string
		Key    fernet.Key
		hidden fernet.Key
		Ptr    *fernet.Key
	}
	cfg := config{Name: "x", Key: k, hidden: k, Ptr: &k}

	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("loaded", "key", k, "cfg", cfg, slog.Any("ptr", &k))
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("loaded", "key", k, "cfg", cfg)
	jsonKey, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	jsonCfg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	jsonMap, err := json.Marshal(map[fernet.Key]int{k: 1})
	if err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{
		"%v":           fmt.Sprintf("%v", k),
		"%s":           fmt.Sprintf("%s", k),
		"%+v":          fmt.Sprintf("%+v", k),
		"%#v":          fmt.Sprintf("%#v", k),
		"%q":           fmt.Sprintf("%q", k),
		"%x":           fmt.Sprintf("%x", k),
		"%X":           fmt.Sprintf("%X", k),
		"%d":           fmt.Sprintf("%d", k),
		"Sprint":       fmt.Sprint(k),
		"String":       k.String(),
		"GoString":     k.GoString(),
		"Errorf %v":    fmt.Errorf("bad key %v", k).Error(),
		"ptr %v":       fmt.Sprintf("%v", &k),
		"ptr %+v":      fmt.Sprintf("%+v", &k),
		"struct %v":    fmt.Sprintf("%v", cfg),
		"struct %+v":   fmt.Sprintf("%+v", cfg),
		"struct %#v":   fmt.Sprintf("%#v", cfg),
		"structptr %v": fmt.Sprintf("%+v", &cfg),
		"json":         string(jsonKey),
		"json struct":  string(jsonCfg),
		"json map key": string(jsonMap),
		"slog json":    jsonLog.String(),
		"slog text":    textLog.String(),
	}
	for name, out := range outputs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Errorf("%s output %q contains key material %q", name, out, f)
			}
		}
	}
	for _, name := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "Sprint", "json", "slog json", "slog text"} {
		if !strings.Contains(outputs[name], want) {
			t.Errorf("%s output %q does not name the key as %q", name, outputs[name], want)
		}
	}
	if got := fmt.Sprint(fernet.Key{}); got != "fernet-key(none)" {
		t.Errorf("zero Key prints %q", got)
	}
}
