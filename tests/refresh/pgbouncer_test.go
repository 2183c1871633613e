package refresh_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/pgbouncer"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// throughPgBouncer starts a PgBouncer (transaction mode) in front of the
// database of direct and returns the configuration change that sends an
// instance's pool through it with mode, and its migrations, which hold a
// session lock, to direct.
func throughPgBouncer(t *testing.T, direct, mode string) func(*cli.Config) {
	t.Helper()
	b := pgbouncer.Start(t, direct)
	pooled := b.DSN(t, direct)
	return func(cfg *cli.Config) {
		cfg.Database.URL, cfg.Database.DirectURL, cfg.Database.QueryExecMode = pooled, direct, mode
	}
}

// setServerTimeouts sets, on direct's database, the timeouts tokenstore
// asks for in its startup parameters, which PgBouncer drops: the README's
// advice (there for the role; here for the test's own database).
func setServerTimeouts(t *testing.T, direct string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := pgx.Identifier{conn.Config().Database}.Sanitize()
	ms := (cli.Defaults().Database.Timeout).Milliseconds()
	for _, p := range pgbouncer.IgnoredStartupParameters {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s SET %s = %d", name, p, ms)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestThroughPgBouncer runs the API's core through a real PgBouncer 1.18
// in transaction mode with database.query_exec_mode=exec: three instances
// migrate an empty database through the direct URL, then PUT, GET and
// DELETE tokens and an offline token, answer ready, serve concurrent reads and writes,
// refresh against the fake provider, and keep the exactly-once refresh
// across instances.
func TestThroughPgBouncer(t *testing.T) {
	t.Parallel()
	direct := testdb.NewEmptyDSN(t)
	setServerTimeouts(t, direct)
	route := throughPgBouncer(t, direct, "exec")
	c := newCluster(t, options{
		instances: 3,
		refresh:   lease(20*time.Second, 20*time.Second),
		dsn:       direct,
		configure: func(cfg *cli.Config) {
			route(cfg)
			cfg.Migrate = true
		},
	})
	for _, in := range c.instances {
		if logs := in.logs.String(); strings.Contains(logs, "database timeouts not applied") {
			t.Errorf("%s warns although the database sets the timeouts:\n%s", in.name, logs)
		}
	}

	t.Run("put get delete", func(t *testing.T) {
		const user = "pgbouncer-crud"
		c.put(t, user, map[string]any{"access_token": "at-" + randHex(8), "refresh_token": "rt-" + randHex(8), "expires_in": 3600})
		for _, in := range c.instances {
			if r := in.get(t, user); r.status != http.StatusOK || r.token == "" {
				t.Fatalf("%s GET: %s", in.name, r)
			}
		}
		offline := "offline-" + randHex(8)
		c.noteSecret(offline)
		path := "/v1/users/" + user + "/offline-token"
		for _, step := range []struct {
			method, base, path string
			body               any
			want               int
		}{
			{http.MethodPut, c.instances[1].base, path, map[string]any{"offline_token": offline}, http.StatusOK},
			{http.MethodGet, c.instances[2].base, path, nil, http.StatusOK},
			{http.MethodDelete, c.instances[0].base, path, nil, http.StatusNoContent},
			{http.MethodGet, c.instances[1].base, path, nil, http.StatusNotFound},
			{http.MethodDelete, c.instances[2].base, tokensPath(user, c.provider), nil, http.StatusNoContent},
			{http.MethodGet, c.instances[0].base, tokensPath(user, c.provider), nil, http.StatusNotFound},
			// Readiness reads the schema version through the pooler too.
			{http.MethodGet, c.instances[1].base, "/readyz", nil, http.StatusOK},
		} {
			r, err := c.do(step.method, step.base+step.path, step.body)
			if err != nil || r.status != step.want {
				t.Fatalf("%s %s: %v %s, want %d", step.method, step.path, err, r, step.want)
			}
		}
	})

	t.Run("concurrent reads and writes", func(t *testing.T) {
		const workers, requests, users = 24, 40, 8
		var (
			mu     sync.Mutex
			errs   []string
			wg     sync.WaitGroup
			failed int
		)
		for u := range users {
			c.put(t, fmt.Sprintf("pgbouncer-load-%d", u), map[string]any{"access_token": "at-" + randHex(8), "expires_in": 3600})
		}
		began := time.Now()
		for w := range workers {
			in := c.instances[w%len(c.instances)]
			wg.Go(func() {
				for i := range requests {
					user := fmt.Sprintf("pgbouncer-load-%d", (w+i)%users)
					var r result
					var err error
					if i%4 == 0 { // one write in four
						tok := "at-" + randHex(8)
						c.noteSecret(tok)
						r, err = c.do(http.MethodPut, in.base+tokensPath(user, c.provider), map[string]any{"access_token": tok, "expires_in": 3600})
					} else {
						r, err = in.getE(user)
					}
					if err != nil || r.status != http.StatusOK {
						mu.Lock()
						failed++
						if len(errs) < 5 {
							errs = append(errs, fmt.Sprintf("%s: %v %s", in.name, err, r))
						}
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		took := time.Since(began)
		t.Logf("through PgBouncer (exec): %d requests (1 in 4 a PUT) by %d workers on %d instances: %d errors in %s",
			workers*requests, workers, len(c.instances), failed, took.Round(time.Millisecond))
		if failed > 0 {
			t.Errorf("%d of %d requests failed, first: %s", failed, workers*requests, strings.Join(errs, "; "))
		}
	})

	t.Run("refresh", func(t *testing.T) {
		const user = "pgbouncer-refresh"
		g := c.fake.NewGrant()
		c.putGrant(t, user, g, 0) // expired
		r := c.instances[1].get(t, user)
		if r.status != http.StatusOK || r.token != c.fake.Access(g.id) {
			t.Fatalf("GET after expiry: %s; want the refreshed token", r)
		}
		if n := c.fake.Calls(g.id); n != 1 {
			t.Errorf("the provider got %d refresh calls, want 1", n)
		}
	})

	t.Run("exactly once across instances", func(t *testing.T) { exactlyOnce(t, c) })
}

// TestPgBouncerOtherQueryModes: the other modes that need no named
// prepared statement, cache_describe and simple_protocol, serve writes,
// reads from another instance and a refresh through PgBouncer too.
// describe_exec is left out on purpose: it binds the unnamed statement in
// a second round trip, which PgBouncer in transaction mode may send to
// another server connection (README: Poolers).
func TestPgBouncerOtherQueryModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cache_describe", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			direct := testdb.NewDSN(t)
			c := newCluster(t, options{instances: 2, dsn: direct, configure: throughPgBouncer(t, direct, mode)})
			for i := range 20 {
				user := fmt.Sprintf("mode-%d", i%4)
				c.put(t, user, map[string]any{"access_token": "at-" + randHex(8), "expires_in": 3600})
				if r := c.instances[i%2].get(t, user); r.status != http.StatusOK {
					t.Fatalf("GET %d through %s: %s", i, mode, r)
				}
			}
			g := c.fake.NewGrant()
			c.putGrant(t, "mode-refresh", g, 0)
			if r := c.instances[1].get(t, "mode-refresh"); r.status != http.StatusOK || r.token != c.fake.Access(g.id) || c.fake.Calls(g.id) != 1 {
				t.Fatalf("refresh through %s: %s, %d provider calls", mode, r, c.fake.Calls(g.id))
			}
		})
	}
}

// TestPgBouncerDefaultModeFails: pgx's default, cache_statement, prepares
// named statements once per client connection; PgBouncer 1.18 in
// transaction mode sends later statements to whichever server connection
// is free, which may lack them. Requests fail (500, or 503 when it is the
// read's audit event that fails), and the log says which setting fixes
// it. The first part counts what happens in ordinary traffic (how many
// fail varies with which server connection each statement reaches); the
// second makes the failure certain: PgBouncer's RECONNECT replaces every
// server connection while the instance's one client connection still
// holds its statements.
func TestPgBouncerDefaultModeFails(t *testing.T) {
	t.Parallel()
	direct := testdb.NewDSN(t)
	b := pgbouncer.Start(t, direct)
	c := newCluster(t, options{instances: 2, maxConns: 1, dsn: direct, configure: func(cfg *cli.Config) {
		cfg.Database.URL, cfg.Database.DirectURL = b.DSN(t, direct), direct // query_exec_mode: the default
	}})
	const rounds = 40
	failed := 0
	for i := range rounds {
		user := fmt.Sprintf("default-mode-%d", i%4)
		tok := "at-" + randHex(8)
		c.noteSecret(tok)
		if r, err := c.do(http.MethodPut, c.instances[i%2].base+tokensPath(user, c.provider), map[string]any{"access_token": tok, "expires_in": 3600}); err != nil || r.status != http.StatusOK {
			failed++
		}
		if r, err := c.instances[(i+1)%2].getE(user); err != nil || r.status != http.StatusOK {
			failed++
		}
	}
	t.Logf("through PgBouncer with the default query_exec_mode (cache_statement): %d of %d requests failed", failed, 2*rounds)

	// The instance's one client connection now holds prepared statements
	// (or, after a failure, statements pgx will DEALLOCATE first) for the
	// read; PgBouncer replaces every server connection, none of which has
	// them.
	in := c.instances[0]
	if _, err := in.getE("default-mode-0"); err != nil {
		t.Fatal(err)
	}
	b.Admin(t, "RECONNECT")
	r, err := in.getE("default-mode-0")
	if err != nil {
		t.Fatal(err)
	}
	// 500 when the read fails; 503 when the read's audit event does
	// (the audit store answers every failure as unavailable).
	if r.status != http.StatusInternalServerError && r.status != http.StatusServiceUnavailable {
		t.Fatalf("GET after PgBouncer replaced its server connections: %s; want it to fail (the cached prepared statements are gone)\n%s", r, in.logs.String())
	}
	if logs := in.logs.String(); !strings.Contains(logs, "set TOKENSTORE_DATABASE_QUERY_EXEC_MODE (database.query_exec_mode) to exec") {
		t.Errorf("the log does not say which setting fixes it:\n%s", logs)
	}
}

// TestPgBouncerTimeoutsWarning: PgBouncer drops the startup parameters
// that carry database.timeout to the server; an instance says so at
// start-up, naming what to set, instead of claiming a statement timeout
// the server does not apply. (TestThroughPgBouncer shows no warning once
// the database sets them.)
func TestPgBouncerTimeoutsWarning(t *testing.T) {
	t.Parallel()
	direct := testdb.NewDSN(t)
	c := newCluster(t, options{dsn: direct, configure: throughPgBouncer(t, direct, "exec")})
	logs := c.instances[0].logs.String()
	for _, want := range []string{"database timeouts not applied by the server", "statement_timeout is 0 ms, not 6000 ms",
		"idle_in_transaction_session_timeout is 0 ms, not 6000 ms", "ALTER ROLE CURRENT_USER SET statement_timeout = 6000;"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the start-up log lacks %q:\n%s", want, logs)
		}
	}
}
