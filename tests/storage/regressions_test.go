package storage_test

import (
	"context"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// A rotation reads a user's offline token; the user deletes it and stores a
// new one (a fresh insert, version 1 again); the rotation's write must not
// replace the new token with the re-sealed old one.
func TestRekeyOfflineTokenDoesNotOverwriteAReinsertedRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := postgres.New(testdb.New(t), postgres.Options{})
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "u", KeyID: "old", Token: []byte("T1-under-old")}); err != nil {
		t.Fatal(err)
	}
	rows, err := repo.OfflineTokensByKey(ctx, "old", "", 10)
	if err != nil || len(rows) != 1 {
		t.Fatal(rows, err)
	}
	if err := repo.DeleteOfflineToken(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "u", KeyID: "new", Token: []byte("T2-under-new")}); err != nil {
		t.Fatal(err)
	}
	row := rows[0]
	row.KeyID, row.Token = "new", []byte("T1-resealed")
	done, err := repo.StoreReencryptedOfflineTokens(ctx, []domain.SealedOfflineToken{row})
	if err != nil {
		t.Fatal(err)
	}
	got, err := repo.GetOfflineToken(ctx, "u")
	if err != nil {
		t.Fatal(err)
	}
	if done[0] || string(got.Token) != "T2-under-new" {
		t.Errorf("rekey done=%v, stored %q: the rotation overwrote the new offline token", done[0], got.Token)
	}
}

// During a rolling deploy the schema moves ahead of old instances; they must
// stay ready, or the whole fleet leaves the load balancer at once.
func TestReadinessWithANewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	h := postgres.NewHealth(pool)
	if err := h.Check(ctx); err != nil {
		t.Fatalf("before: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)`); err != nil {
		t.Fatal(err)
	}
	if err := h.Check(ctx); err != nil {
		t.Errorf("schema ahead of this build: not ready: %v", err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id >= 3`); err != nil {
		t.Fatal(err)
	}
	if err := h.Check(ctx); err == nil {
		t.Error("schema behind this build: still ready")
	}
}

// A lease that lapsed (its holder crashed mid-refresh) on a row nobody
// reads must not block key rotation forever; the row stays marked as
// interrupted for the next read.
func TestRotationRekeysARowWithALapsedLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	repo := postgres.New(pool, postgres.Options{})
	oldKey, _ := fernet.GenerateKey()
	newKey, _ := fernet.GenerateKey()
	oldRing, _ := fernet.NewKeyring(oldKey)
	svc := app.NewTokenService(app.Config{Providers: []domain.Provider{"gitlab"}}, nil, oldRing, repo, app.NoRefresher{}, nil)
	if _, err := svc.PutAuthTokens(ctx, domain.AuthTokens{User: "dormant", Provider: "gitlab",
		AccessToken: domain.NewSecret("a"), RefreshToken: domain.NewSecret("r")}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE auth_tokens SET refresh_lease_owner = 'crashed/1', refresh_lease_until = now() - interval '1 day'`); err != nil {
		t.Fatal(err)
	}
	ring, _ := fernet.NewKeyring(newKey, oldKey)
	rep, err := app.NewReencryption(nil, ring, repo, nil).Run(ctx, app.ReencryptOptions{Passes: 1})
	if err != nil || rep.Reencrypted != 2 || len(rep.Failed) != 0 {
		t.Fatalf("rotated %d, failed %v, err %v; want both values rotated", rep.Reencrypted, rep.Failed, err)
	}
	got, err := repo.GetAuthTokens(ctx, "dormant", "gitlab")
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != newKey.ID() || got.Refresh.LeaseOwner != "crashed/1" {
		t.Errorf("after rotation: key %s, lease owner %q; want the new key and the lapsed lease kept", got.KeyID, got.Refresh.LeaseOwner)
	}
}
