package fernet_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/domain"
)

// vectors mirrors testdata/vectors.json, written by testdata/make_vectors.py
// with Python's cryptography package exactly as the replaced system called it.
type vectors struct {
	GeneratedBy string `json:"generated_by"`
	Derived     []struct {
		JWTSecret   string   `json:"jwt_secret"`
		FernetKey   string   `json:"fernet_key"`
		Vectors     []vector `json:"vectors"`
		JSONPayload struct {
			Value json.RawMessage `json:"value"`
			Token string          `json:"token"`
		} `json:"json_payload"`
	} `json:"derived_from_jwt_secret"`
	Generated struct {
		FernetKey string   `json:"fernet_key"`
		Vectors   []vector `json:"vectors"`
	} `json:"generated_key"`
}

type vector struct {
	Name      string `json:"name"`
	Plaintext string `json:"plaintext"`
	Token     string `json:"token"`
	Wrapped   bool   `json:"wrapped"`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Derived) == 0 || len(v.Generated.Vectors) == 0 {
		t.Fatal("testdata/vectors.json has no vectors; regenerate it with make_vectors.py")
	}
	return v
}

// TestPythonLegacyVectors: rows the replaced system wrote, with a key derived
// from its JWT secret, open under KeyFromJWTSecret. Imported rows carry no
// key id, so both the by-id and the try-all paths are checked.
func TestPythonLegacyVectors(t *testing.T) {
	t.Parallel()
	all := loadVectors(t)
	for _, set := range all.Derived {
		key := fernet.KeyFromJWTSecret(set.JWTSecret)
		if parsed := mustParseKey(t, set.FernetKey); parsed.ID() != key.ID() {
			t.Fatalf("Python's key for %q has id %s, KeyFromJWTSecret gives %s", set.JWTSecret, parsed.ID(), key.ID())
		}
		// The legacy key is not primary: the realistic ring after import.
		ring := mustKeyring(t, mustGenerateKey(t), key)
		for _, v := range set.Vectors {
			t.Run(set.JWTSecret+"/"+v.Name, func(t *testing.T) {
				t.Parallel()
				data := []byte(v.Token)
				if v.Wrapped {
					if _, err := ring.Decrypt(domain.Ciphertext{Data: data}); err == nil {
						t.Fatal("a wrapped token decrypted without unwrapping")
					}
					data = fernet.UnwrapLegacy(data)
				} else if got := fernet.UnwrapLegacy(data); string(got) != v.Token {
					t.Fatalf("UnwrapLegacy changed a plain Fernet token")
				}
				for _, id := range []domain.KeyID{"", key.ID()} {
					got, err := ring.Decrypt(domain.Ciphertext{KeyID: id, Data: data})
					if err != nil {
						t.Fatalf("Decrypt(key id %q): %v", id, err)
					}
					if got.Reveal() != v.Plaintext {
						t.Errorf("Decrypt(key id %q) = %q, want %q", id, got.Reveal(), v.Plaintext)
					}
				}
				if id, err := ring.KeyOf(data); err != nil || id != key.ID() {
					t.Errorf("KeyOf = %s, %v; want %s", id, err, key.ID())
				}
			})
		}
		t.Run(set.JWTSecret+"/json payload", func(t *testing.T) {
			t.Parallel()
			var got, want map[string]any
			if err := json.Unmarshal(set.JSONPayload.Value, &want); err != nil {
				t.Fatal(err)
			}
			msg, err := ring.Open(domain.Ciphertext{Data: []byte(set.JSONPayload.Token)})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if err := json.Unmarshal(msg, &got); err != nil {
				t.Fatalf("the payload is not JSON: %v", err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("Open = %s, want %s", gotJSON, wantJSON)
			}
		})
	}
}

// TestPythonGeneratedKeyVectors: a key made like Fernet.generate_key() and
// configured as text reads Python's tokens through ParseKey.
func TestPythonGeneratedKeyVectors(t *testing.T) {
	t.Parallel()
	all := loadVectors(t)
	key := mustParseKey(t, all.Generated.FernetKey)
	// Computed in Python: sha256(b"tokenstore/fernet-key-id/v1\x00" + urlsafe_b64decode(key)).digest()[:8].hex()
	if want := domain.KeyID("05c1b439201936aa"); key.ID() != want {
		t.Errorf("ID() = %s, want %s", key.ID(), want)
	}
	if key.Encode() != all.Generated.FernetKey {
		t.Errorf("Encode() does not reproduce Python's key text")
	}
	ring := mustKeyring(t, key)
	for _, v := range all.Generated.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			got, err := ring.Decrypt(domain.Ciphertext{KeyID: key.ID(), Data: []byte(v.Token)})
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if got.Reveal() != v.Plaintext {
				t.Errorf("Decrypt = %q, want %q", got.Reveal(), v.Plaintext)
			}
		})
	}
}

func TestUnwrapLegacy(t *testing.T) {
	t.Parallel()
	r := mustKeyring(t, mustGenerateKey(t))
	tok := string(mustEncrypt(t, r, "x").Data)
	tests := []struct {
		name, in, want string
	}{
		{"plain token unchanged", tok, tok},
		{"wrapped token unwrapped", b64(tok), tok},
		{"wrapped with trailing newline", b64(tok) + "\n", tok},
		{"base64 of something else unchanged", b64("hello"), b64("hello")},
		{"broken wrapping unchanged", b64(tok)[:20] + "!!", b64(tok)[:20] + "!!"},
		{"plaintext unchanged", "gho_abc", "gho_abc"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(fernet.UnwrapLegacy([]byte(tt.in))); got != tt.want {
				t.Errorf("UnwrapLegacy(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
