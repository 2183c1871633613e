// Package openhands_test imports an OpenHands-shaped database, encrypted by
// Python's cryptography Fernet the way OpenHands encrypts (make_fixture.py),
// into a real tokenstore database, through the CLI and the Go API, and reads
// every value back.
package openhands_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/openhands"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

const (
	fixtureSQL  = "testdata/openhands_fixture.sql"
	fixtureJSON = "testdata/openhands_fixture.json"
	// dsnVar holds the source DSN in the CLI's environment.
	dsnVar = "OPENHANDS_DATABASE_URL"
)

// fixture is what make_fixture.py wrote: the rows as stored and the outcome
// each must have.
type fixture struct {
	JWTSecret   string        `json:"jwt_secret"`
	OtherSecret string        `json:"other_secret"`
	AuthTokens  []authFixture `json:"auth_tokens"`
	Offline     []offlineFix  `json:"offline_tokens"`
}

type authFixture struct {
	ID           int64  `json:"id"`
	User         string `json:"keycloak_user_id"`
	Provider     string `json:"identity_provider"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Note         string `json:"note"`
	Expect       struct {
		Status         string  `json:"status"`
		Reason         string  `json:"reason"`
		AccessToken    string  `json:"access_token"`
		RefreshToken   *string `json:"refresh_token"`
		AccessExpires  int64   `json:"access_token_expires_at"`
		RefreshExpires int64   `json:"refresh_token_expires_at"`
	} `json:"expect"`
}

type offlineFix struct {
	User   string `json:"user_id"`
	Stored string `json:"offline_token"`
	Note   string `json:"note"`
	Expect struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
		Token  string `json:"offline_token"`
	} `json:"expect"`
}

func (a authFixture) imported() bool   { return a.Expect.Status == "imported" }
func (o offlineFix) imported() bool    { return o.Expect.Status == "imported" }
func (f fixture) importedAuth() int    { return count(f.AuthTokens, authFixture.imported) }
func (f fixture) importedOffline() int { return count(f.Offline, offlineFix.imported) }

func count[T any](xs []T, pred func(T) bool) int {
	n := 0
	for _, x := range xs {
		if pred(x) {
			n++
		}
	}
	return n
}

var (
	fixtureOnce sync.Once
	theFixture  fixture
	fixtureErr  error
)

func loadFixture(t *testing.T) fixture {
	t.Helper()
	fixtureOnce.Do(func() {
		raw, err := os.ReadFile(fixtureJSON)
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureErr = json.Unmarshal(raw, &theFixture)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return theFixture
}

// materials is every string that must never appear in output or logs: the
// secrets, every stored ciphertext, every plaintext.
func (f fixture) materials() []string {
	out := []string{f.JWTSecret, f.OtherSecret}
	for _, a := range f.AuthTokens {
		out = append(out, a.AccessToken, a.RefreshToken, a.Expect.AccessToken)
		if a.Expect.RefreshToken != nil {
			out = append(out, *a.Expect.RefreshToken)
		}
	}
	for _, o := range f.Offline {
		out = append(out, o.Stored, o.Expect.Token)
	}
	var nonEmpty []string
	for _, s := range out {
		if len(s) >= 6 { // shorter strings ("", "garbage") are not material
			nonEmpty = append(nonEmpty, s)
		}
	}
	return nonEmpty
}

// env is one import's world: an OpenHands source, a tokenstore target, the
// target's keyring, and the service reading it back.
type env struct {
	t         *testing.T
	fx        fixture
	sourceDSN string
	targetDSN string
	source    *pgxpool.Pool
	target    *pgxpool.Pool
	key       fernet.Key
	keyring   *fernet.Keyring
	repo      *postgres.Repository
	svc       *app.TokenService
	dir       string
}

// fixtureProviders are the valid provider names of the fixture's rows,
// each declared (store-only) in the target, as an operator importing them
// would declare them.
var fixtureProviders = []domain.Provider{"github", "gitlab", "bitbucket", "azure_devops", "keycloak", "enterprise_sso"}

// providersSetting is TOKENSTORE_PROVIDERS declaring names store-only.
func providersSetting(names []domain.Provider) string {
	entries := make([]string, len(names))
	for i, n := range names {
		entries[i] = `{"name":"` + string(n) + `","refresh":false}`
	}
	return "[" + strings.Join(entries, ",") + "]"
}

// setup loads the fixture into an empty database (the source) and starts
// an instance on a migrated one (the target).
func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, fx: loadFixture(t), dir: t.TempDir()}
	e.sourceDSN = testdb.NewEmptyDSN(t)
	e.source = testdb.Pool(t, e.sourceDSN, nil)
	sqlText, err := os.ReadFile(fixtureSQL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.source.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The simple protocol runs the whole script, many statements, at once.
	_, err = conn.Conn().PgConn().Exec(ctx, string(sqlText)).ReadAll()
	conn.Release()
	if err != nil {
		t.Fatalf("load fixture: %v", err)
	}

	target := servicetest.Start(t, servicetest.Options{Secrets: e.fx.materials,
		Configure: func(cfg *cli.Config) { cfg.App.Providers = fixtureProviders }})
	e.targetDSN, e.target, e.key, e.keyring = target.DSN, target.DB, target.Keys[0], target.Keyring
	e.svc = target.Instances[0].Service
	e.repo = postgres.New(e.target, postgres.Options{})
	return e
}

// secretFile writes secret (with a final newline, as an editor would) to a
// file and returns its path.
func (e *env) secretFile(secret string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, "jwt_secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// getenv is the CLI's environment: the target from TOKENSTORE_* variables,
// the source DSN in dsnVar, logs as JSON at debug level (the most verbose).
func (e *env) getenv(extra map[string]string) func(string) string {
	vars := map[string]string{
		"TOKENSTORE_DATABASE_URL": e.targetDSN,
		"TOKENSTORE_KEYS":         e.key.Encode(),
		"TOKENSTORE_LOG_FORMAT":   "json",
		"TOKENSTORE_LOG_LEVEL":    "debug",
		"TOKENSTORE_PROVIDERS":    providersSetting(fixtureProviders),
		dsnVar:                    e.sourceDSN,
	}
	for k, v := range extra {
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	return func(k string) string { return vars[k] }
}

// cliResult is one run of the command line.
type cliResult struct {
	stdout, stderr string
	err            error
}

// run runs `tokenstore import openhands --source-dsn-env ... --jwt-secret-file ...` plus args.
func (e *env) run(args ...string) cliResult {
	e.t.Helper()
	return e.runWith(nil, append([]string{"import", "openhands", "--source-dsn-env", dsnVar,
		"--jwt-secret-file", e.secretFile(e.fx.JWTSecret)}, args...)...)
}

func (e *env) runWith(extraEnv map[string]string, args ...string) cliResult {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cli.Run(ctx, args, cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: e.getenv(extraEnv)})
	r := cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
	e.noMaterialIn(r.stdout+r.stderr+errString(err), "the CLI's output")
	return r
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// noMaterialIn fails the test if text holds a secret, a ciphertext, a
// plaintext or the database password.
func (e *env) noMaterialIn(text, where string) {
	e.t.Helper()
	for _, s := range e.fx.materials() {
		if strings.Contains(text, s) {
			e.t.Errorf("%s contains token material or a secret: %q", where, s)
		}
	}
	if strings.Contains(text, "tokenstore-test") { // testdb's password, in both DSNs
		e.t.Errorf("%s contains the database password", where)
	}
}

// importer imports through the Go API, as the CLI does.
func (e *env) importer(secret string, opts app.ImportOptions, log *bytes.Buffer) (app.ImportSummary, error) {
	e.t.Helper()
	ctx := context.Background()
	pool, err := openhands.Connect(ctx, e.sourceDSN)
	if err != nil {
		e.t.Fatal(err)
	}
	defer pool.Close()
	src, err := openhands.NewSource(pool, domain.NewSecret(secret))
	if err != nil {
		e.t.Fatal(err)
	}
	return e.newImporter(log).Import(ctx, src, opts)
}

func (e *env) newImporter(log *bytes.Buffer) *app.Importer {
	var im *app.Importer
	if log != nil {
		im = app.NewImporter(jsonLogger(log), fixtureProviders, e.keyring, e.repo, nil)
	} else {
		im = app.NewImporter(nil, fixtureProviders, e.keyring, e.repo, nil)
	}
	return im
}

// snapshot is the target's rows, everything included, in a stable order.
func (e *env) snapshot() []string {
	e.t.Helper()
	ctx := context.Background()
	var out []string
	rows, err := e.target.Query(ctx, `
SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', id, user_id, provider, key_id, md5(access_token),
              coalesce(md5(refresh_token), '-'), access_token_expires_at, refresh_token_expires_at, version,
              created_at::text || '/' || updated_at::text)
FROM auth_tokens ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	rows.Close()
	rows, err = e.target.Query(ctx, `
SELECT format('%s|%s|%s|%s|%s', user_id, key_id, md5(token), version, created_at::text || '/' || updated_at::text)
FROM offline_tokens ORDER BY user_id`)
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	rows.Close()
	return out
}

// counts returns how many auth token and offline token rows the target holds.
func (e *env) counts() (auth, offline int) {
	e.t.Helper()
	err := e.target.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM auth_tokens), (SELECT count(*) FROM offline_tokens)`).Scan(&auth, &offline)
	if err != nil {
		e.t.Fatal(err)
	}
	return auth, offline
}

// checkImported reads every value back and compares it with the fixture's
// expectation; rows expected to fail must be absent.
func (e *env) checkImported() {
	t := e.t
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	providersOf := map[domain.UserID][]string{}
	for _, a := range e.fx.AuthTokens {
		user, provider := domain.UserID(a.User), domain.Provider(a.Provider)
		if !a.imported() {
			if _, err := e.repo.GetAuthTokens(ctx, user, provider); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("row %d (%s) should not be imported; load: %v", a.ID, a.Note, err)
			}
			continue
		}
		providersOf[user] = append(providersOf[user], a.Provider)
		want := a.Expect
		wantAccessExpiry, wantRefreshExpiry := expiryOf(want.AccessExpires), expiryOf(want.RefreshExpires)

		// Through the service, as a caller reads it.
		got, err := e.svc.GetAccessToken(ctx, user, provider)
		if wantAccessExpiry.Expired(now) {
			if !errors.Is(err, domain.ErrTokenExpired) {
				t.Errorf("row %d (%s): expired token read as %v, want ErrTokenExpired", a.ID, a.Note, err)
			}
		} else if err != nil {
			t.Errorf("row %d (%s): GetAccessToken: %v", a.ID, a.Note, err)
		} else {
			if got.Token.Reveal() != want.AccessToken {
				t.Errorf("row %d (%s): access token %q, want %q", a.ID, a.Note, got.Token.Reveal(), want.AccessToken)
			}
			if !got.Expiry.Equal(wantAccessExpiry) {
				t.Errorf("row %d (%s): access expiry %s, want %s", a.ID, a.Note, got.Expiry, wantAccessExpiry)
			}
		}

		// As stored: both values, bound to their place, under the primary key.
		sealed, err := e.repo.GetAuthTokens(ctx, user, provider)
		if err != nil {
			t.Fatalf("row %d: %v", a.ID, err)
		}
		if sealed.KeyID != e.keyring.PrimaryKeyID() {
			t.Errorf("row %d: key id %s, want the primary %s", a.ID, sealed.KeyID, e.keyring.PrimaryKeyID())
		}
		access, err := app.Unseal(e.keyring, app.AccessTokenPlace(user, provider),
			domain.Ciphertext{KeyID: sealed.KeyID, Data: sealed.AccessToken})
		if err != nil || access.Reveal() != want.AccessToken {
			t.Errorf("row %d (%s): stored access token %q (%v), want %q", a.ID, a.Note, access.Reveal(), err, want.AccessToken)
		}
		if want.RefreshToken == nil {
			if sealed.RefreshToken != nil {
				t.Errorf("row %d (%s): a refresh token is stored, want none", a.ID, a.Note)
			}
		} else {
			refresh, err := app.Unseal(e.keyring, app.RefreshTokenPlace(user, provider),
				domain.Ciphertext{KeyID: sealed.KeyID, Data: sealed.RefreshToken})
			if err != nil || refresh.Reveal() != *want.RefreshToken {
				t.Errorf("row %d (%s): stored refresh token %q (%v), want %q", a.ID, a.Note, refresh.Reveal(), err, *want.RefreshToken)
			}
		}
		if !sealed.AccessExpiry.Equal(wantAccessExpiry) || !sealed.RefreshExpiry.Equal(wantRefreshExpiry) {
			t.Errorf("row %d (%s): expiries %s / %s, want %s / %s", a.ID, a.Note,
				sealed.AccessExpiry, sealed.RefreshExpiry, wantAccessExpiry, wantRefreshExpiry)
		}
		if sealed.Refresh != (domain.RefreshState{}) {
			t.Errorf("row %d: imported with refresh state %+v, want a clean one", a.ID, sealed.Refresh)
		}
	}
	// Each user's provider list is exactly the imported rows.
	for user, want := range providersOf {
		list, err := e.svc.ListProviders(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range list {
			got = append(got, string(p.Provider))
		}
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("user %s: providers %v, want %v", user, got, want)
		}
	}
	for _, o := range e.fx.Offline {
		got, err := e.svc.GetOfflineToken(ctx, domain.UserID(o.User))
		if !o.imported() {
			if !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("offline token of %s (%s) should not be imported; load: %v", o.User, o.Note, err)
			}
			continue
		}
		if err != nil || got.Token.Reveal() != o.Expect.Token {
			t.Errorf("offline token of %s (%s): %q (%v), want %q", o.User, o.Note, got.Token.Reveal(), err, o.Expect.Token)
		}
	}
	auth, offline := e.counts()
	if auth != e.fx.importedAuth() || offline != e.fx.importedOffline() {
		t.Errorf("target holds %d auth token rows and %d offline tokens, want %d and %d",
			auth, offline, e.fx.importedAuth(), e.fx.importedOffline())
	}
}

func expiryOf(epoch int64) domain.Expiry {
	if epoch == 0 {
		return domain.Never()
	}
	return domain.At(time.Unix(epoch, 0))
}
