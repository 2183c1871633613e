package app

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

func TestSealAuthTokensRoundTrip(t *testing.T) {
	t.Parallel()
	ring := newFakeKeyring("k2", "k1")
	expiry := domain.At(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	tests := []struct {
		name    string
		refresh string
	}{
		{"with refresh token", "refresh-secret"},
		{"without refresh token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := domain.AuthTokens{
				User: "u1", Provider: "gitlab",
				AccessToken: domain.NewSecret("access-secret"), RefreshToken: domain.NewSecret(tt.refresh),
				AccessExpiry: expiry, RefreshExpiry: domain.Never(),
			}
			sealed, err := sealAuthTokens(ring, EnvelopeBinary, in)
			if err != nil {
				t.Fatal(err)
			}
			if sealed.KeyID != "k2" || sealed.User != "u1" || sealed.Provider != "gitlab" || !sealed.AccessExpiry.Equal(expiry) {
				t.Errorf("sealed row %+v: want key k2, the row's identity and expiries", sealed)
			}
			if (sealed.RefreshToken != nil) != (tt.refresh != "") {
				t.Errorf("RefreshToken stored = %v, want %v", sealed.RefreshToken != nil, tt.refresh != "")
			}
			out, _, err := unsealAuthTokens(ring, EnvelopeBinary, sealed)
			if err != nil {
				t.Fatal(err)
			}
			if out.AccessToken.Reveal() != "access-secret" || out.RefreshToken.Reveal() != tt.refresh ||
				out.User != in.User || out.Provider != in.Provider || !out.AccessExpiry.Equal(expiry) || !out.RefreshExpiry.IsNever() {
				t.Errorf("unsealed %+v, want %+v", out, in)
			}
		})
	}
}

func TestUnsealAuthTokensRefusesMovedCiphertexts(t *testing.T) {
	t.Parallel()
	ring := newFakeKeyring("k1")
	seal := func(user domain.UserID) domain.SealedAuthTokens {
		s, err := sealAuthTokens(ring, EnvelopeBinary, domain.AuthTokens{User: user, Provider: "github",
			AccessToken: domain.NewSecret("a-" + string(user)), RefreshToken: domain.NewSecret("r-" + string(user))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice, bob := seal("alice"), seal("bob")
	swapped := alice
	swapped.AccessToken, swapped.RefreshToken = alice.RefreshToken, alice.AccessToken
	stolen := alice
	stolen.AccessToken = bob.AccessToken
	for name, row := range map[string]domain.SealedAuthTokens{"fields swapped": swapped, "another user's token": stolen} {
		_, _, err := unsealAuthTokens(ring, EnvelopeBinary, row)
		if !errors.Is(err, domain.ErrDecrypt) || !errors.Is(err, ErrMisplaced) {
			t.Errorf("%s: err = %v, want ErrDecrypt and ErrMisplaced", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "a-bob") || strings.Contains(err.Error(), "r-alice")) {
			t.Errorf("%s: the error quotes token material: %v", name, err)
		}
	}
}

// switchingKeyring changes its primary after every encryption, as a
// keyring reloaded between two calls would.
type switchingKeyring struct{ *fakeKeyring }

func (s switchingKeyring) Seal(msg []byte) (domain.Ciphertext, error) {
	c, err := s.fakeKeyring.Seal(msg)
	s.keys[0], s.keys[1] = s.keys[1], s.keys[0]
	return c, err
}

func TestSealAuthTokensRefusesTwoKeysInOneRow(t *testing.T) {
	t.Parallel()
	ring := switchingKeyring{newFakeKeyring("k1", "k2")}
	_, err := sealAuthTokens(ring, EnvelopeBinary, domain.AuthTokens{User: "u", Provider: "github",
		AccessToken: domain.NewSecret("a"), RefreshToken: domain.NewSecret("r")})
	if err == nil || !strings.Contains(err.Error(), "primary key changed") {
		t.Fatalf("err = %v, want the primary key change reported", err)
	}
}

func TestSealOfflineToken(t *testing.T) {
	t.Parallel()
	ring := newFakeKeyring("k1")
	sealed, err := sealOfflineToken(ring, EnvelopeBinary, domain.OfflineToken{User: "u", Token: domain.NewSecret("offline")})
	if err != nil || sealed.User != "u" || sealed.KeyID != "k1" {
		t.Fatalf("sealOfflineToken = %+v, %v", sealed, err)
	}
	got, err := Unseal(ring, OfflineTokenPlace("u"), domain.Ciphertext{KeyID: sealed.KeyID, Data: sealed.Token})
	if err != nil || got.Reveal() != "offline" {
		t.Fatalf("Unseal = %v, want the token", err)
	}
	if _, err := Unseal(ring, OfflineTokenPlace("v"), domain.Ciphertext{KeyID: sealed.KeyID, Data: sealed.Token}); !errors.Is(err, ErrMisplaced) {
		t.Errorf("another user's place: err = %v, want ErrMisplaced", err)
	}
}
