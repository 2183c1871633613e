package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestAuditList(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	repo := postgres.New(testdb.Pool(t, dsn, nil), postgres.Options{})
	events := []domain.AuditEvent{
		{Instance: "i1", Caller: "svc-a", Action: domain.AuditReadAccessToken, User: "alice", Provider: "gitlab", Status: 200, RequestID: "r1"},
		{Instance: "i1", Caller: "svc-b", Action: domain.AuditPutTokens, User: "bob", Provider: "github", Status: 200, RequestID: "r2"},
		{Instance: "i2", Caller: "", Action: domain.AuditDeleteTokens, User: "alice", Provider: "github", Status: 204, RequestID: ""},
	}
	if err := repo.RecordAuditEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TOKENSTORE_DATABASE_URL": dsn}
	for _, c := range []struct {
		args []string
		want []string // request ids, in order
	}{
		{nil, []string{"r1", "r2", ""}},
		{[]string{"--user", "alice"}, []string{"r1", ""}},
		{[]string{"--provider", "github"}, []string{"r2", ""}},
		{[]string{"--caller", "svc-b"}, []string{"r2"}},
		{[]string{"--caller", ""}, []string{""}},
		{[]string{"--action", "read_access_token"}, []string{"r1"}},
		// The service's own actions are accepted filters.
		{[]string{"--action", "refresh"}, nil},
		{[]string{"--action", "reauth_required"}, nil},
		{[]string{"--action", "reencrypt_batch"}, nil},
		{[]string{"--action", "import_batch"}, nil},
		{[]string{"--since", "1h", "--user", "alice"}, []string{"r1", ""}},
		{[]string{"--until", "2000-01-01T00:00:00Z"}, nil},
		{[]string{"--limit", "2"}, []string{"r1", "r2"}},
	} {
		args := append([]string{"audit", "list"}, c.args...)
		out, errOut, err := run(t, env, args...)
		if err != nil {
			t.Errorf("%v: %v; stderr %s", c.args, err, errOut)
			continue
		}
		var got []string
		for line := range strings.Lines(out) {
			var e map[string]any
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("%v: not a JSON line: %q", c.args, line)
			}
			for _, k := range []string{"time", "instance", "caller", "action", "user", "provider", "status", "code", "request_id", "count"} {
				if _, ok := e[k]; !ok {
					t.Errorf("%v: line %s lacks %s", c.args, line, k)
				}
			}
			got = append(got, e["request_id"].(string))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%v: listed %q, want %q", c.args, got, c.want)
		}
	}
}

// Every flag is read strictly: a value that means nothing is an error
// naming the flag, before the database is asked.
func TestAuditListRefusesWhatMeansNothing(t *testing.T) {
	t.Parallel()
	env := map[string]string{"TOKENSTORE_DATABASE_URL": "postgres://u@127.0.0.1:1/none?sslmode=disable"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "say list"},
		{[]string{"audit", "show"}, "say list"},
		{[]string{"audit", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"audit", "list", "--action", "read"}, `--action "read" is not one of`},
		{[]string{"audit", "list", "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"audit", "list", "--until", ""}, `--until ""`},
		{[]string{"audit", "list", "--since", "-5m"}, `--since "-5m"`},
		{[]string{"audit", "list", "--since", "1h", "--until", "2h"}, "--since must be before --until"},
		{[]string{"audit", "list", "--limit", "0"}, "--limit 0"},
		{[]string{"audit", "list", "--usr", "alice"}, "flag provided but not defined: -usr"},
	} {
		_, _, err := run(t, env, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
}
