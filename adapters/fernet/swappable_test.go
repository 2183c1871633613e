package fernet_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/domain"
)

// TestSwappableKeyring: after Swap every call uses the new ring (its
// primary seals, its keys open), Swap returns the old one, and readers
// swapping concurrently always get a ciphertext whose key id names the key
// that sealed it, never one ring's id over the other's key.
func TestSwappableKeyring(t *testing.T) {
	t.Parallel()
	a, b := mustGenerateKey(t), mustGenerateKey(t)
	first, second := mustKeyring(t, a), mustKeyring(t, b, a)
	s := fernet.NewSwappableKeyring(first)
	if s.PrimaryKeyID() != a.ID() || !slices.Equal(s.Keys(), []domain.KeyID{a.ID()}) {
		t.Fatalf("before Swap: primary %s keys %v", s.PrimaryKeyID(), s.Keys())
	}
	underA, err := s.Seal([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if old := s.Swap(second); old != first {
		t.Errorf("Swap returned %v, want the first ring", old)
	}
	if s.PrimaryKeyID() != b.ID() || !slices.Equal(s.Keys(), []domain.KeyID{b.ID(), a.ID()}) || s.Current() != second {
		t.Fatalf("after Swap: primary %s keys %v", s.PrimaryKeyID(), s.Keys())
	}
	if got, err := s.Open(underA); err != nil || string(got) != "x" {
		t.Errorf("a value sealed before the swap: %q, %v", got, err)
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			s.Swap([]*fernet.Keyring{first, second}[i%2])
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 100 {
				c, err := s.Seal([]byte("y"))
				if err != nil {
					t.Error(err)
					return
				}
				// Open with the ring holding only the key the id names.
				only := map[domain.KeyID]*fernet.Keyring{a.ID(): first, b.ID(): mustKeyring(t, b)}[c.KeyID]
				if v, err := only.Open(c); err != nil || string(v) != "y" {
					t.Errorf("sealed under %s while swapping: %q, %v", c.KeyID, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestSwappableKeyringNeverPrintsMaterial(t *testing.T) {
	t.Parallel()
	a := mustGenerateKey(t)
	s := fernet.NewSwappableKeyring(mustKeyring(t, a))
	var log bytes.Buffer
	slog.New(slog.NewJSONHandler(&log, nil)).Info("started", "keyring", s)
	want := fmt.Sprintf("fernet-keyring(primary=%s, keys=1)", a.ID())
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), log.String()} {
		if strings.Contains(out, a.Encode()) || !strings.Contains(out, want) {
			t.Errorf("%q: want the summary %q and no key material", out, want)
		}
	}
}
