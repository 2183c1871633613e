package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// report is what the run prints: the measurements, the checks of the run
// itself (does pgbench run what tokenstore sends?), and issue 14's targets.
type report struct {
	settings
	start                time.Time
	elapsed              time.Duration
	load                 string
	cpus                 int
	postgres, tokenstore string
	http                 *httpResult
	storm                *stormResult
	reenc                *reencResult
	memory               *memoryResult

	err    error // the run did not finish
	lines  []string
	missed int
	checks int // checks of the run that failed
}

func (r *report) failed() bool { return r.err != nil || r.missed > 0 || r.checks > 0 }

func (r *report) printf(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *report) print(w io.Writer) {
	r.lines, r.missed, r.checks = nil, 0, 0
	r.printf("tokenstore bench:http: %s, PostgreSQL %s; %d CPUs; load average %s at the start, %s at the end",
		r.tokenstore, r.postgres, r.cpus, r.load, loadAverage())
	r.printf("Absolute figures depend on what else the machine runs (the \"other\" CPU column); compare the ratios, measured in the same run.")
	var targets []target
	if r.http != nil {
		targets = append(targets, r.printHTTP()...)
	}
	if r.storm != nil {
		targets = append(targets, r.printStorm()...)
	}
	if r.reenc != nil {
		r.printReencrypt()
	}
	if r.memory != nil {
		targets = append(targets, r.printMemory()...)
	}
	r.printf("")
	r.printf("== Targets (issue 14) ==")
	for _, t := range targets {
		verdict := "met"
		if !t.met {
			verdict = "MISSED"
			r.missed++
		}
		r.printf("  %-58s %-28s target %-10s %s", t.what, t.got, t.want, verdict)
	}
	for _, p := range allParts {
		if !slices.Contains(r.parts, p) {
			r.printf("  (%s not run: BENCH_ONLY)", p)
		}
	}
	r.printf("")
	switch {
	case r.err != nil:
		r.printf("bench:http: THE RUN DID NOT FINISH: %v", r.err)
	case r.checks > 0:
		r.printf("bench:http: %d CHECK(S) OF THE RUN FAILED (see CHECK above): its ratios do not compare what they claim to", r.checks)
	case r.missed > 0:
		r.printf("bench:http: %d of %d targets MISSED (exit status 1)", r.missed, len(targets))
	default:
		r.printf("bench:http: every target met (%d)", len(targets))
	}
	r.printf("bench:http: took %s", r.elapsed.Round(time.Second))
	fmt.Fprintln(w, strings.Join(r.lines, "\n"))
}

type target struct {
	what, got, want string
	met             bool
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (s *side) each(f func(outcome) float64) []float64 {
	out := make([]float64, len(s.rounds))
	for i, o := range s.rounds {
		out[i] = f(o)
	}
	return out
}

func (s *side) opsPerSec() float64 {
	return median(s.each(func(o outcome) float64 { return o.opsPerSec }))
}
func (s *side) p50() time.Duration {
	return time.Duration(median(s.each(func(o outcome) float64 { return float64(o.p50) })))
}
func (s *side) p99() time.Duration {
	return time.Duration(median(s.each(func(o outcome) float64 { return float64(o.p99) })))
}

func (s *side) cpu() (cpuUse, int64) {
	var u cpuUse
	var ops int64
	for _, o := range s.rounds {
		u, ops = u.add(o.cpu), ops+o.ops
	}
	return u, ops
}

// statementsPerOp is what the side sent per operation over all rounds.
func (s *side) statementsPerOp() map[string]float64 {
	calls := map[string]int64{}
	var ops int64
	for _, o := range s.rounds {
		ops += o.ops
		for k, v := range o.statements {
			calls[k] += v
		}
	}
	out := map[string]float64{}
	for k, v := range calls {
		if ops > 0 {
			out[k] = float64(v) / float64(ops)
		}
	}
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func thousands(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *report) printHTTP() []target {
	h := r.http
	r.printf("")
	r.printf("Setup: %d users seeded through the API in %s; %d connections per load generator; %d round(s) × %s, interleaved (order reversed every other round), after a %s warm-up of each side",
		users, h.seedTime.Round(time.Millisecond), clients, len(h.getPgbench.rounds), r.duration, r.warmup)
	r.printf("ops/s, p50 and p99: the median of the rounds; a ratio below: the median of the rounds' ratios")
	r.printf("tokenstore: the built binary with its defaults (%s), one instance per row; provider %q declared store-only; request log (JSON) to a file", h.poolSize, provider)
	r.printf("PostgreSQL: a local cluster on 127.0.0.1 with the default settings (fsync on, synchronous_commit on, shared_buffers 128MB), pg_stat_statements loaded")
	groups := []struct {
		title string
		sides []*side
	}{
		{"GET a valid token (random user of the seeded set)", []*side{h.getDefaults, h.getAuditOff, h.getPgbench, h.getCeiling}},
		{"PUT (store) tokens (random user of the seeded set)", []*side{h.putDefaults, h.putPgbench}},
	}
	for _, g := range groups {
		r.printf("")
		r.printf("== %s ==", g.title)
		r.printf("  %-46s %9s %9s %9s   %s", "", "ops/s", "p50", "p99", "ops/s by round")
		for _, s := range g.sides {
			var rounds []string
			for _, o := range s.rounds {
				rounds = append(rounds, thousands(o.opsPerSec))
			}
			r.printf("  %-46s %9s %9s %9s   %s", s.label, thousands(s.opsPerSec()), ms(s.p50()), ms(s.p99()), strings.Join(rounds, " "))
		}
		r.printf("  CPU over all rounds: share of the machine (%d CPUs × wall time), and CPU time per operation", r.cpus)
		r.printf("  %-46s %8s %9s %9s %7s %6s   %s", "", "server", "postgres", "load gen", "other", "idle", "µs/op: server, postgres, load gen")
		for _, s := range g.sides {
			u, ops := s.cpu()
			pct := func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x/u.capacity) }
			perOp := func(x float64) string { return fmt.Sprintf("%.0f", x/float64(max(ops, 1))*1e6) }
			server := pct(u.server)
			serverOp := perOp(u.server)
			if s.script != nil {
				server, serverOp = "-", "-"
			}
			r.printf("  %-46s %8s %9s %9s %7s %6s   %s, %s, %s", s.label, server, pct(u.postgres), pct(u.loadgen),
				pct(u.other()), pct(max(u.capacity-u.busy, 0)), serverOp, perOp(u.postgres), perOp(u.loadgen))
		}
		r.printf("  Statements per operation (pg_stat_statements, all rounds):")
		for _, s := range g.sides {
			r.printf("  %-46s %s", s.label, formatPerOp(s.statementsPerOp()))
		}
	}
	r.printf("")
	r.printf("pgbench's scripts (from sqlc's db package, arguments as tokenstore sent them while seeding):")
	r.printf("  GET: %s", strings.Join(h.getPgbench.script.names, ", "))
	r.printf("  PUT: %s", strings.Join(h.putPgbench.script.names, ", "))
	r.printf("  (pg_stat_statements counts pgbench's prepared BEGIN and COMMIT once per connection: its script has them once per transaction)")
	// A GET answered from the read cache sends no SELECT (its shared
	// probe, pg_notify, shows in the table above): the comparison is with
	// the SELECT a read would otherwise send, so only pgbench's side of
	// the GET scripts is checked.
	for _, c := range []struct {
		ts, pg *side
		whole  bool
	}{{h.getDefaults, h.getPgbench, false}, {h.getAuditOff, h.getPgbench, false}, {h.putDefaults, h.putPgbench, true}} {
		tsPer := coalesced(c.ts.statementsPerOp(), c.pg.script)
		if c.pg == h.getPgbench {
			tsPer = nil
		}
		r.checkStatements(c.ts.label, tsPer, c.pg.statementsPerOp(), c.pg.script, c.whole, "request")
	}

	r.printf("")
	r.printf("Memory after the rounds (the read cache holds at most the %d seeded rows; the memory part holds 100,000):", users)
	for _, m := range h.memory {
		r.printf("  %s", m)
	}
	ceiling := ratioTarget("", h.getCeiling, h.getPgbench, 0)
	r.printf("")
	r.printf("HTTP ceiling ÷ pgbench GetAuthTokens: %s: the most any GET ratio can reach with this machine and load generator", ceiling.got)
	r.printf("tokenstore GET (audit off) ÷ HTTP ceiling: %s", ratioTarget("", h.getAuditOff, h.getCeiling, 0).got)

	return []target{
		ratioTarget("GET (audit off) ops/s ÷ pgbench GetAuthTokens ops/s", h.getAuditOff, h.getPgbench, 1.5),
		ratioTarget("GET (defaults: audit fail_closed) ÷ pgbench GetAuthTokens", h.getDefaults, h.getPgbench, 1.0),
		p99Target("GET (audit off) p99 vs pgbench GetAuthTokens p99", h.getAuditOff, h.getPgbench),
		p99Target("GET (defaults) p99 vs pgbench GetAuthTokens p99", h.getDefaults, h.getPgbench),
		ratioTarget("PUT (defaults) ops/s ÷ pgbench PUT's transaction ops/s", h.putDefaults, h.putPgbench, 1.0),
	}
}

// ratioTarget judges the median of the rounds' ratios: each round's two
// measurements ran minutes apart at most, so a drift of the machine's load
// over the run moves both.
func ratioTarget(what string, ts, pg *side, want float64) target {
	var ratios []float64
	var byRound []string
	for i := range min(len(ts.rounds), len(pg.rounds)) {
		ratios = append(ratios, ts.rounds[i].opsPerSec/pg.rounds[i].opsPerSec)
		byRound = append(byRound, fmt.Sprintf("%.2f", ratios[i]))
	}
	ratio := median(ratios)
	return target{what: what, got: fmt.Sprintf("%.2f (rounds %s)", ratio, strings.Join(byRound, " ")),
		want: fmt.Sprintf("≥ %.1f", want), met: ratio >= want}
}

func p99Target(what string, ts, pg *side) target {
	return target{what: what, got: ms(ts.p99()) + " vs " + ms(pg.p99()), want: "≤", met: ts.p99() <= pg.p99()}
}

// batchStatement is the statement of tokenstore's group commit of PUTs
// (adapters/postgres coalesce.go), which writes many PUTs' rows, outbox
// events and audit events at once; batchRows names the rows it wrote in
// statementCounts.
const (
	batchStatement = "UpsertAuthTokensBatch"
	batchRows      = batchStatement + " rows"
)

// coalesced is per (statements per request) with the PUTs the group commit
// wrote counted as the script they stand for: each row batchStatement
// wrote is one upsert with its event and its audit event, committed, as
// one run of sc (BEGIN, UpsertAuthTokens, InsertAuditEvents, COMMIT)
// would have written it; batchStatement's own calls and rows are taken
// out. So the check still finds a request whose row was written twice, or
// not at all, or with another statement. Scripts without
// UpsertAuthTokens (GET) are left as they are.
func coalesced(per map[string]float64, sc *pgbenchScript) map[string]float64 {
	counts := scriptCounts(sc)
	if counts["UpsertAuthTokens"] == 0 || per[batchRows] == 0 {
		return per
	}
	out := maps.Clone(per)
	for name, n := range counts {
		out[name] += n * per[batchRows]
	}
	delete(out, batchStatement)
	delete(out, batchRows)
	return out
}

// utility reports whether a statement is BEGIN, COMMIT or SET, which
// pg_stat_statements (PostgreSQL 15) counts only once per connection when
// pgbench sends them prepared (observed here for BEGIN and COMMIT: one per
// connection however many transactions ran), so pgbench's are taken from
// its script.
func utility(name string) bool { return name == "BEGIN" || name == "COMMIT" || name == "SET" }

// scriptCounts is how many times each statement occurs in one transaction
// of sc.
func scriptCounts(sc *pgbenchScript) map[string]float64 {
	out := map[string]float64{}
	for _, n := range sc.names {
		out[n]++
	}
	return out
}

// checkStatements checks that the ratio compares the same work: pgbench
// ran its script (pg_stat_statements agrees with the script, BEGIN and
// COMMIT aside), and tokenstore sent every statement of the script as many
// times per request (within 2%: requests still in flight when wrk stops are
// served but not counted). With whole, tokenstore must send nothing else
// once or more per request either: the script claims to be all of a
// request's statements. unit names the operation ("request", "batch").
func (r *report) checkStatements(label string, tsPer, pgPer map[string]float64, sc *pgbenchScript, whole bool, unit string) {
	want := scriptCounts(sc)
	near := func(got, want float64) bool { return got >= want*0.98 && got <= want*1.02 }
	for name, n := range want {
		if !utility(name) && !near(pgPer[name], n) {
			r.checks++
			r.printf("  CHECK FAILED: pgbench's script has %s %.0f times per transaction; pg_stat_statements counted %.3f", name, n, pgPer[name])
		}
		if got := tsPer[name]; tsPer != nil && !near(got, n) {
			r.checks++
			r.printf("  CHECK FAILED: pgbench's script sends %s %.0f times per transaction; %s sent it %.3f times per %s",
				name, n, label, got, unit)
		}
	}
	if whole {
		for name, n := range tsPer {
			if _, ok := want[name]; !ok && n >= 0.5 {
				r.checks++
				r.printf("  CHECK FAILED: %s sent %s %.2f times per %s; pgbench's script lacks it", label, name, n, unit)
			}
		}
	}
}

// formatPerOp lists statements by calls per operation, most first,
// leaving out those below 0.001 (background work).
func formatPerOp(per map[string]float64) string {
	names := make([]string, 0, len(per))
	for k, v := range per {
		if v >= 0.001 {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if per[a] != per[b] {
			if per[a] > per[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.3f", n, per[n])
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ", ")
}

func (r *report) printStorm() []target {
	s := r.storm
	r.printf("")
	r.printf("== Refresh storm: %d instances × %d callers, one expired token, provider answering in %s, %d rounds ==",
		stormInstances, stormCallers, stormDelay, len(s.rounds))
	var all []time.Duration
	var calls []string
	exact, wrong := true, 0
	for i, rd := range s.rounds {
		lat := slices.Clone(rd.latencies)
		all = append(all, lat...)
		calls = append(calls, fmt.Sprint(rd.providerCalls))
		exact = exact && rd.providerCalls == 1
		wrong += rd.wrongCount
		srv := slices.Clone(rd.server)
		r.printf("  round %d: %d provider call(s); %d right answers, %d wrong; callers' p50 %s, p99 %s, max %s; the instances' own p99 %s (%d requests logged)",
			i+1, rd.providerCalls, len(rd.latencies), rd.wrongCount, ms(percentile(lat, 50)), ms(percentile(lat, 99)),
			ms(percentile(lat, 100)), ms(percentile(srv, 99)), len(srv))
		if !rd.calledAt.IsZero() {
			r.printf("    the provider was called %s after the burst began and answered %s after it; the last caller was answered %s after the answer",
				ms(rd.calledAt.Sub(rd.start)), ms(rd.answeredAt.Sub(rd.start)), ms(rd.end.Sub(rd.answeredAt)))
		}
		for _, w := range rd.wrong {
			r.printf("    wrong answer: %s", w)
		}
	}
	if s.reuses > 0 {
		r.printf("  refresh tokens presented twice: %d (a real provider would have revoked the grant)", s.reuses)
	}
	p99 := percentile(all, 99)
	return []target{
		{what: "Storm: provider calls per round", got: strings.Join(calls, " "), want: "= 1", met: exact && s.reuses == 0},
		{what: "Storm: every caller answered the refreshed token", got: fmt.Sprintf("%d wrong", wrong), want: "0 wrong", met: wrong == 0},
		{what: "Storm: p99 over every round", got: ms(p99), want: "≤ 300ms", met: p99 <= 300*time.Millisecond && len(all) > 0},
	}
}

func (r *report) printReencrypt() {
	e := r.reenc
	r.printf("")
	r.printf("== Re-encryption of %d values (%d rows: access and refresh token), %d rows per transaction, one connection ==",
		e.values, reencRows, reencBatch)
	rate := func(d time.Duration) string { return thousands(float64(e.values) / d.Seconds()) }
	r.printf("  %-46s %10s %12s   %s", "", "time", "values/s", "CPU s: server, postgres, load gen, other")
	cpu := func(u cpuUse) string {
		return fmt.Sprintf("%.1f, %.1f, %.1f, %.1f", u.server, u.postgres, u.loadgen, u.other())
	}
	r.printf("  %-46s %10s %12s   %s", "tokenstore keys rotate", e.tokenstore.Round(time.Millisecond), rate(e.tokenstore), cpu(e.tokenstoreCPU))
	r.printf("  %-46s %10s %12s   %s", "pgbench, the same statements", e.pgbench.Round(time.Millisecond), rate(e.pgbench), cpu(e.pgbenchC))
	r.printf("  ratio (tokenstore values/s ÷ pgbench values/s): %.2f (issue 14 sets no target for it: reported, not judged)",
		e.pgbench.Seconds()/e.tokenstore.Seconds())
	batches := float64(reencRows) / reencBatch
	perBatch := func(m map[string]int64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range m {
			out[k] = float64(v) / batches
		}
		return out
	}
	r.printf("  statements per batch, keys rotate: %s", formatPerOp(perBatch(e.statements)))
	r.printf("  statements per batch, pgbench:     %s", formatPerOp(perBatch(e.pgbenchStatements)))
	r.checkStatements("keys rotate", perBatch(e.statements), perBatch(e.pgbenchStatements), e.script, true, "batch")
}
