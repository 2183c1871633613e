// Package api_test drives the real HTTP server, wired by the same fx graph
// as `tokenstore serve`, over a real PostgreSQL: one database per test.
package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
	"github.com/tokenstore/tokenstore/tests/testlog"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// callerAll holds every permission; callerWithout(p) holds all but p.
const callerAll = servicetest.CallerAll

var callerWithout = servicetest.CallerWithout

// instance is one running tokenstore, seen the way the tests use it.
type instance struct {
	t       *testing.T
	base    string            // http://127.0.0.1:port
	creds   map[string]string // caller name -> bearer credential
	pool    *pgxpool.Pool     // raw access to the instance's database
	logs    *testlog.Buffer   // everything the instance logged
	app     *servicetest.Instance
	keyring *fernet.Keyring
	client  *http.Client
	cluster *servicetest.Cluster
}

// setup starts an instance on a fresh database and stops it when t ends.
func setup(t *testing.T) *instance {
	t.Helper()
	c := servicetest.Start(t, servicetest.Options{})
	in := c.Instances[0]
	return &instance{
		t: t, base: in.URL, creds: c.Credentials, pool: c.DB, logs: in.Logs, app: in,
		keyring: c.Keyring, client: &http.Client{Timeout: 30 * time.Second}, cluster: c,
	}
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

// noSecretsInLogs fails t if any of secrets appears in the instance's log
// now or by the time the test ends.
func (inst *instance) noSecretsInLogs(secrets ...string) {
	inst.t.Helper()
	inst.cluster.AddSecrets(secrets...)
	inst.cluster.CheckLogs(inst.t)
}
