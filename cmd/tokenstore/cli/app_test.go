package cli_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/tests/testlog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestAppOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, migrate := range []bool{false, true} {
		cfg := validConfig(t)
		cfg.Migrate = migrate
		log := slog.New(slog.DiscardHandler)
		if err := fx.ValidateApp(cli.AppOptions(cfg, log)); err != nil {
			t.Errorf("Migrate=%v: ValidateApp: %v", migrate, err)
		}
		var server *httpapi.Server
		if err := fx.ValidateApp(cli.AppOptions(cfg, log, fx.Populate(&server))); err != nil {
			t.Errorf("Migrate=%v with Populate: ValidateApp: %v", migrate, err)
		}
	}
}

// TestAppAlwaysHasARefresher: the graph holds the oauth refresher even with
// no providers configured (no optional dependencies); it then refreshes
// nothing.
func TestAppAlwaysHasARefresher(t *testing.T) {
	t.Parallel()
	for _, providers := range [][]oauth.ProviderConfig{nil, {{Name: "gitlab", ClientID: "x"}}} {
		cfg := validConfig(t)
		cfg.OAuth.Providers = providers
		var refresher ports.TokenRefresher
		var pool *pgxpool.Pool
		app := fx.New(cli.AppOptions(cfg, slog.New(slog.DiscardHandler), fx.Populate(&refresher, &pool)))
		if err := app.Err(); err != nil {
			t.Fatalf("%d providers: %v", len(providers), err)
		}
		pool.Close()
		if got, want := refresher.Configured("gitlab"), len(providers) > 0; got != want {
			t.Errorf("%d providers: Configured(gitlab) = %v, want %v", len(providers), got, want)
		}
	}
}

// testApp is a started application on its own database.
type testApp struct {
	base string // http://127.0.0.1:port
	cred string // credential of a caller holding every permission
	logs *testlog.Buffer
}

// startApp starts the application on dsn with its configuration changed by
// change (and valid), and stops it when t ends, checking the stop succeeds
// and the port no longer answers.
func startApp(t *testing.T, dsn string, change func(*cli.Config)) *testApp {
	t.Helper()
	c := servicetest.Start(t, servicetest.Options{DSN: dsn, Configure: func(cfg *cli.Config) {
		cfg.Database.MaxConns = 4
		if change != nil {
			change(cfg)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("test configuration: %v", err)
		}
	}})
	in := c.Instances[0]
	return &testApp{base: in.URL, cred: c.Credentials[servicetest.CallerAll], logs: in.Logs}
}

func TestAppServesHealthAndStops(t *testing.T) {
	t.Parallel()
	a := startApp(t, testdb.NewDSN(t), nil)
	if strings.HasSuffix(a.base, ":0") || a.base == "http://" {
		t.Fatalf("server address %q: not the bound port", a.base)
	}

	status, _, body := get(t, a.base+"/healthz", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("/healthz: %d %s", status, body)
	}
	status, _, body = get(t, a.base+"/readyz", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"ready"`) {
		t.Errorf("/readyz: %d %s", status, body)
	}
	// The API itself is wired: authenticated requests reach the database.
	status, _, body = get(t, a.base+"/v1/users/u1/providers", a.cred)
	if status != http.StatusOK {
		t.Errorf("authenticated GET providers: %d %s", status, body)
	}
	status, _, body = get(t, a.base+"/v1/users/u1/providers", "")
	if status != http.StatusUnauthorized {
		t.Errorf("unauthenticated GET providers: %d %s", status, body)
	}
	if !strings.Contains(a.logs.String(), `"msg":"listening"`) {
		t.Errorf("no listening log line:\n%s", a.logs.String())
	}
}

func TestAppNotReadyWhenSchemaBehind(t *testing.T) {
	t.Parallel()
	a := startApp(t, testdb.NewEmptyDSN(t), nil)

	status, _, _ := get(t, a.base+"/healthz", "")
	if status != http.StatusOK {
		t.Errorf("/healthz on an unmigrated database: %d, want 200 (liveness does not need the schema)", status)
	}
	status, header, body := get(t, a.base+"/readyz", "")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz on an unmigrated database: %d %s, want 503", status, body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("/readyz body %s: %v", body, err)
	}
	if p.Code != httpapi.CodeUnavailable {
		t.Errorf("/readyz code %q, want %q", p.Code, httpapi.CodeUnavailable)
	}
	if !strings.Contains(p.Detail, "migrate up") {
		t.Errorf("/readyz detail %q does not say to run `tokenstore migrate up`", p.Detail)
	}
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("/readyz Content-Type %q", ct)
	}
	if header.Get("Retry-After") == "" {
		t.Errorf("/readyz 503 without Retry-After")
	}
}

func TestAppMigratesOnStart(t *testing.T) {
	t.Parallel()
	a := startApp(t, testdb.NewEmptyDSN(t), func(c *cli.Config) { c.Migrate = true })
	status, _, body := get(t, a.base+"/readyz", "")
	if status != http.StatusOK {
		t.Fatalf("/readyz after migrating on start: %d %s", status, body)
	}
	logs := a.logs.String()
	if !strings.Contains(logs, `"msg":"migrations applied"`) {
		t.Errorf("no migrations applied log line:\n%s", logs)
	}
	// Migrations finish before the server takes requests.
	mig := strings.Index(logs, `"msg":"migrations applied"`)
	lis := strings.Index(logs, `"msg":"listening"`)
	if mig < 0 || lis < 0 || mig > lis {
		t.Errorf("migrations applied (at %d) should be logged before listening (at %d)", mig, lis)
	}
	status, _, body = get(t, a.base+"/v1/users/u1/providers", a.cred)
	if status != http.StatusOK {
		t.Errorf("GET providers after migrating on start: %d %s", status, body)
	}
}

func TestAppMigrateOnStartIsIdempotent(t *testing.T) {
	t.Parallel()
	// An already migrated database: migrating on start applies nothing.
	a := startApp(t, testdb.NewDSN(t), func(c *cli.Config) { c.Migrate = true })
	status, _, body := get(t, a.base+"/readyz", "")
	if status != http.StatusOK {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	if !strings.Contains(a.logs.String(), `"count":0`) {
		t.Errorf("expected migrations applied count 0:\n%s", a.logs.String())
	}
}

func TestAppStartFailsOnBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()

	cfg := validConfig(t)
	cfg.Database.URL = testdb.NewDSN(t)
	cfg.HTTP.Addr = addr
	app := cli.NewApp(cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = app.Start(ctx)
	wantErr(t, err, addr, "TOKENSTORE_HTTP_ADDR")
	if err == nil {
		_ = app.Stop(ctx)
	}
}

func TestAppStartFailsOnUnreachableDatabase(t *testing.T) {
	t.Parallel()
	cfg := validConfig(t)
	cfg.Database.URL = "postgres://u:" + secretPW + "@127.0.0.1:1/tokens?sslmode=disable&connect_timeout=10"
	cfg.HTTP.Addr = "127.0.0.1:0"
	logs := &testlog.Buffer{}
	app := cli.NewApp(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := app.Start(ctx)
	wantErr(t, err, "127.0.0.1:1", "tokens")
	wantNoSecret(t, "start error", err.Error())
	wantNoSecret(t, "logs", logs.String())
}

// poolGoroutines counts pgxpool health-check goroutines: one per open pool.
func poolGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "pgxpool.(*Pool).backgroundHealthCheck")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestAppFailedStartClosesPool: when the database is unreachable the pool's
// start hook (Ping) fails, and fx rolls back only hooks that started, so the
// hook must close the pool itself or its health-check goroutine leaks. Not
// parallel: it counts goroutines.
func TestAppFailedStartClosesPool(t *testing.T) {
	before := poolGoroutines()
	cfg := validConfig(t)
	cfg.Database.URL = "postgres://u@127.0.0.1:1/tokens?sslmode=disable"
	cfg.HTTP.Addr = "127.0.0.1:0"
	app := cli.NewApp(cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := app.Start(ctx); err == nil {
		t.Fatal("start succeeded against 127.0.0.1:1")
	}
	end := time.Now().Add(10 * time.Second)
	for poolGoroutines() > before && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := poolGoroutines(); n > before {
		t.Errorf("%d pgxpool goroutines after a failed start, %d before: the pool is not closed", n, before)
	}
}
