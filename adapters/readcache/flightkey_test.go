package readcache

import "testing"

// TestFlightKeyIsInjective: two different keys never share a read, even
// when their user id and provider concatenate to the same bytes (a shared
// read of another row would answer another user's token), and an offline
// token's key never names an auth tokens read.
func TestFlightKeyIsInjective(t *testing.T) {
	t.Parallel()
	keys := []key{
		{"a", "b/c"}, {"a/b", "c"}, {"a/b/c", ""}, {"a\x00b", "c"}, {"a", "b\x00c"},
		{"1:a", "b"}, {"1", ":ab"}, {"u1", ""}, {"u1", "github"}, {"u", "1github"},
	}
	seen := map[string]key{}
	for _, k := range keys {
		name := k.flightKey()
		if other, ok := seen[name]; ok {
			t.Fatalf("%v and %v share the read %q", other, k, name)
		}
		seen[name] = k
	}
}
