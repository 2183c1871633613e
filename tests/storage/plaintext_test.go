package storage_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// TestNoPlaintextInTables stores tokens the way the service does (sealed by
// the Fernet keyring) and then reads every column of every row as raw bytes,
// searching for the plaintext in the forms it could leak in.
func TestNoPlaintextInTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	repo := postgres.New(pool, postgres.Options{})
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := fernet.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}

	access := "glpat-ACCESS-plaintext-4f1c9a"
	refresh := "glrt-REFRESH-plaintext-77d2e0"
	offline := "eyJhbGciOi.OFFLINE-plaintext.c2lnbmF0dXJl"
	seal := func(place app.Place, s string) domain.Ciphertext {
		c, err := app.Seal(ring, place, domain.NewSecret(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := seal(app.AccessTokenPlace("raw-user", domain.ProviderGitLab), access)
	r := seal(app.RefreshTokenPlace("raw-user", domain.ProviderGitLab), refresh)
	o := seal(app.OfflineTokenPlace("raw-user"), offline)
	if _, err := repo.PutAuthTokens(ctx, domain.SealedAuthTokens{
		User: "raw-user", Provider: domain.ProviderGitLab, KeyID: a.KeyID,
		AccessToken: a.Data, RefreshToken: r.Data,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "raw-user", KeyID: o.KeyID, Token: o.Data}); err != nil {
		t.Fatal(err)
	}

	needles := map[string][]byte{}
	for _, s := range []string{access, refresh, offline} {
		needles[s] = []byte(s)
		needles[s+" (hex)"] = []byte(hex.EncodeToString([]byte(s)))
		needles[s+" (base64)"] = []byte(base64.StdEncoding.EncodeToString([]byte(s)))
		needles[s+" (base64url)"] = []byte(base64.RawURLEncoding.EncodeToString([]byte(s)))
	}
	rowsSeen := 0
	for _, table := range []string{"auth_tokens", "offline_tokens"} {
		// Every column as its text rendering plus every bytea column raw:
		// row_to_json renders bytea as \x hex.
		rows, err := pool.Query(ctx, `SELECT row_to_json(t)::text FROM `+table+` t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var rendered string
			if err := rows.Scan(&rendered); err != nil {
				t.Fatal(err)
			}
			rowsSeen++
			raw := []byte(rendered)
			if decoded, err := hexColumns(rendered); err == nil {
				raw = append(raw, decoded...)
			}
			for name, needle := range needles {
				if bytes.Contains(raw, needle) {
					t.Errorf("table %s holds plaintext %s", table, name)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if rowsSeen != 2 {
		t.Fatalf("searched %d rows, want 2", rowsSeen)
	}

	// And the stored values are the real thing: they decrypt.
	got, err := repo.GetAuthTokens(ctx, "raw-user", domain.ProviderGitLab)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := app.Unseal(ring, app.AccessTokenPlace("raw-user", domain.ProviderGitLab), domain.Ciphertext{KeyID: got.KeyID, Data: got.AccessToken})
	if err != nil || plain.Reveal() != access {
		t.Fatalf("stored access token does not decrypt to the original (%v)", err)
	}
}

// hexColumns decodes every "\\x..." bytea rendering in a row_to_json text.
func hexColumns(rendered string) ([]byte, error) {
	var out []byte
	for i := 0; i+3 < len(rendered); i++ {
		if rendered[i] != '\\' || rendered[i+1] != '\\' || rendered[i+2] != 'x' {
			continue
		}
		j := i + 3
		for j < len(rendered) && isHex(rendered[j]) {
			j++
		}
		b, err := hex.DecodeString(rendered[i+3 : j-(j-i-3)%2])
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		i = j
	}
	return out, nil
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
