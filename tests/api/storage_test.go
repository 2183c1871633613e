package api_test

// What reaches the database: ciphertext only, one consistent row per
// (user, provider) even under concurrent writers.

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// rowText returns every column of the matching rows as PostgreSQL renders
// them (bytea as \x hex) plus their escape form, for plaintext searches.
func rowText(t *testing.T, inst *instance, table, where string, args ...any) string {
	t.Helper()
	var text string
	err := inst.pool.QueryRow(context.Background(),
		fmt.Sprintf(`SELECT coalesce(string_agg(r::text, E'\n'), '') FROM %s r WHERE %s`, table, where), args...).Scan(&text)
	if err != nil {
		t.Fatal(err)
	}
	if text == "" {
		t.Fatalf("no %s row where %s %v", table, where, args)
	}
	return text
}

func TestTokensAreEncryptedAtRest(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	user := uniq("enc-")
	access, refresh, offline := uniq("gho_access_"), uniq("ghr_refresh_"), uniq("offline_")

	wantStatus(t, inst.do("PUT", tokensPath(user, "github"), callerAll,
		map[string]any{"access_token": access, "refresh_token": refresh, "expires_in": 3600}), http.StatusOK)
	wantStatus(t, inst.do("PUT", offlinePath(user), callerAll, map[string]any{"offline_token": offline}), http.StatusOK)

	ctx := context.Background()
	t.Run("auth_tokens", func(t *testing.T) {
		t.Parallel()
		text := rowText(t, inst, "auth_tokens", "user_id = $1", user)
		for _, s := range []string{access, refresh} {
			notIn(t, "auth_tokens row", text, encodings(s)...)
		}
		var keyID string
		var accessCol, refreshCol []byte
		if err := inst.pool.QueryRow(ctx,
			"SELECT key_id, access_token, refresh_token FROM auth_tokens WHERE user_id = $1 AND provider = 'github'", user).
			Scan(&keyID, &accessCol, &refreshCol); err != nil {
			t.Fatal(err)
		}
		for _, col := range [][]byte{accessCol, refreshCol} {
			notIn(t, "bytea column", string(col), encodings(access)...)
			notIn(t, "bytea column", string(col), encodings(refresh)...)
		}
		if keyID != string(inst.keyring.PrimaryKeyID()) {
			t.Errorf("key_id = %q, want the primary key's id %q", keyID, inst.keyring.PrimaryKeyID())
		}
		if got := inst.decryptColumn(t, app.AccessTokenPlace(domain.UserID(user), "github"), keyID, accessCol); got != access {
			t.Errorf("decrypted access_token = %q, want %q", got, access)
		}
		if got := inst.decryptColumn(t, app.RefreshTokenPlace(domain.UserID(user), "github"), keyID, refreshCol); got != refresh {
			t.Errorf("decrypted refresh_token = %q, want %q", got, refresh)
		}
	})
	t.Run("offline_tokens", func(t *testing.T) {
		t.Parallel()
		text := rowText(t, inst, "offline_tokens", "user_id = $1", user)
		notIn(t, "offline_tokens row", text, encodings(offline)...)
		var keyID string
		var col []byte
		if err := inst.pool.QueryRow(ctx, "SELECT key_id, token FROM offline_tokens WHERE user_id = $1", user).Scan(&keyID, &col); err != nil {
			t.Fatal(err)
		}
		notIn(t, "bytea column", string(col), encodings(offline)...)
		if got := inst.decryptColumn(t, app.OfflineTokenPlace(domain.UserID(user)), keyID, col); got != offline {
			t.Errorf("decrypted offline token = %q, want %q", got, offline)
		}
	})
	t.Run("readable through the API", func(t *testing.T) {
		t.Parallel()
		inst := inst.forT(t)
		r := inst.do("GET", tokensPath(user, "github"), callerAll, nil)
		wantStatus(t, r, http.StatusOK)
		if m := objectKeys(t, r, "user", "provider", "access_token", "access_token_expires_at"); m["access_token"] != access {
			t.Errorf("GET access_token = %v, want %s", m["access_token"], access)
		}
		r = inst.do("GET", offlinePath(user), callerAll, nil)
		wantStatus(t, r, http.StatusOK)
		if m := objectKeys(t, r, "user", "offline_token", "created_at", "updated_at"); m["offline_token"] != offline {
			t.Errorf("GET offline_token = %v, want %s", m["offline_token"], offline)
		}
	})
	t.Run("nowhere else in the database", func(t *testing.T) {
		t.Parallel()
		// Every text-castable column of every user table, in one string.
		var all string
		err := inst.pool.QueryRow(ctx, `
			SELECT coalesce((SELECT string_agg(a::text, E'\n') FROM auth_tokens a), '') || E'\n' ||
			       coalesce((SELECT string_agg(o::text, E'\n') FROM offline_tokens o), '')`).Scan(&all)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{access, refresh, offline} {
			notIn(t, "tables", all, encodings(s)...)
		}
	})
}

// TestConcurrentPutsLeaveOneConsistentRow: many writers of the same user and
// provider end with exactly one row whose access and refresh tokens come
// from the same writer.
func TestConcurrentPutsLeaveOneConsistentRow(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	const writers = 20
	user, provider := "racer", "gitlab"
	access := make([]string, writers)
	refresh := make([]string, writers)
	for i := range writers {
		access[i], refresh[i] = uniq(fmt.Sprintf("at-%02d-", i)), uniq(fmt.Sprintf("rt-%02d-", i))
	}
	results := make([]exchange, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			results[i] = inst.sendAsync(context.Background(), "PUT", tokensPath(user, provider), callerAll, map[string]any{
				"access_token": access[i], "refresh_token": refresh[i],
				"expires_in": 3600 + i, "refresh_token_expires_in": 86400 + 7*i,
			})
		})
	}
	close(start)
	wg.Wait()
	for i, x := range results {
		r := checkExchange(t, x)
		if r.StatusCode != http.StatusOK {
			t.Errorf("writer %d: %d %s", i, r.StatusCode, r.body)
		}
	}

	var n int
	var keyID string
	var refreshCol []byte
	if err := inst.pool.QueryRow(context.Background(), `
		SELECT count(*) OVER (), key_id, refresh_token FROM auth_tokens WHERE user_id = $1 AND provider = $2`,
		user, provider).Scan(&n, &keyID, &refreshCol); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
	r := inst.do("GET", tokensPath(user, provider), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	var got struct {
		AccessToken string `json:"access_token"`
	}
	r.json(t, &got)
	winner := -1
	for i := range writers {
		if access[i] == got.AccessToken {
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("stored access token %q is from no writer", got.AccessToken)
	}
	if rt := inst.decryptColumn(t, app.RefreshTokenPlace(domain.UserID(user), domain.Provider(provider)), keyID, refreshCol); rt != refresh[winner] {
		t.Fatalf("access token is writer %d's, refresh token %q is not (want %q): a torn row", winner, rt, refresh[winner])
	}
	// The expiries are the winner's too.
	r = inst.do("GET", providersPath(user), callerAll, nil)
	wantStatus(t, r, http.StatusOK)
	var list struct {
		Providers []struct {
			HasRefreshToken bool `json:"has_refresh_token"`
		} `json:"providers"`
	}
	r.json(t, &list)
	if len(list.Providers) != 1 || !list.Providers[0].HasRefreshToken {
		t.Errorf("providers = %s", r.body)
	}
	// The expiries are the winner's too: both come from one clock reading,
	// so their difference identifies the writer.
	var diff float64
	if err := inst.pool.QueryRow(context.Background(), `
		SELECT extract(epoch FROM refresh_token_expires_at - access_token_expires_at)
		FROM auth_tokens WHERE user_id = $1`, user).Scan(&diff); err != nil {
		t.Fatal(err)
	}
	if want := float64(86400 - 3600 + 6*winner); diff != want {
		t.Errorf("refresh expiry - access expiry = %vs, want %vs (writer %d's)", diff, want, winner)
	}
	inst.noSecretsInLogs(append(append([]string{}, access...), refresh...)...)
}
