// Package api_test drives the real HTTP server, wired by the same fx graph
// as `tokenstore serve`, over a real PostgreSQL: one database per test.
package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/tests/testlog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// callerAll holds every permission; callerWithout(p) holds all but p.
const callerAll = "all"

func callerWithout(p httpapi.Permission) string { return "no-" + string(p) }

// instance is one running tokenstore.
type instance struct {
	t       *testing.T
	base    string            // http://127.0.0.1:port
	creds   map[string]string // caller name -> bearer credential
	pool    *pgxpool.Pool     // raw access to the instance's database
	logs    *testlog.Buffer   // everything the instance logged
	app     *fx.App
	keyring *fernet.Keyring
	client  *http.Client
}

// setup starts an instance on a fresh database and stops it when t ends.
func setup(t *testing.T) *instance {
	t.Helper()
	dsn := testdb.NewDSN(t)
	key, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	inst := &instance{t: t, creds: map[string]string{}, logs: &testlog.Buffer{}}
	var callers []httpapi.Caller
	add := func(name string, perms []httpapi.Permission) {
		cred, hash, err := httpapi.NewCredential()
		if err != nil {
			t.Fatal(err)
		}
		h, err := httpapi.ParseCredentialHash(hash)
		if err != nil {
			t.Fatal(err)
		}
		callers = append(callers, httpapi.Caller{Name: name, CredentialHash: h, Permissions: perms})
		inst.creds[name] = cred
	}
	add(callerAll, httpapi.AllPermissions)
	for _, p := range httpapi.AllPermissions {
		var others []httpapi.Permission
		for _, o := range httpapi.AllPermissions {
			if o != p {
				others = append(others, o)
			}
		}
		add(callerWithout(p), others)
	}

	cfg := cli.Defaults()
	cfg.Database.URL = dsn
	cfg.Database.MaxConns = 8
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Keys = fernet.Config{Keys: []fernet.Key{key}}
	cfg.Callers = callers
	log := slog.New(slog.NewJSONHandler(inst.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var server *httpapi.Server
	var keyring *fernet.Keyring
	inst.app = cli.NewApp(cfg, log, fx.Populate(&server))
	if err := inst.app.Err(); err != nil {
		t.Fatalf("build app: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := inst.app.Start(ctx); err != nil {
		t.Fatalf("start app: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := inst.app.Stop(ctx); err != nil {
			t.Errorf("stop app: %v", err)
		}
	})
	keyring, err = fernet.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	inst.keyring = keyring
	inst.base = "http://" + server.Addr()
	inst.pool = testdb.Pool(t, dsn, nil)
	inst.client = &http.Client{Timeout: 30 * time.Second}
	return inst
}

// response is a finished HTTP exchange.
type response struct {
	*http.Response
	body []byte
}

// problem decodes a problem document body.
func (r response) problem(t *testing.T) httpapi.Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, r.body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	return p
}

// json decodes a JSON body into v.
func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// do sends a request as caller ("" for no credential) with body (nil, a
// string sent as is, or a value encoded as JSON). Every exchange is checked
// against openapi.yaml.
func (inst *instance) do(method, path, caller string, body any) response {
	inst.t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			inst.t.Fatal(err)
		}
	}
	if raw != nil {
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, inst.base+path, rd)
	if err != nil {
		inst.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if caller != "" {
		cred, ok := inst.creds[caller]
		if !ok {
			cred = caller // a raw (wrong) credential
		}
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := inst.client.Do(req)
	if err != nil {
		inst.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		inst.t.Fatal(err)
	}
	checkAgainstSpec(inst.t, req, raw, resp, out)
	return response{Response: resp, body: out}
}

// noSecretsInLogs fails t if any of secrets appears in the instance's log.
func (inst *instance) noSecretsInLogs(secrets ...string) {
	inst.t.Helper()
	logs := inst.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			inst.t.Errorf("the log contains token material %q", s)
		}
	}
}
