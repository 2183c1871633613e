package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenstore/tokenstore/db"
)

// The pgbench scripts are made from sqlc's generated methods, never typed
// by hand, so they cannot drift from what tokenstore sends: a recorder
// stands in for the connection (db.DBTX), a generated method is called
// with the parameters tokenstore would give it, and the recorder keeps the
// statement text and arguments the method hands to pgx. (db's query
// constants are unexported; calling the method is also what proves the
// argument order.) This is the only package besides adapters/postgres that
// imports db (tests/architecture allows it): it reads statements, it
// never runs them.

// statement is one statement as a sqlc method sends it.
type statement struct {
	name string // the sqlc query name ("GetAuthTokens")
	sql  string // the text, $1.. placeholders, without sqlc's "-- name:" line
	args []any  // the arguments, in placeholder order
}

// errRecorded ends a generated method once its statement is recorded.
var errRecorded = errors.New("recorded, not sent")

// recorder is a db.DBTX that sends nothing and keeps the one statement a
// generated method hands it.
type recorder struct{ got []statement }

func (r *recorder) keep(sql string, args []any) {
	r.got = append(r.got, statement{sql: sql, args: slices.Clone(args)})
}

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.keep(sql, args)
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.keep(sql, args)
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.keep(sql, args)
	return errRow{}
}

func (r *recorder) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	panic("benchhttp: batch methods are not recorded")
}

type errRow struct{}

func (errRow) Scan(...any) error { return errRecorded }

var sqlcName = regexp.MustCompile(`^-- name: (\w+) :\w+\n`)

// record calls one generated method on a recorder and returns the
// statement it sent. call must call exactly one method.
func record(call func(q *db.Queries, conn db.DBTX)) (statement, error) {
	var r recorder
	call(db.New(), &r)
	if len(r.got) != 1 {
		return statement{}, fmt.Errorf("recorded %d statements, want 1", len(r.got))
	}
	st := r.got[0]
	m := sqlcName.FindStringSubmatch(st.sql)
	if m == nil {
		return statement{}, fmt.Errorf("statement does not start with sqlc's \"-- name:\" line: %.60q", st.sql)
	}
	st.name, st.sql = m[1], strings.TrimSpace(st.sql[len(m[0]):])
	return st, nil
}

// mustRecord is record for the fixed calls of this program, whose failure
// is a bug here.
func mustRecord(call func(q *db.Queries, conn db.DBTX)) statement {
	st, err := record(call)
	if err != nil {
		panic(err)
	}
	return st
}

// pgbenchScript is a pgbench custom script (-f) and the constants it uses
// (-D NAME=VALUE): pgbench's \set makes only numbers, so every other
// argument is a variable defined on the command line.
type pgbenchScript struct {
	name    string
	lines   []string
	defines map[string]string // variable -> value, as pgbench gets them
	byValue map[string]string // value -> variable, so equal constants share one
	vars    map[string]bool   // variables the script sets with \set
	names   []string          // the sqlc names of its statements, in order, repeats included
}

func newScript(name string) *pgbenchScript {
	return &pgbenchScript{name: name, defines: map[string]string{}, byValue: map[string]string{}, vars: map[string]bool{}}
}

// set adds a \set meta-command: variable = pgbench expression.
func (s *pgbenchScript) set(variable, expr string) {
	s.vars[variable] = true
	s.lines = append(s.lines, fmt.Sprintf(`\set %s %s`, variable, expr))
}

// plain adds a statement that takes no arguments (BEGIN, COMMIT, SET). pgx
// sends these with the simple protocol; pgbench -M prepared prepares them:
// one round trip each (but see SetLockTimeoutSQL in reencrypt.go). It is
// named as pg_stat_statements' text will be (statementName: its first
// word).
func (s *pgbenchScript) plain(sql string) {
	s.names = append(s.names, statementName(sql))
	s.lines = append(s.lines, sql+";")
}

var placeholder = regexp.MustCompile(`\$(\d+)`)

// add adds st with each placeholder $n replaced by a pgbench variable:
// vary[arg] when the argument equals a key of vary (a sentinel standing for
// a \set variable, such as a random user), else a constant holding the
// argument as PostgreSQL's text form. pgbench numbers every occurrence of a
// variable as a parameter of its own, so a statement that repeats $1 is
// prepared with more (equal) parameters than pgx binds: the same statement
// and plan, a few more bytes on the wire.
func (s *pgbenchScript) add(st statement, vary map[any]string) error {
	var problem error
	used := map[any]bool{}
	sql := placeholder.ReplaceAllStringFunc(st.sql, func(p string) string {
		n, _ := strconv.Atoi(p[1:])
		if n < 1 || n > len(st.args) {
			problem = cmp.Or(problem, fmt.Errorf("%s: $%d has no argument (%d recorded)", st.name, n, len(st.args)))
			return p
		}
		arg := st.args[n-1]
		switch arg.(type) {
		case string, int64, int32: // comparable: may be a sentinel
			if v, ok := vary[arg]; ok {
				used[arg] = true
				if !s.vars[v] {
					problem = cmp.Or(problem, fmt.Errorf("%s: $%d varies by %s, which the script does not \\set", st.name, n, v))
				}
				return ":" + v
			}
		}
		text, err := pgText(arg)
		if err != nil {
			problem = cmp.Or(problem, fmt.Errorf("%s: $%d: %w", st.name, n, err))
			return p
		}
		return ":" + s.constant(text)
	})
	if problem != nil {
		return problem
	}
	for arg, v := range vary {
		if !used[arg] {
			return fmt.Errorf("%s: no argument is the sentinel for %s: the statement's parameters changed", st.name, v)
		}
	}
	// pgbench reads ":name" anywhere in the text as a variable (it does not
	// know SQL's quoting): every one must be ours.
	for _, v := range pgbenchVariables(sql) {
		if _, defined := s.defines[v]; !defined && !s.vars[v] {
			return fmt.Errorf("%s: the text refers to :%s, which is not a variable of the script: pgbench would refuse it", st.name, v)
		}
	}
	// A C-style comment names the statement in pg_stat_statements (pgbench
	// would read a "--" line's ":one" as a variable); it changes nothing
	// PostgreSQL plans or runs.
	s.names = append(s.names, st.name)
	s.lines = append(s.lines, fmt.Sprintf("/* sqlc %s */ %s;", st.name, sql))
	return nil
}

func (s *pgbenchScript) constant(text string) string {
	if v, ok := s.byValue[text]; ok {
		return v
	}
	v := fmt.Sprintf("c%d", len(s.defines)+1)
	s.defines[v], s.byValue[text] = text, v
	return v
}

// text is the script file's content.
func (s *pgbenchScript) text() string {
	return "-- " + s.name + ": generated by tests/benchhttp from sqlc's db package; not edited by hand\n" +
		strings.Join(s.lines, "\n") + "\n"
}

// defineArgs are the -D arguments, sorted by variable.
func (s *pgbenchScript) defineArgs() []string {
	vars := make([]string, 0, len(s.defines))
	for v := range s.defines {
		vars = append(vars, v)
	}
	slices.Sort(vars)
	out := make([]string, 0, 2*len(vars))
	for _, v := range vars {
		out = append(out, "-D", v+"="+s.defines[v])
	}
	return out
}

// pgbenchVariables lists the ":name" references in sql as pgbench's
// parseVariable finds them (a colon, then a letter or underscore, then
// letters, digits or underscores; "::" is a cast, not a variable).
func pgbenchVariables(sql string) []string {
	var out []string
	for i := 0; i < len(sql); i++ {
		if sql[i] != ':' {
			continue
		}
		if i+1 < len(sql) && sql[i+1] == ':' {
			for i+1 < len(sql) && sql[i+1] == ':' {
				i++
			}
			continue
		}
		j := i + 1
		for j < len(sql) && (sql[j] == '_' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' ||
			j > i+1 && sql[j] >= '0' && sql[j] <= '9') {
			j++
		}
		if j > i+1 {
			out = append(out, sql[i+1:j])
		}
		i = j - 1
	}
	return out
}

// pgText is v as PostgreSQL's text input reads it (pgbench sends every
// parameter as text; the server infers the types from the statement, as it
// does for pgx's). NULL cannot be given to pgbench with -D, so it is
// refused rather than turned into something else.
func pgText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		if x == nil {
			return "", errors.New("NULL bytea cannot be passed to pgbench")
		}
		return `\x` + hex.EncodeToString(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.999999Z07:00"), nil
	case *time.Time:
		if x == nil {
			return "", errors.New("NULL timestamptz cannot be passed to pgbench")
		}
		return pgText(*x)
	case []string:
		quoted := make([]string, len(x))
		for i, e := range x {
			quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(e) + `"`
		}
		return "{" + strings.Join(quoted, ",") + "}", nil
	case []int32:
		return intArray(x), nil
	case []int64:
		return intArray(x), nil
	default:
		return "", fmt.Errorf("no text form for %T here: teach pgText this type", v)
	}
}

func intArray[T int32 | int64](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatInt(int64(x), 10)
	}
	return "{" + strings.Join(parts, ",") + "}"
}
