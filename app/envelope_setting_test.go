package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

// TestEnvelopeSettingChoosesTheFormatWritten: Config.Envelope decides the
// envelope the service seals new values in (binary by default; JSON for
// releases before the binary envelope to read), and the service reads
// both whatever it writes.
func TestEnvelopeSettingChoosesTheFormatWritten(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format app.EnvelopeFormat
		first  byte
	}{{"", 0x02}, {app.EnvelopeBinary, 0x02}, {app.EnvelopeJSON, '{'}} {
		t.Run(string(tc.format), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ring, repo := newKeyring(t), memrepo.New()
			other := app.EnvelopeJSON
			if tc.format == app.EnvelopeJSON {
				other = app.EnvelopeBinary
			}
			// Values an instance with the other setting wrote before.
			before := app.NewTokenService(app.Config{Envelope: other, Providers: declared}, nil, ring, repo, app.NoRefresher{}, nil)
			svc := app.NewTokenService(app.Config{Envelope: tc.format, Providers: declared}, nil, ring, repo, app.NoRefresher{}, nil)
			if _, err := before.PutAuthTokens(ctx, domain.AuthTokens{User: "bob", Provider: github, AccessToken: domain.NewSecret("a-bob"),
				AccessExpiry: domain.At(time.Now().Add(time.Hour))}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PutAuthTokens(ctx, domain.AuthTokens{User: "alice", Provider: github,
				AccessToken: domain.NewSecret("a-alice"), RefreshToken: domain.NewSecret("r-alice"),
				AccessExpiry: domain.At(time.Now().Add(time.Hour))}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PutOfflineToken(ctx, domain.OfflineToken{User: "alice", Token: domain.NewSecret("o-alice")}); err != nil {
				t.Fatal(err)
			}
			row, err := repo.GetAuthTokens(ctx, "alice", github)
			if err != nil {
				t.Fatal(err)
			}
			offline, err := repo.GetOfflineToken(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string][]byte{"access": row.AccessToken, "refresh": row.RefreshToken, "offline": offline.Token} {
				msg, err := ring.Open(domain.Ciphertext{KeyID: row.KeyID, Data: data})
				if err != nil || len(msg) == 0 || msg[0] != tc.first {
					t.Errorf("%s token: sealed plaintext starts %q (%v), want %q", name, msg[:min(1, len(msg))], err, tc.first)
				}
			}
			for user, want := range map[domain.UserID]string{"alice": "a-alice", "bob": "a-bob"} {
				if got, err := svc.GetAccessToken(ctx, user, github); err != nil || got.Token.Reveal() != want {
					t.Errorf("GetAccessToken(%s): %v", user, err)
				}
			}
			if got, err := svc.GetOfflineToken(ctx, "alice"); err != nil || got.Token.Reveal() != "o-alice" {
				t.Errorf("GetOfflineToken: %v", err)
			}
		})
	}
}
