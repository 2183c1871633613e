package main

import (
	"strings"
	"testing"
	"time"
)

func TestCheckStatements(t *testing.T) {
	sc := newScript("put")
	sc.plain("BEGIN")
	if err := sc.add(statement{name: "Upsert", sql: "SELECT 1"}, nil); err != nil {
		t.Fatal(err)
	}
	sc.plain("COMMIT")
	// pg_stat_statements counts pgbench's prepared BEGIN/COMMIT once per
	// connection: not a failure.
	pg := map[string]float64{"Upsert": 1, "BEGIN": 0.02, "COMMIT": 0.02}
	for _, c := range []struct {
		name   string
		ts     map[string]float64
		whole  bool
		failed int
	}{
		{"the same statements", map[string]float64{"BEGIN": 1.01, "Upsert": 1.005, "COMMIT": 1.01, "Background": 0.01}, true, 0},
		{"a statement sent half as often", map[string]float64{"BEGIN": 1, "Upsert": 0.5, "COMMIT": 1}, true, 1},
		{"no transaction", map[string]float64{"Upsert": 1}, true, 2},
		{"a statement the script lacks", map[string]float64{"BEGIN": 1, "Upsert": 1, "COMMIT": 1, "Audit": 1}, true, 1},
		{"extra statements allowed", map[string]float64{"BEGIN": 1, "Upsert": 1, "COMMIT": 1, "Audit": 1}, false, 0},
	} {
		r := &report{}
		r.checkStatements("tokenstore", c.ts, pg, sc, c.whole, "request")
		if r.checks != c.failed {
			t.Errorf("%s: %d checks failed, want %d: %s", c.name, r.checks, c.failed, strings.Join(r.lines, "; "))
		}
	}
	r := &report{}
	r.checkStatements("tokenstore", map[string]float64{"BEGIN": 1, "Upsert": 1, "COMMIT": 1}, map[string]float64{"Upsert": 0.5}, sc, true, "request")
	if r.checks != 1 {
		t.Errorf("pgbench not running its own script should fail a check: %v", r.lines)
	}
}

// A PUT written by the group commit's batch counts as one run of the PUT
// script; the check still fails a row written twice or not at all.
func TestCheckStatementsCoalesced(t *testing.T) {
	sc := newScript("put")
	sc.plain("BEGIN")
	for _, name := range []string{"UpsertAuthTokens", "InsertAuditEvents"} {
		if err := sc.add(statement{name: name, sql: "SELECT 1"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	sc.plain("COMMIT")
	pg := map[string]float64{"UpsertAuthTokens": 1, "InsertAuditEvents": 1}
	alone := 0.05 // PUTs written alone: the script's statements themselves
	for _, c := range []struct {
		name   string
		rows   float64 // batchRows per request
		failed int
	}{
		{"every other PUT in a batch", 1 - alone, 0},
		{"rows written twice", 2 * (1 - alone), 4},
		{"rows not written", 0.5, 4},
	} {
		ts := map[string]float64{"BEGIN": alone, "UpsertAuthTokens": alone, "InsertAuditEvents": alone, "COMMIT": alone,
			batchStatement: c.rows / 12, batchRows: c.rows}
		r := &report{}
		r.checkStatements("tokenstore", coalesced(ts, sc), pg, sc, true, "request")
		if r.checks != c.failed {
			t.Errorf("%s: %d checks failed, want %d: %s", c.name, r.checks, c.failed, strings.Join(r.lines, "; "))
		}
	}
	get := newScript("get")
	if err := get.add(statement{name: "GetAuthTokens", sql: "SELECT 1"}, nil); err != nil {
		t.Fatal(err)
	}
	if per := map[string]float64{"GetAuthTokens": 1, batchRows: 0.5}; len(coalesced(per, get)) != 2 {
		t.Errorf("a GET's statements changed: %v", coalesced(per, get))
	}
}

func TestTargets(t *testing.T) {
	mk := func(opsPerSec ...float64) *side {
		s := &side{}
		for _, o := range opsPerSec {
			s.rounds = append(s.rounds, outcome{opsPerSec: o, p99: time.Duration(o) * time.Millisecond})
		}
		return s
	}
	ts, pg := mk(140, 150, 160), mk(100, 100, 100)
	if tg := ratioTarget("x", ts, pg, 1.5); !tg.met || !strings.HasPrefix(tg.got, "1.50 (rounds 1.40 1.50 1.60)") {
		t.Errorf("ratio target %+v", tg)
	}
	if tg := ratioTarget("x", ts, pg, 1.6); tg.met {
		t.Errorf("ratio 1.5 met a target of 1.6: %+v", tg)
	}
	if tg := p99Target("x", ts, pg); tg.met {
		t.Errorf("p99 150ms met a target of ≤ 100ms: %+v", tg)
	}
	if tg := p99Target("x", pg, ts); !tg.met {
		t.Errorf("p99 100ms missed a target of ≤ 150ms: %+v", tg)
	}
}

func TestReportFailsOnMissedTargetOrError(t *testing.T) {
	var out strings.Builder
	r := &report{settings: settings{parts: []string{"storm"}}, storm: &stormResult{rounds: []stormRound{
		{providerCalls: 2, latencies: []time.Duration{100 * time.Millisecond}},
	}}}
	r.print(&out)
	if !r.failed() || !strings.Contains(out.String(), "MISSED") {
		t.Errorf("two provider calls did not fail the run:\n%s", out.String())
	}
	out.Reset()
	r = &report{settings: settings{parts: []string{"storm"}}, storm: &stormResult{rounds: []stormRound{
		{providerCalls: 1, latencies: []time.Duration{100 * time.Millisecond}},
	}}}
	r.print(&out)
	if r.failed() || !strings.Contains(out.String(), "every target met") {
		t.Errorf("a storm within its targets failed the run:\n%s", out.String())
	}
	r.err = errInvalid
	if r.print(&out); !r.failed() {
		t.Error("a run that did not finish did not fail")
	}
}
