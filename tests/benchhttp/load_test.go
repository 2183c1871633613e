package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A report of Debian's wrk 4.1.0 (run with --latency), errors included.
const wrkReport = `Running 1s test @ http://127.0.0.1:18777/nonexistent
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.48ms    3.52ms  28.70ms   84.28%
    Req/Sec   475.75    119.89   720.00     75.00%
  Latency Distribution
     50%  812.00us
     75%    6.02ms
     90%    8.71ms
     99%    1.20s
  949 requests in 1.00s, 481.91KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 949
Requests/sec:    947.87
Transfer/sec:    481.34KB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	if r.requests != 949 || r.perSec != 947.87 || r.p50 != 812*time.Microsecond || r.p99 != 1200*time.Millisecond {
		t.Errorf("parsed %+v; want 949 requests, 947.87/s, p50 812µs, p99 1.2s", r)
	}
	if r.non2xx != 949 || r.socketErrors != "connect 0, read 2, write 0, timeout 1" {
		t.Errorf("errors parsed as %d non-2xx, socket %q", r.non2xx, r.socketErrors)
	}
	clean := strings.NewReplacer("  Socket errors: connect 0, read 2, write 0, timeout 1\n", "",
		"  Non-2xx or 3xx responses: 949\n", "").Replace(wrkReport)
	if r, err := parseWrk(clean); err != nil || r.non2xx != 0 || r.socketErrors != "" {
		t.Errorf("a report without errors parsed as %+v, %v", r, err)
	}
	// Without --latency there are no percentiles: refused, not zero.
	noLatency := wrkReport[:strings.Index(wrkReport, "  Latency Distribution")] + wrkReport[strings.Index(wrkReport, "  949 requests"):]
	if _, err := parseWrk(noLatency); err == nil || !strings.Contains(err.Error(), "--latency") {
		t.Errorf("a report without percentiles: err %v, want one naming --latency", err)
	}
}

// A report of pgbench 15.
const pgbenchReport = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: get.pgbench
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 28806
number of failed transactions: 3 (0.010%)
latency average = 3.331 ms
initial connection time = 14.874 ms
tps = 9602.371128 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	r, err := parsePgbench(pgbenchReport)
	if err != nil {
		t.Fatal(err)
	}
	if r.transactions != 28806 || r.failed != 3 || r.tps != 9602.371128 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parsePgbench("pgbench: error: connection failed\n"); err == nil {
		t.Error("a report without results parsed without error")
	}
}

func TestPgbenchLatencies(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "get-1")
	// One file per thread; fields: client, transaction, latency µs, script,
	// epoch s, epoch µs.
	if err := os.WriteFile(prefix+".123", []byte("0 1 1500 0 1796041458 726506\n1 1 900 0 1796041458 726535\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+".123.1", []byte("2 1 120000 0 1796041458 726541\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lat, err := pgbenchLatencies(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 3 || percentile(lat, 50) != 1500*time.Microsecond || percentile(lat, 99) != 120*time.Millisecond {
		t.Errorf("latencies %v: p50 %v p99 %v", lat, percentile(lat, 50), percentile(lat, 99))
	}
	if _, err := pgbenchLatencies(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("no log files: no error")
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var xs []time.Duration
	for i := 100; i >= 1; i-- {
		xs = append(xs, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 99: 99, 100: 100, 1: 1} {
		if got := percentile(xs, p); got != want {
			t.Errorf("p%v of 1..100 = %v, want %v", p, got, want)
		}
	}
	if percentile(nil, 99) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote([]string{"pgbench", "-D", "c1=it's"}); got != `'pgbench' '-D' 'c1=it'\''s'` {
		t.Errorf("shellQuote = %s", got)
	}
}
