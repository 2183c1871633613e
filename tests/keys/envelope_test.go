package keys_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
)

// storedValue is one sealed value as the tables hold it, with its place.
type storedValue struct {
	place app.Place
	keyID domain.KeyID
	data  []byte
}

// storedValues reads every sealed value from the tables (kept tokens of
// events included), with the place each must open at.
func storedValues(t *testing.T, c *servicetest.Cluster) []storedValue {
	t.Helper()
	rows, err := c.DB.Query(context.Background(), `
		SELECT 'auth_tokens', user_id, provider, key_id, access_token, refresh_token FROM auth_tokens
		UNION ALL SELECT 'offline_tokens', user_id, '', key_id, token, NULL FROM offline_tokens
		UNION ALL SELECT 'events', user_id, provider, key_id, access_token, refresh_token FROM events WHERE access_token IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []storedValue
	for rows.Next() {
		var table, user, provider, keyID string
		var access, refresh []byte
		if err := rows.Scan(&table, &user, &provider, &keyID, &access, &refresh); err != nil {
			t.Fatal(err)
		}
		u, p, k := domain.UserID(user), domain.Provider(provider), domain.KeyID(keyID)
		if table == "offline_tokens" {
			out = append(out, storedValue{app.OfflineTokenPlace(u), k, access})
			continue
		}
		out = append(out, storedValue{app.AccessTokenPlace(u, p), k, access})
		if refresh != nil {
			out = append(out, storedValue{app.RefreshTokenPlace(u, p), k, refresh})
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// envelopes counts the stored values by the first byte of their sealed
// plaintext ('{' for the JSON envelope, 0x02 for the binary one), and
// checks that each opens at its place.
func envelopes(t *testing.T, c *servicetest.Cluster, ring *fernet.Keyring) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, v := range storedValues(t, c) {
		ct := domain.Ciphertext{KeyID: v.keyID, Data: v.data}
		if _, err := app.Unseal(ring, v.place, ct); err != nil {
			t.Fatalf("%s: %v", v.place, err)
		}
		msg, err := ring.Open(ct)
		if err != nil {
			t.Fatal(err)
		}
		switch msg[0] {
		case '{':
			out["json"]++
		case 0x02:
			out["binary"]++
		default:
			out["other"]++
		}
		clear(msg)
	}
	return out
}

func versions(t *testing.T, c *servicetest.Cluster) map[string]int64 {
	t.Helper()
	rows, err := c.DB.Query(context.Background(), `SELECT user_id, version FROM auth_tokens`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var u string
		var v int64
		if err := rows.Scan(&u, &v); err != nil {
			t.Fatal(err)
		}
		out[u] = v
	}
	return out
}

// TestRotationRewritesJSONEnvelopes: values sealed in the JSON envelope
// (by an instance with envelope json, which writes what releases before
// the binary envelope wrote) under the primary key are left alone by a
// plain `keys rotate`; `keys rotate --envelopes` rewrites them, and only
// them, in the binary envelope (tokens kept for revocation too), every
// value still opening at its place and instances of either setting still
// reading every token; a second run has nothing to do; and with envelope
// json it turns them all back, the way to a release before the binary
// envelope.
func TestRotationRewritesJSONEnvelopes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := servicetest.NewKey(t)
	withEnvelope := func(f app.EnvelopeFormat) func(*cli.Config) {
		return func(cfg *cli.Config) { cfg.App.Envelope, cfg.Delivery.Poll = f, time.Hour }
	}
	legacy := servicetest.Start(t, servicetest.Options{Keys: []fernet.Key{key}, Configure: withEnvelope(app.EnvelopeJSON)})
	current := servicetest.Start(t, servicetest.Options{DSN: legacy.DSN, Keys: []fernet.Key{key}, Configure: withEnvelope(app.EnvelopeBinary)})
	const jsonUsers, binaryUsers = 30, 12
	put := func(svc *app.TokenService, prefix string, n int) {
		for i := range n {
			u := domain.UserID(fmt.Sprintf("%s-%02d", prefix, i))
			tokens := tokens(i, "seed")
			tokens.User = u
			if _, err := svc.PutAuthTokens(ctx, tokens); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PutOfflineToken(ctx, domain.OfflineToken{User: u, Token: domain.NewSecret("offline-" + string(u))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(legacy.Instances[0].Service, "json", jsonUsers)
	put(current.Instances[0].Service, "binary", binaryUsers)
	// Two JSON rows deleted with their revocation pending: their tokens
	// stay in the events, in the JSON envelope.
	repo := postgres.New(legacy.DB, postgres.Options{})
	for _, u := range []domain.UserID{"json-01", "json-03"} {
		if err := repo.DeleteAuthTokensRevoking(ctx, u, domain.ProviderGitLab); err != nil {
			t.Fatal(err)
		}
	}
	before := envelopes(t, legacy, legacy.Keyring)
	if before["json"] == 0 || before["binary"] == 0 || before["other"] != 0 {
		t.Fatalf("stored envelopes before: %v, want JSON and binary ones", before)
	}
	all := before["json"] + before["binary"]
	var kept int
	if err := legacy.DB.QueryRow(ctx, `SELECT count(*) FROM events WHERE access_token IS NOT NULL`).Scan(&kept); err != nil || kept != 2 {
		t.Fatalf("events keeping tokens: %d, %v; want 2", kept, err)
	}

	env := map[string]string{"TOKENSTORE_DATABASE_URL": legacy.DSN, "TOKENSTORE_KEYS": key.Encode(), "TOKENSTORE_LOG_FORMAT": "json"}
	out, err := runCLI(t, env, "keys", "rotate")
	if err != nil || !strings.Contains(out, "rotated 0 values") {
		t.Fatalf("keys rotate without --envelopes: %v\n%s", err, out)
	}
	if got := envelopes(t, legacy, legacy.Keyring); got["json"] != before["json"] {
		t.Fatalf("keys rotate without --envelopes changed envelopes: %v, was %v", got, before)
	}

	was := versions(t, legacy)
	out, err = runCLI(t, env, "keys", "rotate", "--envelopes", "--batch-size", "7")
	if err != nil {
		t.Fatalf("keys rotate --envelopes: %v\n%s", err, out)
	}
	for _, want := range []string{
		fmt.Sprintf("rotated %d values", before["json"]),
		fmt.Sprintf("envelopes: %d values rewritten from another envelope into the binary one; %d values under the primary key already in it",
			before["json"], before["binary"]),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("keys rotate --envelopes output lacks %q:\n%s", want, out)
		}
	}
	if got := envelopes(t, legacy, legacy.Keyring); got["binary"] != all {
		t.Errorf("after keys rotate --envelopes: %v, want all %d values binary", got, all)
	}
	for u, v := range versions(t, legacy) {
		if rewritten := strings.HasPrefix(u, "json-"); (v != was[u]) != rewritten {
			t.Errorf("row of %s: version %d, was %d: want a new version for the JSON rows only", u, v, was[u])
		}
	}
	// Both instances read every token, whatever they write.
	for _, c := range []*servicetest.Cluster{legacy, current} {
		svc := c.Instances[0].Service
		for u, access := range map[domain.UserID]string{"json-00": "access-0-seed", "json-02": "access-2-seed", "binary-05": "access-5-seed"} {
			got, err := svc.GetOfflineToken(ctx, u)
			if err != nil || got.Token.Reveal() != "offline-"+string(u) {
				t.Errorf("GetOfflineToken(%s): %v", u, err)
			}
			tok, err := svc.GetAccessToken(ctx, u, domain.ProviderGitLab)
			if err != nil || tok.Token.Reveal() != access {
				t.Errorf("GetAccessToken(%s): %v", u, err)
			}
		}
	}

	out, err = runCLI(t, env, "keys", "rotate", "--envelopes")
	if err != nil || !strings.Contains(out, "rotated 0 values") ||
		!strings.Contains(out, fmt.Sprintf("%d values under the primary key already in it", all)) {
		t.Errorf("second keys rotate --envelopes: %v\n%s", err, out)
	}

	env["TOKENSTORE_ENVELOPE"] = "json"
	out, err = runCLI(t, env, "keys", "rotate", "--envelopes")
	if err != nil || !strings.Contains(out, fmt.Sprintf("envelopes: %d values rewritten from another envelope into the json one", all)) {
		t.Errorf("keys rotate --envelopes with envelope json: %v\n%s", err, out)
	}
	if got := envelopes(t, legacy, legacy.Keyring); got["json"] != all {
		t.Errorf("after rotating into json: %v, want all %d values JSON", got, all)
	}
}
