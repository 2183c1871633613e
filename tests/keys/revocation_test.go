package keys_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// revoker is a provider that accepts every revocation, recording the
// tokens it was given as "provider access refresh".
type revoker struct {
	mu      sync.Mutex
	revoked []string
}

var _ ports.TokenRevoker = (*revoker)(nil)

func (r *revoker) Revoke(_ context.Context, p domain.Provider, req ports.RevocationRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked = append(r.revoked, fmt.Sprintf("%s %s %s", p, req.AccessToken.Reveal(), req.RefreshToken.Reveal()))
	return nil
}

func (r *revoker) RevokesOnDelete(domain.Provider) bool { return true }
func (r *revoker) RevokesGrant(domain.Provider) bool    { return false }

// TestRotationReencryptsTokensKeptForRevocation: tokens deleted while
// their upstream revocation is still pending (not attempted yet here, as
// while the provider is unreachable) stay sealed by the old key in their
// event: `keys list` counts them and `keys retire` refuses the key. `keys
// rotate` re-encrypts them too, `keys retire` then removes the old key,
// and a delivery worker holding only the new key opens them and revokes
// them as they were stored.
func TestRotationReencryptsTokensKeptForRevocation(t *testing.T) {
	t.Parallel()
	const users = 8
	f := setup(t)
	f.seed(t, users) // offline tokens of users 0 and 4
	ctx := context.Background()
	deleted := []int{1, 2, 3} // 3 has no refresh token
	for _, i := range deleted {
		if err := f.repo.DeleteAuthTokensRevoking(ctx, userID(i), domain.ProviderGitLab); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.counts(t); got[f.oldKey.ID()] != expectedValues(users) {
		t.Fatalf("values under the old key after the deletes: %v, want %d (the kept tokens counted)", got, expectedValues(users))
	}
	// The old instance seals with the old key: stopped, the key can be
	// retired once no value needs it.
	if err := f.old.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(f.newKey.Encode()+"\n"+f.oldKey.Encode()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOKENSTORE_DATABASE_URL": f.dsn, "TOKENSTORE_KEY_FILE": keyFile, "TOKENSTORE_LOG_FORMAT": "json"}

	out, err := runCLI(t, env, "keys", "list")
	if want := fmt.Sprintf("%s   older      %d", f.oldKey.ID(), expectedValues(users)); err != nil || !strings.Contains(out, want) {
		t.Fatalf("keys list = %v, lacking %q:\n%s", err, want, out)
	}
	out, err = runCLI(t, env, "keys", "retire", string(f.oldKey.ID()))
	if want := fmt.Sprintf("%d stored values are still sealed by key %s", expectedValues(users), f.oldKey.ID()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("retire with revocations pending under the old key = %v, want refused\n%s", err, out)
	}

	out, err = runCLI(t, env, "keys", "rotate", "--batch-size", "2")
	if err != nil || !strings.Contains(out, fmt.Sprintf("rotated %d values", expectedValues(users))) {
		t.Fatalf("keys rotate = %v\n%s", err, out)
	}
	var kept, keptNew int
	var batchRows int64
	if err := f.pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE key_id = $1),
		       (SELECT coalesce(sum(count), 0) FROM audit_events WHERE action = 'reencrypt_batch')
		FROM events WHERE key_id IS NOT NULL`, string(f.newKey.ID())).Scan(&kept, &keptNew, &batchRows); err != nil {
		t.Fatal(err)
	}
	// Rows: the 5 auth_tokens rows left, 2 offline tokens, 3 events.
	if kept != len(deleted) || keptNew != len(deleted) || batchRows != 10 {
		t.Fatalf("after rotate: %d events keep tokens, %d under the new key; reencrypt_batch events count %d rows; want %d, %d, 10",
			kept, keptNew, batchRows, len(deleted), len(deleted))
	}

	out, err = runCLI(t, env, "keys", "retire", string(f.oldKey.ID()))
	if err != nil || !strings.Contains(out, "removed key "+string(f.oldKey.ID())) {
		t.Fatalf("retire after rotate = %v\n%s", err, out)
	}

	// A worker whose keyring no longer has the old key revokes them.
	ring, err := fernet.NewKeyring(f.newKey)
	if err != nil {
		t.Fatal(err)
	}
	svc := app.NewTokenService(app.Config{}, nil, ring, f.repo, nil, nil)
	rev := &revoker{}
	worker := app.NewDeliveryWorker(app.DeliveryConfig{Owner: "keys-test"}, svc, f.repo, nil, rev, nil)
	if n, err := worker.RunOnce(ctx); err != nil || n != len(deleted) {
		t.Fatalf("RunOnce = %d, %v; want %d revocations attempted", n, err, len(deleted))
	}
	slices.Sort(rev.revoked)
	want := []string{"gitlab access-1-seed refresh-1-seed", "gitlab access-2-seed refresh-2-seed", "gitlab access-3-seed "}
	if !slices.Equal(rev.revoked, want) {
		t.Fatalf("revoked %q, want %q", rev.revoked, want)
	}
	var succeeded, left int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind = 'revocation.succeeded'), count(key_id) FROM events`).
		Scan(&succeeded, &left); err != nil {
		t.Fatal(err)
	}
	if succeeded != len(deleted) || left != 0 {
		t.Fatalf("after the worker: %d revocation.succeeded events, %d events still keeping tokens; want %d and 0", succeeded, left, len(deleted))
	}
}
