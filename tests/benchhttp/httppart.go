package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
)

// Sentinels stand for the values a pgbench variable supplies: an argument
// equal to one is replaced by that variable in the script.
const (
	userSentinel         = "\x00user"
	idSentinel     int64 = -1
	afterSentinel  int64 = -2
	randomUserExpr       = "random(%d, %d)"
)

// side is one thing measured in every round: an instance under wrk, or
// pgbench running a script.
type side struct {
	label   string
	short   string // in the targets' lines
	measure func(ctx context.Context, d time.Duration) (outcome, error)
	rounds  []outcome
	script  *pgbenchScript // pgbench's sides only
}

// httpResult is the http part's measurements.
type httpResult struct {
	getDefaults, getAuditOff, getPgbench *side
	getCeiling                           *side    // the no-op HTTP server
	memory                               []string // each instance's RSS after the rounds
	putDefaults, putPgbench              *side
	seedTime                             time.Duration
	poolSize                             string
}

func (b *bench) httpPart(ctx context.Context) (*httpResult, error) {
	url, err := b.newDatabase(ctx, mainDatabase)
	if err != nil {
		return nil, err
	}
	key, err := fernet.GenerateKey()
	if err != nil {
		return nil, err
	}
	base := func() serverConfig {
		database := map[string]any{"url": url}
		if b.maxConns > 0 {
			database["max_conns"] = b.maxConns
		}
		cfg := serverConfig{
			"database":  database,
			"keys":      []string{key.Encode()},
			"callers":   []any{b.caller.entry},
			"providers": []any{map[string]any{"name": provider, "refresh": false}},
		}
		if b.profile {
			cfg["metrics"] = map[string]any{"addr": "127.0.0.1:0", "pprof": true}
		}
		return cfg
	}
	progress("starting tokenstore (defaults) and tokenstore (audit.mode off)")
	defaults, err := b.startServer(ctx, "tokenstore-defaults", base())
	if err != nil {
		return nil, err
	}
	off := base()
	off["audit"] = map[string]any{"mode": "off"}
	auditOff, err := b.startServer(ctx, "tokenstore-audit-off", off)
	if err != nil {
		return nil, err
	}

	progress("seeding %d users through PUT .../tokens", users)
	res := &httpResult{poolSize: poolSize(defaults.logPath)}
	if b.maxConns > 0 {
		res.poolSize += ", set by BENCH_MAX_CONNS"
	}
	t0 := time.Now()
	if err := b.seedUsers(ctx, defaults, provider); err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	res.seedTime = time.Since(t0)
	progress("seeded %d users in %s", users, res.seedTime.Round(time.Millisecond))
	get, put, err := b.httpScripts(ctx)
	if err != nil {
		return nil, err
	}

	// pgbench runs on a copy of the seeded database: its upserts write one
	// seeded row's ciphertexts under every user, which tokenstore rightly
	// refuses to decrypt (each value is bound to its row: 500
	// integrity_error). Each side then reads and writes a database with the
	// same history: the same seeding, then only its own writes. A database
	// is copied only while nothing is connected to it, so the instances
	// stop for the copy and start again (the warm-up follows).
	defaults.stop()
	auditOff.stop()
	if err := b.db.createDatabase(ctx, pgbenchDatabase, mainDatabase); err != nil {
		return nil, fmt.Errorf("copy the seeded database for pgbench: %w", err)
	}
	if defaults, err = b.startServer(ctx, "tokenstore-defaults", base()); err != nil {
		return nil, err
	}
	if auditOff, err = b.startServer(ctx, "tokenstore-audit-off", off); err != nil {
		return nil, err
	}
	getLua, putLua, err := b.writeWrkScripts()
	if err != nil {
		return nil, err
	}
	b.wrkEnv = []string{"BENCH_FIRST_USER=" + strconv.Itoa(firstUser), "BENCH_USERS=" + strconv.Itoa(users),
		"BENCH_PROVIDER=" + provider, "BENCH_CREDENTIAL=" + b.caller.credential}

	wrkSide := func(label, short string, in *server, lua string) *side {
		return &side{label: label, short: short, measure: func(ctx context.Context, d time.Duration) (outcome, error) {
			return b.wrk(ctx, in, lua, d)
		}}
	}
	pgbSide := func(label, short string, sc *pgbenchScript) *side {
		return &side{label: label, short: short, script: sc, measure: func(ctx context.Context, d time.Duration) (outcome, error) {
			return b.pgbench(ctx, sc, pgbenchDatabase, clients, d, 0)
		}}
	}
	res.getDefaults = wrkSide("tokenstore GET, defaults (audit fail_closed)", "GET (defaults: audit fail_closed)", defaults, getLua)
	res.getAuditOff = wrkSide("tokenstore GET, audit.mode off", "GET (audit off)", auditOff, getLua)
	res.getPgbench = pgbSide("pgbench GetAuthTokens (-M prepared)", "pgbench GetAuthTokens", get)
	noop, err := b.startNoop(ctx)
	if err != nil {
		return nil, err
	}
	res.getCeiling = wrkSide("HTTP ceiling: no-op Go net/http server", "HTTP ceiling", noop, getLua)
	res.putDefaults = wrkSide("tokenstore PUT, defaults (audit fail_closed)", "PUT (defaults: audit fail_closed)", defaults, putLua)
	res.putPgbench = pgbSide("pgbench PUT's transaction (-M prepared)", "pgbench PUT's transaction", put)
	sides := []*side{res.getDefaults, res.getPgbench, res.getAuditOff, res.getCeiling, res.putDefaults, res.putPgbench}

	if b.warmup > 0 {
		progress("warming up: each side once for %s, not counted", b.warmup)
		for _, s := range sides {
			if _, err := s.measure(ctx, b.warmup); err != nil {
				return nil, fmt.Errorf("warm-up of %s: %w", s.label, err)
			}
		}
	}
	for r := range b.rounds {
		order := sides
		if r%2 == 1 {
			order = reversed(sides)
		}
		for _, s := range order {
			progress("round %d/%d: %s for %s", r+1, b.rounds, s.label, b.duration)
			o, err := s.measure(ctx, b.duration)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, s.label, err)
			}
			s.rounds = append(s.rounds, o)
		}
	}
	if b.profile {
		for _, in := range []struct {
			s   *server
			lua string
		}{{auditOff, getLua}, {defaults, getLua}} {
			if err := b.profileGET(ctx, in.s, in.lua); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range []*server{defaults, auditOff} {
		res.memory = append(res.memory, fmt.Sprintf("%s: %s", s.name, memoryOf(s.pid())))
	}
	for _, s := range []*server{defaults, auditOff, noop} {
		s.stop()
	}
	return res, nil
}

// profileGET runs wrk's GET against s for the measurement's duration while
// taking a CPU profile of s (net/http/pprof on its metrics listener),
// writes it to the run's directory and prints its top functions.
func (b *bench) profileGET(ctx context.Context, s *server, lua string) error {
	addr, err := metricsAddr(s.logPath)
	if err != nil {
		return err
	}
	progress("profiling %s under GET for %s", s.name, b.duration)
	path := filepath.Join(b.dir, s.name+".get.pprof")
	got := make(chan error, 1)
	go func() {
		secs := strconv.Itoa(max(int(b.duration.Seconds())-1, 1))
		resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=" + secs)
		if err != nil {
			got <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			got <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		got <- errors.Join(err, f.Close())
	}()
	if _, err := b.wrk(ctx, s, lua, b.duration); err != nil {
		return err
	}
	if err := <-got; err != nil {
		return fmt.Errorf("profile of %s: %w", s.name, err)
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=35", b.bin, path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof: %w\n%s", err, out)
	}
	fmt.Printf("CPU profile of %s under GET (%s):\n%s\n", s.name, path, out)
	return nil
}

// memoryOf is a process's resident memory now and at its peak
// (/proc/PID/status: VmRSS, VmHWM), for the report.
func memoryOf(pid int) string {
	st, err := procStatus(pid, "VmRSS", "VmHWM")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return "RSS " + mib(st[0]) + ", peak " + mib(st[1])
}

// metricsAddr is the address the instance's metrics listener bound
// (metrics.addr 127.0.0.1:0), from its start-up log.
func metricsAddr(logPath string) (string, error) {
	body, err := os.ReadFile(logPath)
	if err != nil {
		return "", err
	}
	var addr string
	for line := range strings.SplitSeq(string(body), "\n") {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Addr != "" && strings.Contains(rec.Msg, "metrics") {
			addr = rec.Addr
		}
	}
	if addr == "" {
		return "", fmt.Errorf("no metrics listener address in %s", logPath)
	}
	return addr, nil
}

func reversed[T any](xs []T) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[len(xs)-1-i] = x
	}
	return out
}

// httpScripts makes pgbench's GET and PUT scripts from sqlc's methods,
// with the arguments tokenstore sent while seeding: a seeded row's key id,
// ciphertexts and expiries, and a PUT's audit event as tokenstore wrote it.
func (b *bench) httpScripts(ctx context.Context) (get, put *pgbenchScript, err error) {
	conn, err := pgx.Connect(ctx, b.db.url(superuser, mainDatabase))
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM auth_tokens").Scan(&n); err != nil {
		return nil, nil, err
	}
	if n != users {
		return nil, nil, fmt.Errorf("%w: %d rows after seeding %d users", errInvalid, n, users)
	}
	var row db.UpsertAuthTokensParams
	var exp, rexp, obtained time.Time
	if err := conn.QueryRow(ctx, `SELECT key_id, access_token, refresh_token, access_token_expires_at,
			refresh_token_expires_at, access_token_obtained_at FROM auth_tokens WHERE user_id = $1 AND provider = $2`,
		strconv.Itoa(firstUser), provider).Scan(&row.KeyID, &row.AccessToken, &row.RefreshToken, &exp, &rexp, &obtained); err != nil {
		return nil, nil, fmt.Errorf("read a seeded row: %w", err)
	}
	audit, err := auditEvent(ctx, conn, domain.AuditPutTokens)
	if err != nil {
		return nil, nil, err
	}

	random := fmt.Sprintf(randomUserExpr, firstUser, firstUser+users-1)
	get = newScript("get")
	get.set("uid", random)
	if err := get.add(mustRecord(func(q *db.Queries, c db.DBTX) {
		_, _ = q.GetAuthTokens(ctx, c, db.GetAuthTokensParams{UserID: userSentinel, Provider: provider})
	}), map[any]string{userSentinel: "uid"}); err != nil {
		return nil, nil, err
	}

	// What adapters/postgres PutAuthTokens sends with the default settings
	// (events on, audit fail_closed) for a PUT alone: BEGIN, UpsertAuthTokens
	// with the default event policy, InsertAuditEvents of the one event,
	// COMMIT. Under load it writes most PUTs with its group commit
	// (UpsertAuthTokensBatch, many rows with their events and audit events
	// in one statement); pgbench runs the single PUT, and the statement
	// counts of every round check that tokenstore still writes each PUT's
	// row and events once, alone or in a batch (report.go coalesced).
	policy := domain.EventPolicy{}
	row.UserID, row.Provider = userSentinel, provider
	row.AccessTokenExpiresAt, row.RefreshTokenExpiresAt, row.AccessTokenObtainedAt = &exp, &rexp, &obtained
	row.RecoveredKind, row.StoredKind = string(domain.EventTokensRecovered), string(domain.EventTokensStored)
	row.RecordRecovered, row.RecordStored = policy.Allows(domain.EventTokensRecovered), policy.Allows(domain.EventTokensStored)
	put = newScript("put")
	put.set("uid", random)
	put.plain("BEGIN")
	if err := put.add(mustRecord(func(q *db.Queries, c db.DBTX) { _, _ = q.UpsertAuthTokens(ctx, c, row) }),
		map[any]string{userSentinel: "uid"}); err != nil {
		return nil, nil, err
	}
	if err := put.add(mustRecord(func(q *db.Queries, c db.DBTX) { _, _ = q.InsertAuditEvents(ctx, c, audit) }), nil); err != nil {
		return nil, nil, err
	}
	put.plain("COMMIT")
	return get, put, nil
}

// auditEvent is the parameters of InsertAuditEvents for one event of
// action, copied from the first such event tokenstore wrote.
func auditEvent(ctx context.Context, conn *pgx.Conn, action domain.AuditAction) (db.InsertAuditEventsParams, error) {
	var e struct {
		instance, caller, user, provider, code, requestID string
		status                                            int32
		count                                             int64
	}
	err := conn.QueryRow(ctx, `SELECT instance, caller, user_id, provider, status, code, request_id, count
		FROM audit_events WHERE action = $1 ORDER BY id LIMIT 1`, string(action)).
		Scan(&e.instance, &e.caller, &e.user, &e.provider, &e.status, &e.code, &e.requestID, &e.count)
	if err != nil {
		return db.InsertAuditEventsParams{}, fmt.Errorf("read an audit event %s: %w", action, err)
	}
	return db.InsertAuditEventsParams{
		Instances: []string{e.instance}, Callers: []string{e.caller}, Actions: []string{string(action)},
		UserIds: []string{e.user}, Providers: []string{e.provider}, Statuses: []int32{e.status},
		Codes: []string{e.code}, RequestIds: []string{e.requestID}, Counts: []int64{e.count},
	}, nil
}

// writeWrkScripts copies the embedded wrk scripts into the run's directory.
func (b *bench) writeWrkScripts() (get, put string, err error) {
	for _, name := range []string{"get.lua", "put.lua"} {
		body, err := wrkScripts.ReadFile("wrk/" + name)
		if err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(b.dir, name), body, 0o644); err != nil {
			return "", "", err
		}
	}
	return filepath.Join(b.dir, "get.lua"), filepath.Join(b.dir, "put.lua"), nil
}
