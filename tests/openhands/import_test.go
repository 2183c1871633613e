package openhands_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/openhands"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

func jsonLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// wantSummary is what importing the whole fixture into an empty target reports.
func (e *env) wantSummary(dryRun bool) app.ImportSummary {
	return app.ImportSummary{
		DryRun: dryRun,
		AuthTokens: app.ImportCounts{
			Imported: e.fx.importedAuth(), Failed: len(e.fx.AuthTokens) - e.fx.importedAuth(),
		},
		OfflineTokens: app.ImportCounts{
			Imported: e.fx.importedOffline(), Failed: len(e.fx.Offline) - e.fx.importedOffline(),
		},
	}
}

func sameCounts(got, want app.ImportSummary) bool {
	return got.DryRun == want.DryRun && got.AuthTokens == want.AuthTokens && got.OfflineTokens == want.OfflineTokens
}

// checkFailures compares the summary's failures with the fixture's failed
// rows: every one named, with its reason, in source order.
func (e *env) checkFailures(got []app.ImportFailure) {
	e.t.Helper()
	var want []app.ImportFailure
	for _, a := range e.fx.AuthTokens {
		if !a.imported() {
			want = append(want, app.ImportFailure{Table: "auth_tokens", SourceID: fmt.Sprint(a.ID),
				User: a.User, Provider: a.Provider, Reason: app.ImportReason(a.Expect.Reason)})
		}
	}
	for _, o := range e.fx.Offline {
		if !o.imported() {
			want = append(want, app.ImportFailure{Table: "offline_tokens", SourceID: o.User,
				User: o.User, Reason: app.ImportReason(o.Expect.Reason)})
		}
	}
	if len(got) != len(want) {
		e.t.Fatalf("%d failures, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if g.Detail == "" {
			e.t.Errorf("failure %d has no detail: %+v", i, g)
		}
		g.Detail = ""
		if g != want[i] {
			e.t.Errorf("failure %d = %+v, want %+v", i, g, want[i])
		}
	}
}

// The whole fixture through the command line: every row Python's Fernet
// wrote that can be imported reads back exactly; every other one is named
// with its reason; the command fails because some rows did.
func TestImportOpenHandsThroughCLI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.run("--batch-size", "3")
	if r.err == nil || !strings.Contains(r.err.Error(), "11 row(s) could not be imported") {
		t.Fatalf("err = %v, want the count of failed rows\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	e.checkImported()
	// One import_batch event per batch written, counting the rows imported.
	var rows int64
	var odd int
	if err := e.target.QueryRow(context.Background(), `
		SELECT coalesce(sum(count), 0), count(*) FILTER (WHERE caller <> '' OR status <> 200 OR count > 3)
		FROM audit_events WHERE action = 'import_batch'`).Scan(&rows, &odd); err != nil {
		t.Fatal(err)
	}
	if rows != 10 || odd != 0 {
		t.Errorf("import_batch events count %d rows (%d odd events), want 10 in batches of at most 3", rows, odd)
	}

	for _, line := range []string{
		"auth_tokens       7                0       7",
		"offline_tokens       3                0       4",
		"total      10                0      11",
	} {
		if !regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(line), " ", ` +`)).MatchString(r.stdout) {
			t.Errorf("summary lacks %q:\n%s", line, r.stdout)
		}
	}
	for _, want := range []string{
		`auth_tokens id 11 (user "kc-carol", provider "GitHub Enterprise"): invalid provider name: `,
		`auth_tokens id 12 (user "kc-dave", provider "github"): wrong secret: `,
		`auth_tokens id 13 (user "kc-dave", provider "gitlab"): bad ciphertext: `,
		`auth_tokens id 15 (user "kc-erin", provider "keycloak"): wrong secret: `,
		`auth_tokens id 20 (user "kc-frank", provider "bitbucket"): bad ciphertext: `,
		`auth_tokens id 21 (user "kc-evil\nFORGED LINE", provider "github"): invalid user id: `,
		`auth_tokens id 22 (user "kc-grace", provider "github"): invalid tokens: `,
		`offline_tokens user_id "kc-dave": wrong secret: `,
		`offline_tokens user_id "kc-erin": bad ciphertext: `,
		`offline_tokens user_id "kc-frank": bad ciphertext: `,
		`offline_tokens user_id "kc-grace": bad ciphertext: `,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	// A user id from the source cannot forge a line of the report.
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "FORGED") {
			t.Errorf("the report has a forged line: %q", line)
		}
	}
	// The log says what happened, batch by batch, by identity only.
	for _, want := range []string{`"msg":"import batch"`, `"msg":"import: row not imported"`, `"source_id":"12"`, `"reason":"wrong secret"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("log lacks %s:\n%s", want, r.stderr)
		}
	}
}

// The Go API reports the same summary, and its log carries no material.
func TestImportOpenHandsThroughGoAPI(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var log bytes.Buffer
	sum, err := e.importer(e.fx.JWTSecret, app.ImportOptions{}, &log)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.wantSummary(false); !sameCounts(sum, want) {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	e.checkFailures(sum.Failures)
	e.checkImported()
	e.noMaterialIn(log.String(), "the importer's log")
	for _, f := range sum.Failures {
		e.noMaterialIn(fmt.Sprintf("%+v", f), "a failure")
	}
}

// Keyset pagination: every batch size reads every row exactly once, and a
// failing row never takes the rows of its batch with it.
func TestEveryBatchSizeImportsTheSame(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 2, 3, 4, 7, 14, 15, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			sum, err := e.importer(e.fx.JWTSecret, app.ImportOptions{BatchSize: size}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := e.wantSummary(false); !sameCounts(sum, want) {
				t.Errorf("batch size %d: summary %+v, want %+v", size, sum, want)
			}
			e.checkFailures(sum.Failures)
			e.checkImported()
		})
	}
}

// Running the import again imports nothing, finds everything present and
// leaves every row exactly as it was (no version or updated_at bump).
func TestImportTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	if r := e.run(); r.err == nil {
		t.Fatal("first run: want an error for the failed rows")
	}
	before := e.snapshot()
	r := e.run()
	if r.err == nil {
		t.Fatal("second run: want an error for the failed rows")
	}
	after := e.snapshot()
	if !slices.Equal(before, after) {
		t.Errorf("the second run changed the target:\nbefore %v\nafter  %v", before, after)
	}
	sum, err := e.importer(e.fx.JWTSecret, app.ImportOptions{BatchSize: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := e.wantSummary(false)
	want.AuthTokens.AlreadyPresent, want.AuthTokens.Imported = want.AuthTokens.Imported, 0
	want.OfflineTokens.AlreadyPresent, want.OfflineTokens.Imported = want.OfflineTokens.Imported, 0
	if !sameCounts(sum, want) {
		t.Errorf("third run: summary %+v, want %+v", sum, want)
	}
	if !slices.Equal(before, e.snapshot()) {
		t.Error("the third run changed the target")
	}
	if !regexp.MustCompile(`auth_tokens +0 +7 +7`).MatchString(r.stdout) {
		t.Errorf("second run's summary should show 0 imported, 7 already present:\n%s", r.stdout)
	}
	e.checkImported()
}

// A dry run decrypts and checks everything, reports what a real run would
// do, and writes nothing.
func TestDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.run("--dry-run")
	if r.err == nil {
		t.Fatal("dry run: want an error for the failed rows")
	}
	if auth, offline := e.counts(); auth != 0 || offline != 0 {
		t.Fatalf("a dry run wrote %d auth token rows and %d offline tokens", auth, offline)
	}
	if !strings.Contains(r.stdout, "Dry run") || !regexp.MustCompile(`would import`).MatchString(r.stdout) ||
		!regexp.MustCompile(`auth_tokens +7 +0 +7`).MatchString(r.stdout) {
		t.Errorf("dry run summary:\n%s", r.stdout)
	}
	sum, err := e.importer(e.fx.JWTSecret, app.ImportOptions{DryRun: true, BatchSize: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.wantSummary(true); !sameCounts(sum, want) {
		t.Errorf("dry run summary %+v, want %+v", sum, want)
	}
	e.checkFailures(sum.Failures)

	// After a real run, a dry run finds everything present.
	if _, err := e.importer(e.fx.JWTSecret, app.ImportOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	before := e.snapshot()
	sum, err = e.importer(e.fx.JWTSecret, app.ImportOptions{DryRun: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total().Imported != 0 || sum.Total().AlreadyPresent != e.fx.importedAuth()+e.fx.importedOffline() {
		t.Errorf("dry run after import: %+v", sum)
	}
	if !slices.Equal(before, e.snapshot()) {
		t.Error("a dry run changed the target")
	}
}

// Tokens tokenstore already holds (possibly newer than the source's) are
// never overwritten.
func TestImportNeverOverwrites(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	if _, err := e.svc.PutAuthTokens(ctx, domain.AuthTokens{
		User: "kc-alice", Provider: "github", AccessToken: domain.NewSecret("newer-access"),
		AccessExpiry: domain.Never(),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.PutOfflineToken(ctx, domain.OfflineToken{User: "kc-bob", Token: domain.NewSecret("newer-offline")}); err != nil {
		t.Fatal(err)
	}
	sum, err := e.importer(e.fx.JWTSecret, app.ImportOptions{BatchSize: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.AuthTokens.AlreadyPresent != 1 || sum.AuthTokens.Imported != e.fx.importedAuth()-1 ||
		sum.OfflineTokens.AlreadyPresent != 1 || sum.OfflineTokens.Imported != e.fx.importedOffline()-1 {
		t.Errorf("summary %+v", sum)
	}
	got, err := e.svc.GetAccessToken(ctx, "kc-alice", "github")
	if err != nil || got.Token.Reveal() != "newer-access" {
		t.Errorf("kc-alice/github: %q (%v), want the newer token kept", got.Token.Reveal(), err)
	}
	off, err := e.svc.GetOfflineToken(ctx, "kc-bob")
	if err != nil || off.Token.Reveal() != "newer-offline" {
		t.Errorf("kc-bob offline: %q (%v), want the newer token kept", off.Token.Reveal(), err)
	}
}

// A batch whose write fails is written not at all: earlier batches stay,
// the import stops with an error, and running it again completes it.
func TestFailedBatchIsAllOrNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	// Make the target refuse one valid row (kc-bob/github, source id 7, in
	// the third batch of 2 when reading ids 1 2 | 4 7 | ...).
	if _, err := e.target.Exec(ctx, `
CREATE FUNCTION refuse_bob() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id = 'kc-bob' AND NEW.provider = 'github' THEN
        RAISE EXCEPTION 'refused by test';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_bob BEFORE INSERT ON auth_tokens FOR EACH ROW EXECUTE FUNCTION refuse_bob();`); err != nil {
		t.Fatal(err)
	}
	sum, err := e.importer(e.fx.JWTSecret, app.ImportOptions{BatchSize: 2}, nil)
	if err == nil {
		t.Fatal("want the failed batch's error")
	}
	if strings.Contains(err.Error(), "refused by test") == false {
		t.Errorf("err = %v, want the database's reason", err)
	}
	if sum.AuthTokens.Imported != 2 {
		t.Errorf("summary so far %+v, want the first batch's 2 rows", sum)
	}
	for _, k := range []struct{ user, provider string }{{"kc-bob", "bitbucket"}, {"kc-bob", "github"}} {
		if _, err := e.repo.GetAuthTokens(ctx, domain.UserID(k.user), domain.Provider(k.provider)); !errors.Is(err, domain.ErrNotFound) {
			t.Errorf("%s/%s of the failed batch was written (%v)", k.user, k.provider, err)
		}
	}
	if auth, offline := e.counts(); auth != 2 || offline != 0 {
		t.Errorf("target holds %d/%d rows, want the first batch only", auth, offline)
	}

	if _, err := e.target.Exec(ctx, `DROP TRIGGER refuse_bob ON auth_tokens`); err != nil {
		t.Fatal(err)
	}
	sum, err = e.importer(e.fx.JWTSecret, app.ImportOptions{BatchSize: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.AuthTokens.AlreadyPresent != 2 || sum.AuthTokens.Imported != e.fx.importedAuth()-2 {
		t.Errorf("rerun summary %+v", sum)
	}
	e.checkImported()
}

// Under the wrong JWT secret every ciphertext is reported as such and
// nothing is imported.
func TestWrongSecretImportsNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.runWith(map[string]string{"OH_SECRET": "definitely-not-the-secret"},
		"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-env", "OH_SECRET")
	if r.err == nil {
		t.Fatal("want an error")
	}
	if auth, offline := e.counts(); auth != 0 || offline != 0 {
		t.Fatalf("imported %d/%d rows under the wrong secret", auth, offline)
	}
	if n := strings.Count(r.stdout, ": wrong secret: "); n < 15 {
		t.Errorf("%d rows reported as wrong secret, want nearly all:\n%s", n, r.stdout)
	}
	if strings.Contains(r.stdout+r.stderr, "definitely-not-the-secret") {
		t.Error("the JWT secret was printed")
	}
}

// The source is never written: its sessions are read-only.
func TestSourceSessionsAreReadOnly(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	pool, err := openhands.Connect(ctx, e.sourceDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, `DELETE FROM auth_tokens`)
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("DELETE on the source: %v, want a read-only transaction error", err)
	}
}

func TestSourceCheckRejectsOtherDatabases(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// The target is a tokenstore database, not an OpenHands one.
	r := e.runWith(map[string]string{dsnVar: e.targetDSN},
		"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-file", e.secretFile(e.fx.JWTSecret))
	if r.err == nil || !strings.Contains(r.err.Error(), "OpenHands enterprise database") {
		t.Fatalf("err = %v, want a hint that the source is not OpenHands'", r.err)
	}
}

func TestRefusesUnmigratedTarget(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.runWith(map[string]string{"TOKENSTORE_DATABASE_URL": e.sourceDSN},
		"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-file", e.secretFile(e.fx.JWTSecret))
	if r.err == nil || !strings.Contains(r.err.Error(), "tokenstore migrate up") {
		t.Fatalf("err = %v, want a pointer to migrate up", r.err)
	}
}

// Without a key the import refuses with serve's message.
func TestRefusesWithoutKeys(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.runWith(map[string]string{"TOKENSTORE_KEYS": ""},
		"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-file", e.secretFile(e.fx.JWTSecret))
	const want = "no encryption key: set TOKENSTORE_KEYS, TOKENSTORE_KEY_FILE or TOKENSTORE_JWT_SECRET(_FILE)"
	if r.err == nil || !strings.HasPrefix(r.err.Error(), want) {
		t.Fatalf("err = %v, want %q", r.err, want)
	}
	if auth, offline := e.counts(); auth != 0 || offline != 0 {
		t.Fatal("rows were imported without a key")
	}
}

func TestFlagMistakes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	secret := e.secretFile(e.fx.JWTSecret)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no system", []string{"import"}, "say which system"},
		{"unknown system", []string{"import", "gitlab"}, `unknown system "gitlab"`},
		{"no source", []string{"import", "openhands", "--jwt-secret-file", secret}, "--source-dsn-env VAR or --source-dsn DSN"},
		{"two sources", []string{"import", "openhands", "--source-dsn", "postgres://x:tokenstore-test@h/db", "--source-dsn-env", dsnVar, "--jwt-secret-file", secret}, "not both"},
		{"no secret", []string{"import", "openhands", "--source-dsn-env", dsnVar}, "--jwt-secret-file FILE or --jwt-secret-env VAR"},
		{"two secrets", []string{"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-file", secret, "--jwt-secret-env", "X"}, "not both"},
		{"unset variable", []string{"import", "openhands", "--source-dsn-env", "NOPE", "--jwt-secret-file", secret}, "NOPE is empty or unset"},
		{"batch size", []string{"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-file", secret, "--batch-size", "0"}, "--batch-size 0"},
		{"stray argument", []string{"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-file", secret, "extra"}, `unexpected argument "extra"`},
		{"bad source dsn", []string{"import", "openhands", "--source-dsn", "postgres://u:tokenstore-test@[::1", "--jwt-secret-file", secret}, "not a valid PostgreSQL connection string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.runWith(nil, tc.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", r.err, tc.want)
			}
		})
	}
	if auth, offline := e.counts(); auth != 0 || offline != 0 {
		t.Fatal("a mistaken command imported rows")
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	e := setup(t)
	r := e.runWith(nil, "import", "openhands", "--help")
	if !errors.Is(r.err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", r.err)
	}
	for _, want := range []string{"--source-dsn-env", "--jwt-secret-file", "--dry-run", "--batch-size", "already", "ever printed"} {
		if !strings.Contains(r.stdout, want) { // asked for, so on stdout
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.runWith(nil, "--help")
	if !strings.Contains(r.stdout, "tokenstore import openhands") {
		t.Errorf("top-level help lacks the import command:\n%s", r.stdout)
	}
}

// staticSource is an ImportSource over fixed batches, for the importer's
// own rules.
type staticSource struct {
	auth    [][]ports.ImportedAuthTokens
	offline [][]ports.ImportedOfflineToken
	failAt  int // yield an error instead of auth batch failAt (1-based); 0: never
}

func (s staticSource) AuthTokenBatches(_ context.Context, _ int) iter.Seq2[[]ports.ImportedAuthTokens, error] {
	return func(yield func([]ports.ImportedAuthTokens, error) bool) {
		for i, b := range s.auth {
			if s.failAt == i+1 {
				yield(nil, errors.New("source went away"))
				return
			}
			if !yield(b, nil) {
				return
			}
		}
	}
}

func (s staticSource) OfflineTokenBatches(_ context.Context, _ int) iter.Seq2[[]ports.ImportedOfflineToken, error] {
	return func(yield func([]ports.ImportedOfflineToken, error) bool) {
		for _, b := range s.offline {
			if !yield(b, nil) {
				return
			}
		}
	}
}

func TestImporterRules(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()
	good := func(id, user string) ports.ImportedAuthTokens {
		return ports.ImportedAuthTokens{SourceID: id, User: user, Provider: "github",
			AccessToken: domain.NewSecret("a-" + id), AccessExpiry: domain.Never()}
	}
	refreshExpiryWithoutToken := good("4", "u4")
	refreshExpiryWithoutToken.RefreshExpiry = domain.Never()
	src := staticSource{
		auth: [][]ports.ImportedAuthTokens{
			{
				good("1", "u1"),
				{SourceID: "2", User: "", Provider: "github", AccessToken: domain.NewSecret("x")},
				{SourceID: "3", User: "u3", Provider: "github", Err: fmt.Errorf("%w: test", ports.ErrWrongSecret)},
				good("5", "u5"),
			},
			{good("6", "u6")},
			{good("7", "u7")},
		},
		failAt: 3,
	}
	sum, err := e.newImporter(nil).Import(ctx, src, app.ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "source went away") {
		t.Fatalf("err = %v, want the source's error", err)
	}
	if sum.AuthTokens.Imported != 3 || sum.AuthTokens.Failed != 2 {
		t.Errorf("summary so far %+v", sum)
	}
	if len(sum.Failures) != 2 || sum.Failures[0].Reason != app.ReasonInvalidUser || sum.Failures[1].Reason != app.ReasonWrongSecret {
		t.Errorf("failures %+v", sum.Failures)
	}
	if auth, _ := e.counts(); auth != 3 {
		t.Errorf("target holds %d rows, want 3", auth)
	}

	if _, err := e.newImporter(nil).Import(ctx, src, app.ImportOptions{BatchSize: app.MaxImportBatchSize + 1}); err == nil {
		t.Error("an oversized batch was accepted")
	}
}

// Rows of a provider tokenstore's configuration does not declare are
// reported, not stored where nothing would refresh them: the rule
// TokenService.PutAuthTokens applies to a PUT. The summary names the
// declared providers; the rest of each batch is imported.
func TestImportReportsUndeclaredProviders(t *testing.T) {
	t.Parallel()
	e := setup(t)
	declared := slices.DeleteFunc(slices.Clone(fixtureProviders), func(p domain.Provider) bool { return p == "enterprise_sso" })
	r := e.runWith(map[string]string{"TOKENSTORE_PROVIDERS": providersSetting(declared)},
		"import", "openhands", "--source-dsn-env", dsnVar, "--jwt-secret-file", e.secretFile(e.fx.JWTSecret), "--batch-size", "2")
	if r.err == nil || !strings.Contains(r.err.Error(), "12 row(s) could not be imported") {
		t.Fatalf("err = %v, want one more failed row than the fixture's 11\nstdout:\n%s", r.err, r.stdout)
	}
	want := `auth_tokens id 9 (user "kc-carol", provider "enterprise_sso"): undeclared provider: "enterprise_sso" is not a declared provider ` +
		`(declared: github, gitlab, bitbucket, azure_devops, keycloak)`
	if !strings.Contains(r.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
	if _, err := e.repo.GetAuthTokens(context.Background(), "kc-carol", "enterprise_sso"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the undeclared provider's row was imported: %v", err)
	}
	if _, err := e.repo.GetAuthTokens(context.Background(), "kc-carol", "azure_devops"); err != nil {
		t.Errorf("the row before it in its batch was not imported: %v", err)
	}
}
