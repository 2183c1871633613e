package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// startBound is the correctness bound on failing start-up: the default
// database.timeout plus generous slack.
const startBound = 30 * time.Second

// commandsThatConnect are every command that opens the database, each with
// what it needs besides the database.
var commandsThatConnect = [][]string{
	{"serve"},
	{"migrate", "up"},
	{"keys", "list"},
	{"import", "openhands", "--source-dsn-env", "SOURCE_DSN", "--jwt-secret-env", "JWT_SECRET"},
}

// baseEnv is a configuration every command accepts, but for the database.
func baseEnv(t *testing.T, databaseURL string) map[string]string {
	t.Helper()
	_, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	callers, err := json.Marshal([]map[string]any{{
		"name": "ops", "credential_hash": hash, "permissions": httpapi.AllPermissions,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"TOKENSTORE_DATABASE_URL": databaseURL,
		"TOKENSTORE_KEYS":         servicetest.NewKey(t).Encode(),
		"TOKENSTORE_CALLERS":      string(callers),
		"TOKENSTORE_HTTP_ADDR":    "127.0.0.1:0",
		"TOKENSTORE_LOG_LEVEL":    "warn", // the start-up INFO line is not part of the failure
		"TOKENSTORE_LOG_FORMAT":   "text",
		"SOURCE_DSN":              "postgres://oh@127.0.0.1:1/openhands",
		"JWT_SECRET":              "jwt-secret",
	}
}

// runCommand runs args in-process as main does and returns what main
// prints on stderr: the log lines, then "tokenstore: " and the error.
func runCommand(t *testing.T, env map[string]string, args ...string) (stderr string, took time.Duration) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*startBound)
	defer cancel()
	start := time.Now()
	err := cli.Run(ctx, args, cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }})
	took = time.Since(start)
	if err == nil {
		t.Fatalf("%s succeeded; stdout:\n%s", strings.Join(args, " "), out.String())
	}
	fmt.Fprintln(&errOut, "tokenstore:", err)
	return errOut.String(), took
}

// withURL returns the container's DSN for database with user info and port
// changed.
func withURL(t *testing.T, database string, change func(u *url.URL)) string {
	t.Helper()
	u, err := url.Parse(testdb.DSNFor(database))
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(u)
	}
	return u.String()
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestStartupFailsWithOneLine: a wrong password, a missing database, a
// closed port and a frozen server each fail every command that connects,
// within the bound, with exactly one line naming the setting and what
// PostgreSQL said, and never the password.
func TestStartupFailsWithOneLine(t *testing.T) {
	host := withURL(t, "postgres", func(u *url.URL) {})
	u, _ := url.Parse(host)
	server := u.Host
	closed := closedPort(t)
	const prefix = "tokenstore: cannot use the PostgreSQL database at "
	const setting = " (TOKENSTORE_DATABASE_URL / database.url): "
	cases := []struct {
		name, url, want string
		pause           bool
	}{
		{"wrong password", withURL(t, "postgres", func(u *url.URL) { u.User = url.UserPassword("tokenstore", "wrong-pw-9c") }),
			prefix + server + ` database "postgres"` + setting + `password authentication failed for user "tokenstore" (SQLSTATE 28P01)`, false},
		{"missing database", withURL(t, "no_such_db", nil),
			prefix + server + ` database "no_such_db"` + setting + `database "no_such_db" does not exist (SQLSTATE 3D000)`, false},
		{"closed port", withURL(t, "postgres", func(u *url.URL) { u.Host = closed }),
			prefix + closed + ` database "postgres"` + setting + "connection refused", false},
		{"frozen server", withURL(t, "postgres", nil),
			prefix + server + ` database "postgres"` + setting + "no answer within 6s (the server is down, frozen or unreachable)", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pause {
				docker(t, "pause")
				defer docker(t, "unpause")
			}
			for _, args := range commandsThatConnect {
				got, took := runCommand(t, baseEnv(t, tc.url), args...)
				if got != tc.want+"\n" {
					t.Errorf("%s printed:\n%s\nwant exactly:\n%s", args[0], got, tc.want)
				}
				if took > startBound {
					t.Errorf("%s failed after %s, beyond %s", args[0], took, startBound)
				}
				if strings.Contains(got, "wrong-pw-9c") || strings.Contains(got, "tokenstore-test") {
					t.Errorf("%s printed a password: %s", args[0], got)
				}
			}
		})
	}
}

// TestBusyPortFailsWithOneLine: serve on a port another process holds
// fails with one line naming the setting.
func TestBusyPortFailsWithOneLine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env := baseEnv(t, testdb.NewDSN(t))
	env["TOKENSTORE_HTTP_ADDR"] = l.Addr().String()
	got, _ := runCommand(t, env, "serve")
	want := "tokenstore: cannot listen on " + l.Addr().String() + " (TOKENSTORE_HTTP_ADDR / http.addr): address already in use\n"
	if got != want {
		t.Errorf("serve printed:\n%s\nwant exactly:\n%s", got, want)
	}
}
