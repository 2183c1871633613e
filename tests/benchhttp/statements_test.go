package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/db"
)

func TestRecordTakesTheTextFromSqlc(t *testing.T) {
	st, err := record(func(q *db.Queries, c db.DBTX) {
		_, _ = q.GetAuthTokens(context.Background(), c, db.GetAuthTokensParams{UserID: "u", Provider: "p"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.name != "GetAuthTokens" || !strings.HasPrefix(st.sql, "SELECT ") || strings.Contains(st.sql, "-- name") ||
		!strings.Contains(st.sql, "WHERE user_id = $1 AND provider = $2") {
		t.Errorf("recorded %q: %q", st.name, st.sql)
	}
	if len(st.args) != 2 || st.args[0] != "u" || st.args[1] != "p" {
		t.Errorf("args %v", st.args)
	}
	if _, err := record(func(*db.Queries, db.DBTX) {}); err == nil {
		t.Error("a call that sends nothing recorded without error")
	}
}

func TestScriptReplacesEveryPlaceholder(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 600000, time.UTC)
	p := db.UpsertAuthTokensParams{UserID: userSentinel, Provider: "gitlab", KeyID: "k1",
		AccessToken: []byte{0xde, 0xad}, RefreshToken: []byte{0xbe, 0xef},
		AccessTokenExpiresAt: &exp, RefreshTokenExpiresAt: &exp, AccessTokenObtainedAt: &exp,
		RecoveredKind: "tokens.recovered", StoredKind: "tokens.stored", RecordRecovered: true, RecordStored: true}
	sc := newScript("put")
	sc.set("uid", "random(1, 10)")
	sc.plain("BEGIN")
	if err := sc.add(mustRecord(func(q *db.Queries, c db.DBTX) { _, _ = q.UpsertAuthTokens(context.Background(), c, p) }),
		map[any]string{userSentinel: "uid"}); err != nil {
		t.Fatal(err)
	}
	sc.plain("COMMIT")
	text := sc.text()
	if placeholder.MatchString(text) {
		t.Errorf("a $n placeholder is left:\n%s", text)
	}
	if strings.Count(text, ":uid::text") != 3 {
		t.Errorf("the user should vary in all three places of the upsert:\n%s", text)
	}
	if !strings.Contains(text, "/* sqlc UpsertAuthTokens */ WITH prior AS (") || !strings.HasSuffix(text, "COMMIT;\n") {
		t.Errorf("script:\n%s", text)
	}
	defs := strings.Join(sc.defineArgs(), " ")
	for _, want := range []string{`=gitlab`, `=\xdead`, `=\xbeef`, `=2030-01-02 03:04:05.0006Z`, `=tokens.stored`, `=true`} {
		if !strings.Contains(defs, want) {
			t.Errorf("defines %s lack %s", defs, want)
		}
	}
	if strings.Count(defs, "=true") != 1 {
		t.Errorf("equal constants should share one variable: %s", defs)
	}
	if got := strings.Join(sc.names, ","); got != "BEGIN,UpsertAuthTokens,COMMIT" {
		t.Errorf("names %s", got)
	}
}

func TestScriptRefusesWhatPgbenchCannotRun(t *testing.T) {
	get := mustRecord(func(q *db.Queries, c db.DBTX) {
		_, _ = q.GetAuthTokens(context.Background(), c, db.GetAuthTokensParams{UserID: userSentinel, Provider: "p"})
	})
	if err := newScript("x").add(get, map[any]string{userSentinel: "uid"}); err == nil || !strings.Contains(err.Error(), `\set`) {
		t.Errorf("a variable the script does not set: err %v", err)
	}
	sc := newScript("x")
	sc.set("uid", "1")
	if err := sc.add(get, map[any]string{"no such argument": "uid"}); err == nil || !strings.Contains(err.Error(), "sentinel") {
		t.Errorf("a sentinel no argument matches: err %v", err)
	}
	null := db.UpsertAuthTokensParams{UserID: "u", Provider: "p", KeyID: "k", AccessToken: []byte{1}}
	up := mustRecord(func(q *db.Queries, c db.DBTX) { _, _ = q.UpsertAuthTokens(context.Background(), c, null) })
	if err := newScript("x").add(up, nil); err == nil || !strings.Contains(err.Error(), "NULL") {
		t.Errorf("a NULL argument: err %v", err)
	}
	// Text that pgbench would read as a variable reference is refused.
	if err := newScript("x").add(statement{name: "Q", sql: "SELECT ':one'"}, nil); err == nil || !strings.Contains(err.Error(), ":one") {
		t.Errorf("a stray :name: err %v", err)
	}
}

func TestPgbenchVariables(t *testing.T) {
	got := strings.Join(pgbenchVariables("SELECT :a::text, :b_2, ::int, x:::c, 1:2, :_z"), ",")
	if got != "a,b_2,_z" {
		t.Errorf("variables %s, want a,b_2,_z", got)
	}
}

func TestPgText(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{"a", "a"}, {[]byte{0, 255}, `\x00ff`}, {false, "false"}, {int32(-3), "-3"}, {int64(7), "7"},
		{[]string{`a"b`, `c\d`, ""}, `{"a\"b","c\\d",""}`}, {[]int32{1, 2}, "{1,2}"}, {[]int64{}, "{}"},
		{time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), "2030-01-02 02:04:05Z"},
	} {
		if got, err := pgText(c.in); err != nil || got != c.want {
			t.Errorf("pgText(%#v) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := pgText(3.5); err == nil {
		t.Error("an unknown type got a text form")
	}
}

func TestStatementName(t *testing.T) {
	for q, want := range map[string]string{
		"-- name: GetAuthTokens :one\nSELECT 1": "GetAuthTokens",
		"/* sqlc GetAuthTokens */ SELECT $1":    "GetAuthTokens",
		"begin":                                 "BEGIN",
		"COMMIT":                                "COMMIT",
		"SELECT pg_stat_statements_reset()":     "SELECT",
	} {
		if got := statementName(q); got != want {
			t.Errorf("statementName(%q) = %q, want %q", q, got, want)
		}
	}
}
