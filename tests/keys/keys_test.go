// Package keys_test runs key rotation against a real PostgreSQL: online
// under a write load, resumable, refusing to overwrite newer content, and
// naming what it cannot re-encrypt; plus the keys CLI.
package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

type fixture struct {
	old    *servicetest.Instance // seals with the old key
	dsn    string
	pool   *pgxpool.Pool
	repo   *postgres.Repository
	oldKey fernet.Key
	newKey fernet.Key
	oldSvc *app.TokenService // writes with the old key as primary
	newSvc *app.TokenService // new key primary, old key older
	newRng *fernet.Keyring
}

// setup starts two instances on one database: "old" writing with the old
// key as primary, "new" with the new key primary and the old one older.
func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{oldKey: servicetest.NewKey(t), newKey: servicetest.NewKey(t)}
	// The instances' delivery workers look once, at start: the suites
	// send the revocations queued later themselves (a worker polling in
	// the background would race them).
	named := func(name string) func(*cli.Config) {
		return func(cfg *cli.Config) { cfg.App.Refresh.Instance, cfg.Delivery.Poll = name, time.Hour }
	}
	old := servicetest.Start(t, servicetest.Options{Keys: []fernet.Key{f.oldKey}, Configure: named("old")})
	cur := servicetest.Start(t, servicetest.Options{DSN: old.DSN, Keys: []fernet.Key{f.newKey, f.oldKey}, Configure: named("new")})
	f.old = old.Instances[0]
	f.dsn, f.pool, f.newRng = old.DSN, old.DB, cur.Keyring
	f.repo = postgres.New(f.pool, postgres.Options{})
	f.oldSvc, f.newSvc = old.Instances[0].Service, cur.Instances[0].Service
	return f
}

func (f *fixture) rotation() *app.Reencryption {
	return app.NewReencryption(nil, f.newRng, f.repo, nil)
}

func userID(i int) domain.UserID { return domain.UserID(fmt.Sprintf("user-%05d", i)) }

func tokens(i int, gen string) domain.AuthTokens {
	t := domain.AuthTokens{
		User: userID(i), Provider: domain.ProviderGitLab,
		AccessToken:  domain.NewSecret(fmt.Sprintf("access-%d-%s", i, gen)),
		AccessExpiry: domain.At(time.Now().Add(24 * time.Hour).Truncate(time.Second)),
	}
	if i%3 != 0 { // some rows have no refresh token
		t.RefreshToken = domain.NewSecret(fmt.Sprintf("refresh-%d-%s", i, gen))
	}
	return t
}

// seed stores n users' tokens (and every 4th user's offline token) under the
// old key, four writers at a time.
func (f *fixture) seed(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if _, err := f.oldSvc.PutAuthTokens(ctx, tokens(i, "seed")); err != nil {
					errs <- err
					return
				}
				if i%4 == 0 {
					if _, err := f.oldSvc.PutOfflineToken(ctx, domain.OfflineToken{User: userID(i), Token: domain.NewSecret(fmt.Sprintf("offline-%d-seed", i))}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func (f *fixture) counts(t *testing.T) map[domain.KeyID]int64 {
	t.Helper()
	usage, err := f.repo.CountValuesByKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[domain.KeyID]int64{}
	for _, u := range usage {
		out[u.KeyID] = u.Values
	}
	return out
}

func expectedValues(n int) int64 {
	var v int64
	for i := range n {
		v++ // access
		if i%3 != 0 {
			v++ // refresh
		}
		if i%4 == 0 {
			v++ // offline
		}
	}
	return v
}

// readRaw decrypts a row's values straight from the table with the new
// keyring, checking each is bound to its place.
func (f *fixture) readRaw(t *testing.T, i int) (access, refresh, keyID string) {
	t.Helper()
	var kid string
	var a, r []byte
	if err := f.pool.QueryRow(context.Background(),
		`SELECT key_id, access_token, refresh_token FROM auth_tokens WHERE user_id = $1 AND provider = 'gitlab'`, string(userID(i))).
		Scan(&kid, &a, &r); err != nil {
		t.Fatal(err)
	}
	u := userID(i)
	as, err := app.Unseal(f.newRng, app.AccessTokenPlace(u, "gitlab"), domain.Ciphertext{KeyID: domain.KeyID(kid), Data: a})
	if err != nil {
		t.Fatalf("user %d access: %v", i, err)
	}
	if r != nil {
		rs, err := app.Unseal(f.newRng, app.RefreshTokenPlace(u, "gitlab"), domain.Ciphertext{KeyID: domain.KeyID(kid), Data: r})
		if err != nil {
			t.Fatalf("user %d refresh: %v", i, err)
		}
		refresh = rs.Reveal()
	}
	return as.Reveal(), refresh, kid
}

// TestRotationUnderWriteLoad rotates while writers keep replacing tokens
// (with the new primary, as instances do once it is rolled out): afterwards
// every value is under the new key and readable, and every row holds the
// last value written to it — rotation never overwrote a newer write.
//
// TOKENSTORE_ROTATION_ROWS sets the scale (default 1500); the README's
// full-scale figure comes from TOKENSTORE_ROTATION_ROWS=100000.
func TestRotationUnderWriteLoad(t *testing.T) {
	t.Parallel()
	rows := 1500
	if v := os.Getenv("TOKENSTORE_ROTATION_ROWS"); v != "" {
		if _, err := fmt.Sscan(v, &rows); err != nil || rows < 10 {
			t.Fatalf("TOKENSTORE_ROTATION_ROWS=%q: want a number of rows >= 10", v)
		}
	}
	writers := 3
	if v := os.Getenv("TOKENSTORE_ROTATION_WRITERS"); v != "" {
		if _, err := fmt.Sscan(v, &writers); err != nil || writers < 0 || writers > 3 {
			t.Fatalf("TOKENSTORE_ROTATION_WRITERS=%q: want 0 to 3", v)
		}
	}
	f := setup(t)
	f.seed(t, rows)
	if got, want := f.counts(t)[f.oldKey.ID()], expectedValues(rows); got != want {
		t.Fatalf("seeded %d values under the old key, want %d", got, want)
	}

	ctx := context.Background()
	var lastGen sync.Map // user index -> generation last written
	var writes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (k*7 + w*331) % rows
				gen := fmt.Sprintf("w%d-%d", w, k)
				// Writers own disjoint users (i % 3 == w) so "last write" is well defined.
				if i%3 != w {
					continue
				}
				if _, err := f.newSvc.PutAuthTokens(ctx, tokens(i, gen)); err != nil {
					t.Errorf("write: %v", err)
					return
				}
				lastGen.Store(i, gen)
				writes.Add(1)
			}
		}()
	}

	var progressCalls atomic.Int64
	report, err := f.rotation().Run(ctx, app.ReencryptOptions{BatchSize: 100, Progress: func(done, total int64) {
		progressCalls.Add(1)
		if done > total {
			t.Errorf("progress %d of %d", done, total)
		}
	}})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if len(report.Failed) != 0 {
		t.Fatalf("failures: %v", report.Failed)
	}
	if writers > 0 && writes.Load() == 0 {
		t.Fatal("no write happened during the rotation; the test proves nothing")
	}
	if progressCalls.Load() < 2 {
		t.Errorf("progress reported %d times", progressCalls.Load())
	}
	counts := f.counts(t)
	if counts[f.oldKey.ID()] != 0 || counts[f.newKey.ID()] != expectedValues(rows) {
		t.Fatalf("after rotation: %v; want every value (%d) under %s", counts, expectedValues(rows), f.newKey.ID())
	}
	for i := range rows {
		gen := "seed"
		if g, ok := lastGen.Load(i); ok {
			gen = g.(string)
		}
		want := tokens(i, gen)
		access, refresh, kid := f.readRaw(t, i)
		if kid != string(f.newKey.ID()) || access != want.AccessToken.Reveal() || refresh != want.RefreshToken.Reveal() {
			t.Fatalf("user %d: key %s, access %q, refresh %q; want key %s and generation %q",
				i, kid, access, refresh, f.newKey.ID(), gen)
		}
	}
	for i := 0; i < rows; i += 4 {
		tok, err := f.newSvc.GetOfflineToken(ctx, userID(i))
		if err != nil || tok.Token.Reveal() != fmt.Sprintf("offline-%d-seed", i) {
			t.Fatalf("offline token %d: %v", i, err)
		}
	}
	t.Logf("rotated %d values in %s with %d concurrent writes", report.Reencrypted, report.Elapsed, writes.Load())
}

func TestRotationIsResumableAndIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed(t, 300)
	ctx, cancel := context.WithCancel(context.Background())
	var once sync.Once
	_, err := f.rotation().Run(ctx, app.ReencryptOptions{BatchSize: 20, Progress: func(done, total int64) {
		if done >= 100 {
			once.Do(cancel) // stop part-way, as a killed process would
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Rotate = %v, want context.Canceled", err)
	}
	if c := f.counts(t); c[f.oldKey.ID()] == 0 || c[f.newKey.ID()] == 0 {
		t.Fatalf("after the interruption %v: want some values under each key", c)
	}
	report, err := f.rotation().Run(context.Background(), app.ReencryptOptions{BatchSize: 20})
	if err != nil || len(report.Failed) != 0 {
		t.Fatalf("resumed Rotate: %v %v", err, report.Failed)
	}
	if c := f.counts(t); c[f.oldKey.ID()] != 0 || c[f.newKey.ID()] != expectedValues(300) {
		t.Fatalf("after resuming: %v", c)
	}
	again, err := f.rotation().Run(context.Background(), app.ReencryptOptions{})
	if err != nil || again.Reencrypted != 0 || len(again.Failed) != 0 {
		t.Fatalf("a second rotation rotated %d (%v, %v), want 0", again.Reencrypted, err, again.Failed)
	}
}

// Rows that cannot be re-encrypted are named; the rest are rotated. A row
// under a refresh lease is not touched (that would fence out the refresh)
// and is reported until the lease is gone.
func TestRotationNamesRowsItCannotReencrypt(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed(t, 20)
	ctx := context.Background()
	// user-00001's access token replaced by user-00002's: misplaced.
	if _, err := f.pool.Exec(ctx, `UPDATE auth_tokens SET access_token = (SELECT access_token FROM auth_tokens WHERE user_id = 'user-00002')
		WHERE user_id = 'user-00001'`); err != nil {
		t.Fatal(err)
	}
	// user-00005 is being refreshed.
	if _, err := f.pool.Exec(ctx, `UPDATE auth_tokens SET refresh_lease_owner = 'other-instance/1',
		refresh_lease_until = now() + interval '1 hour' WHERE user_id = 'user-00005'`); err != nil {
		t.Fatal(err)
	}
	report, err := f.rotation().Run(ctx, app.ReencryptOptions{BatchSize: 7, Passes: 1})
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprint(report.Failed)
	if len(report.Failed) != 2 || !strings.Contains(text, `user "user-00001" provider gitlab`) ||
		!strings.Contains(text, "another row or field") || !strings.Contains(text, "refresh lease") {
		t.Fatalf("failures = %v; want user-00001 (misplaced) and the leased row", report.Failed)
	}
	if strings.Contains(text, "access-") || strings.Contains(text, "refresh-") {
		t.Errorf("failures reveal token material: %s", text)
	}
	// Everything else moved; the two rows stayed.
	var left int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM auth_tokens WHERE key_id = $1`, string(f.oldKey.ID())).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d rows left under the old key (%v), want 2", left, err)
	}
	// Once the lease is gone, a re-run picks the leased row up.
	if _, err := f.pool.Exec(ctx, `UPDATE auth_tokens SET refresh_lease_owner = NULL, refresh_lease_until = NULL WHERE user_id = 'user-00005'`); err != nil {
		t.Fatal(err)
	}
	report, err = f.rotation().Run(ctx, app.ReencryptOptions{})
	if err != nil || len(report.Failed) != 1 {
		t.Fatalf("re-run: %v, failures %v; want only the misplaced row", err, report.Failed)
	}
	if a, _, _ := f.readRaw(t, 5); a != "access-5-seed" {
		t.Errorf("leased row after re-run reads %q", a)
	}
}

func runCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }})
	return out.String() + errOut.String(), err
}

func TestKeysCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.seed(t, 40)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	content := "# primary, made 2026-11-27\n" + f.newKey.Encode() + "\n" + f.oldKey.Encode() + "  # the old one\n"
	if err := os.WriteFile(keyFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOKENSTORE_DATABASE_URL": f.dsn, "TOKENSTORE_KEY_FILE": keyFile, "TOKENSTORE_LOG_FORMAT": "json"}

	out, err := runCLI(t, env, "keys", "list")
	if err != nil {
		t.Fatalf("keys list: %v\n%s", err, out)
	}
	for _, want := range []string{string(f.newKey.ID()) + "   primary    0", fmt.Sprintf("%s   older      %d", f.oldKey.ID(), expectedValues(40))} {
		if !strings.Contains(out, want) {
			t.Errorf("keys list lacks %q:\n%s", want, out)
		}
	}
	for _, k := range []fernet.Key{f.newKey, f.oldKey} {
		if strings.Contains(out, k.Encode()) {
			t.Fatal("keys list printed key material")
		}
	}

	out, err = runCLI(t, env, "keys", "retire", string(f.oldKey.ID()))
	if err == nil || !strings.Contains(err.Error(), "keys rotate") {
		t.Fatalf("retire with values left = %v\n%s", err, out)
	}
	out, err = runCLI(t, env, "keys", "retire", string(f.newKey.ID()))
	if err == nil || !strings.Contains(err.Error(), "primary") {
		t.Fatalf("retire the primary = %v\n%s", err, out)
	}

	// The old instance still seals with the old key: rotate warns, naming
	// both instances' primaries, and rotates all the same.
	out, err = runCLI(t, env, "keys", "rotate", "--batch-size", "7")
	if err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	if !strings.Contains(out, fmt.Sprintf("rotated %d values", expectedValues(40))) || !strings.Contains(out, "rotation progress") {
		t.Errorf("keys rotate output:\n%s", out)
	}
	// One reencrypt_batch event per batch of at most 7 rows, by no caller,
	// counting together every row rewritten.
	var events, rows, biggest, rowsStored int64
	var odd int
	if err := f.pool.QueryRow(context.Background(), `
		SELECT count(*), coalesce(sum(count), 0), coalesce(max(count), 0),
		       count(*) FILTER (WHERE caller <> '' OR status <> 200 OR user_id <> '' OR provider <> '' OR code <> ''),
		       (SELECT count(*) FROM auth_tokens) + (SELECT count(*) FROM offline_tokens)
		FROM audit_events WHERE action = 'reencrypt_batch'`).Scan(&events, &rows, &biggest, &odd, &rowsStored); err != nil {
		t.Fatal(err)
	}
	if rows != rowsStored || biggest > 7 || events < (rowsStored+6)/7 || odd != 0 {
		t.Errorf("reencrypt_batch events: %d events counting %d rows (largest %d, %d odd); want batches of at most 7 counting all %d rows",
			events, rows, biggest, odd, rowsStored)
	}
	for _, want := range []string{"warning: live instances do not all seal with this keyring's primary key " + string(f.newKey.ID()),
		"old seals with " + string(f.oldKey.ID()), "new seals with " + string(f.newKey.ID())} {
		if !strings.Contains(out, want) {
			t.Errorf("keys rotate with an instance on the old primary does not warn %q:\n%s", want, out)
		}
	}

	// Retiring the key the old instance seals with is refused while it
	// runs, naming it, and allowed once it stopped (and deleted its record).
	out, err = runCLI(t, env, "keys", "retire", string(f.oldKey.ID()))
	if !errors.Is(err, app.ErrKeyInUse) || !strings.Contains(err.Error(), "primary key of 1 live instances: old (") {
		t.Fatalf("retire while the old instance seals with the key = %v, want refused naming it\n%s", err, out)
	}
	if err := f.old.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, env, "keys", "retire", string(f.oldKey.ID()))
	if err != nil {
		t.Fatalf("retire after rotation: %v\n%s", err, out)
	}
	if want := "live instances still holding key " + string(f.oldKey.ID()) + " as an older key (harmless: no stored value needs it): new"; !strings.Contains(out, want) {
		t.Errorf("retire does not name the instance still holding the key as an older key (%q):\n%s", want, out)
	}
	out, _ = runCLI(t, env, "keys", "rotate")
	if strings.Contains(out, "warning") {
		t.Errorf("keys rotate warns although every live instance seals with the primary:\n%s", out)
	}
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), f.oldKey.Encode()) || !strings.Contains(string(raw), f.newKey.Encode()) {
		t.Fatalf("key file after retire:\n%s", raw)
	}
	if info, _ := os.Stat(keyFile); info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode after retire = %v", info.Mode().Perm())
	}

	// Values sealed by a key the keyring lacks make list warn and rotate
	// exit non-zero, naming the key.
	if _, err := f.pool.Exec(context.Background(), `UPDATE offline_tokens SET key_id = 'lostkey' WHERE user_id = 'user-00008'`); err != nil {
		t.Fatal(err)
	}
	out, _ = runCLI(t, env, "keys", "list")
	if !strings.Contains(out, "lostkey            MISSING    1") || !strings.Contains(out, "cannot be read") {
		t.Errorf("keys list with an unknown key id:\n%s", out)
	}
	out, err = runCLI(t, env, "keys", "rotate")
	if err == nil || !strings.Contains(out, "1 values are sealed by key lostkey, which is not in the keyring") {
		t.Fatalf("rotate with values under an unknown key = %v\n%s", err, out)
	}
}

// TestKeyInventoryAgreesWithCountValuesByKey: the readiness queries (a
// loose index scan for the key ids in use, a count of given ids) say what
// the full count says, with values under two keys in both tables and in
// events (tokens kept for upstream revocation), one key only in
// offline_tokens, one only in events, and the tables emptied.
func TestKeyInventoryAgreesWithCountValuesByKey(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	f.seed(t, 30) // old key
	for i := 30; i < 37; i++ {
		if _, err := f.newSvc.PutAuthTokens(ctx, tokens(i, "new")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.pool.Exec(ctx, `UPDATE offline_tokens SET key_id = 'offline-only' WHERE user_id = 'user-00004'`); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 3, 31, 32} { // 3: no refresh token
		if err := f.repo.DeleteAuthTokensRevoking(ctx, userID(i), domain.ProviderGitLab); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.pool.Exec(ctx, `UPDATE events SET key_id = 'kept-only' WHERE user_id = 'user-00032' AND key_id IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		want := f.counts(t)
		ids, err := f.repo.KeyIDsInUse(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wantIDs []domain.KeyID
		for id := range want {
			wantIDs = append(wantIDs, id)
		}
		slices.Sort(wantIDs)
		if !slices.Equal(ids, wantIDs) {
			t.Errorf("%s: KeyIDsInUse = %v, want %v", when, ids, wantIDs)
		}
		some := append(slices.Clone(wantIDs), "never-used")[min(1, len(wantIDs)):]
		usage, err := f.repo.CountValuesOfKeys(ctx, some)
		if err != nil {
			t.Fatal(err)
		}
		got := map[domain.KeyID]int64{}
		for _, u := range usage {
			got[u.KeyID] = u.Values
		}
		for _, id := range some {
			if got[id] != want[id] {
				t.Errorf("%s: CountValuesOfKeys(%v)[%s] = %d, want %d", when, some, id, got[id], want[id])
			}
		}
		if _, ok := got["never-used"]; ok {
			t.Errorf("%s: CountValuesOfKeys lists a key that seals nothing: %v", when, usage)
		}
	}
	check("four keys")
	if want := 4; len(f.counts(t)) != want {
		t.Fatalf("fixture: %d keys in use, want %d", len(f.counts(t)), want)
	}
	if _, err := f.pool.Exec(ctx, `DELETE FROM auth_tokens; DELETE FROM offline_tokens`); err != nil {
		t.Fatal(err)
	}
	check("only kept tokens")
	want := map[domain.KeyID]int64{f.oldKey.ID(): 3, f.newKey.ID(): 2, "kept-only": 2}
	if got := f.counts(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kept tokens counted %v, want %v", got, want)
	}
	if _, err := f.pool.Exec(ctx, `UPDATE events SET key_id = NULL, access_token = NULL, refresh_token = NULL`); err != nil {
		t.Fatal(err)
	}
	check("empty tables, revocations done")
}
