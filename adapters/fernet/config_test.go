package fernet_test

import (
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
)

// TestParseKeysJSONIsStrict: a key file's JSON means one thing or is
// refused. encoding/json took the last of two "key" members, matched "KEY"
// to key and turned invalid UTF-8 into U+FFFD; each is refused now, and no
// error quotes a key.
func TestParseKeysJSONIsStrict(t *testing.T) {
	t.Parallel()
	a, b := mustGenerate(t), mustGenerate(t)
	for _, tt := range []struct{ name, text, want string }{
		{"duplicate key member", `[{"key":"` + a + `","key":"` + b + `"}]`, "a member name appears twice"},
		{"duplicate keys member", `{"keys":[{"key":"` + a + `"}],"keys":[{"key":"` + b + `"}]}`, "a member name appears twice"},
		{"upper-case member", `[{"KEY":"` + a + `"}]`, "unknown member"},
		{"capitalised member", `[{"key":"` + a + `","Note":"x"}]`, "unknown member"},
		{"unknown member", `[{"key":"` + a + `","colour":"red"}]`, "unknown member"},
		{"invalid UTF-8", "[{\"key\":\"" + a + "\",\"note\":\"caf\xe9\"}]", "invalid UTF-8"},
		{"lone surrogate", `[{"key":"` + a + `","note":"x\ud800"}]`, "lone surrogate"},
		{"wrong type", `[{"key":"` + a + `","note":1}]`, "wrong type"},
		{"truncated", `[{"key":"` + a + `"}`, "syntax error at byte"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, err := fernet.ParseKeys(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKeys = %v, %v; want an error saying %q", keys, err, tt.want)
			}
			if strings.Contains(err.Error(), a) || strings.Contains(err.Error(), b) {
				t.Errorf("error %q quotes a key", err)
			}
		})
	}
	keys, err := fernet.ParseKeys(`[{"key":"` + a + `","created_at":"2026-11-01","note":"new"},{"key":"` + b + `"}]`)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParseKeys(valid JSON) = %v, %v", keys, err)
	}
}

func mustGenerate(t *testing.T) string {
	t.Helper()
	k, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Encode()
}
