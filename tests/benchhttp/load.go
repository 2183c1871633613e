package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The two load generators, each a C program whose own CPU cost is small
// next to what it drives, each closed-loop with a fixed number of
// connections (32) kept open for the whole measurement, so they offer the
// same kind of load: wrk (Debian's package) over HTTP against tokenstore,
// pgbench over the PostgreSQL protocol against the database. Neither
// corrects for coordinated omission, so their latencies compare like with
// like. wrk's per-request work (a random user, a PUT body) runs in its
// LuaJIT scripts (wrk/*.lua); pgbench's in \set expressions.

// outcome is what one measurement produced.
type outcome struct {
	ops       int64   // requests (wrk) or transactions (pgbench) completed
	opsPerSec float64 // as the generator reports it
	p50, p99  time.Duration
	cpu       cpuUse
	// statements is what appRole sent during the measurement, by
	// statement name (pg_stat_statements).
	statements map[string]int64
}

// wrkResult is what wrk's report says.
type wrkResult struct {
	requests     int64
	perSec       float64
	p50, p99     time.Duration
	non2xx       int64
	socketErrors string // "" when none
}

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkPerSec   = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$`)
	wrkNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`(?m)^\s*Socket errors: (connect \d+, read \d+, write \d+, timeout \d+)`)
)

// parseWrk reads wrk's report (run with --latency).
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRequests.FindStringSubmatch(out)
	p := wrkPerSec.FindStringSubmatch(out)
	pcts := wrkPct.FindAllStringSubmatch(out, -1)
	if m == nil || p == nil || len(pcts) != 2 {
		return r, fmt.Errorf("wrk's report lacks requests, Requests/sec or the 50%%/99%% latencies (was --latency given?):\n%s", out)
	}
	r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	r.perSec, _ = strconv.ParseFloat(p[1], 64)
	for _, pc := range pcts {
		v, _ := strconv.ParseFloat(pc[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute}[pc[3]]
		d := time.Duration(v * float64(unit))
		if pc[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if n := wrkNon2xx.FindStringSubmatch(out); n != nil {
		r.non2xx, _ = strconv.ParseInt(n[1], 10, 64)
	}
	if s := wrkSocket.FindStringSubmatch(out); s != nil {
		r.socketErrors = s[1]
	}
	return r, nil
}

// pgbenchResult is what pgbench's report says.
type pgbenchResult struct {
	transactions, failed int64
	tps                  float64 // without initial connection time
}

var (
	pgbTx     = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	pgbFailed = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	pgbTPS    = regexp.MustCompile(`(?m)^tps = ([\d.]+) \(without initial connection time\)`)
)

func parsePgbench(out string) (pgbenchResult, error) {
	var r pgbenchResult
	tx, tps := pgbTx.FindStringSubmatch(out), pgbTPS.FindStringSubmatch(out)
	if tx == nil || tps == nil {
		return r, fmt.Errorf("pgbench's report lacks the transactions processed or tps:\n%s", out)
	}
	r.transactions, _ = strconv.ParseInt(tx[1], 10, 64)
	r.tps, _ = strconv.ParseFloat(tps[1], 64)
	if f := pgbFailed.FindStringSubmatch(out); f != nil {
		r.failed, _ = strconv.ParseInt(f[1], 10, 64)
	}
	return r, nil
}

// pgbenchLatencies reads the per-transaction logs pgbench -l wrote with
// prefix (one file per thread: prefix.PID, prefix.PID.1, ...). Each line is
// "client transaction latency_us script epoch epoch_us [...]". pgbench
// writes them through stdio buffers: about a microsecond per transaction,
// charged to pgbench, which is what makes its p50/p99 comparable to wrk's.
func pgbenchLatencies(prefix string) ([]time.Duration, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("pgbench wrote no transaction log %s.*", prefix)
	}
	var out []time.Duration
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				f.Close()
				return nil, fmt.Errorf("%s: unexpected line %q", name, sc.Text())
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: unexpected line %q", name, sc.Text())
			}
			out = append(out, time.Duration(us)*time.Microsecond)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// percentile is the nearest-rank percentile p (0-100] of xs, which it
// sorts.
func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// runMeasured runs cmd (a load generator) while reading the CPU counters
// of the server pids and the cluster around it, and returns its output.
func (b *bench) runMeasured(ctx context.Context, cmd *exec.Cmd, server ...int) (string, cpuUse, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	before, err := snapshot(b.db.cmd.Process.Pid, server...)
	if err != nil {
		return "", cpuUse{}, err
	}
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	after, err := snapshot(b.db.cmd.Process.Pid, server...)
	if err != nil {
		return "", cpuUse{}, err
	}
	var loadgen time.Duration
	if cmd.ProcessState != nil {
		loadgen = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	use := after.since(before, wall, loadgen, b.cpus)
	if runErr != nil {
		if ctx.Err() != nil {
			return "", use, ctx.Err()
		}
		return "", use, fmt.Errorf("%s: %w\n%s%s", filepath.Base(cmd.Path), runErr, stdout.String(), stderr.String())
	}
	return stdout.String(), use, nil
}

// wrk runs wrk with script against the instance for d and measures it.
func (b *bench) wrk(ctx context.Context, in *server, script string, d time.Duration) (outcome, error) {
	if err := b.beforeMeasurement(ctx); err != nil {
		return outcome{}, err
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(b.cpus), "-c", strconv.Itoa(clients),
		"-d", fmt.Sprintf("%ds", int(d.Seconds())), "--timeout", "10s", "--latency", "-s", script, in.url)
	cmd.Env = append(os.Environ(), b.wrkEnv...)
	out, use, err := b.runMeasured(ctx, cmd, in.pid())
	if err != nil {
		return outcome{}, err
	}
	r, err := parseWrk(out)
	if err != nil {
		return outcome{}, err
	}
	// An error answered fast is not throughput: any makes the run invalid.
	if r.non2xx > 0 || r.socketErrors != "" {
		return outcome{}, fmt.Errorf("wrk %s against %s: %d non-2xx answers, socket errors %q (see %s)",
			filepath.Base(script), in.name, r.non2xx, r.socketErrors, in.logPath)
	}
	o := outcome{ops: r.requests, opsPerSec: r.perSec, p50: r.p50, p99: r.p99, cpu: use}
	o.statements, err = b.db.statementCounts(ctx, mainDatabase)
	return o, err
}

// pgbench runs script with clients connections for d (or, with d zero,
// transactions transactions per client) against database and measures
// it; latencies only when d is given.
func (b *bench) pgbench(ctx context.Context, sc *pgbenchScript, database string, conns int, d time.Duration, transactions int) (outcome, error) {
	if err := b.beforeMeasurement(ctx); err != nil {
		return outcome{}, err
	}
	path := filepath.Join(b.dir, sc.name+".pgbench")
	if err := os.WriteFile(path, []byte(sc.text()), 0o644); err != nil {
		return outcome{}, err
	}
	b.runs++
	prefix := filepath.Join(b.dir, "pgbench-log", fmt.Sprintf("%s-%d", sc.name, b.runs))
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return outcome{}, err
	}
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(b.db.port), "-U", appRole, "-n", "-M", "prepared",
		"-c", strconv.Itoa(conns), "-j", strconv.Itoa(min(conns, b.cpus)), "-f", path}
	if d > 0 {
		args = append(args, "-T", strconv.Itoa(int(d.Seconds())), "-l", "--log-prefix", prefix)
	} else {
		args = append(args, "-t", strconv.Itoa(transactions))
	}
	args = append(append(args, sc.defineArgs()...), database)
	cmd := exec.CommandContext(ctx, filepath.Join(b.pgBin, "pgbench"), args...)
	// The command line, to run by hand (BENCH_KEEP=1 keeps it).
	if err := os.WriteFile(path+".cmd", []byte(shellQuote(cmd.Args)+"\n"), 0o644); err != nil {
		return outcome{}, err
	}
	cmd.Env = append(os.Environ(), "PGPASSWORD="+b.db.password)
	out, use, err := b.runMeasured(ctx, cmd)
	if err != nil {
		return outcome{}, err
	}
	r, err := parsePgbench(out)
	if err != nil {
		return outcome{}, err
	}
	if r.failed > 0 {
		return outcome{}, fmt.Errorf("pgbench %s: %d failed transactions", sc.name, r.failed)
	}
	o := outcome{ops: r.transactions, opsPerSec: r.tps, cpu: use}
	if d > 0 {
		lat, err := pgbenchLatencies(prefix)
		if err != nil {
			return outcome{}, err
		}
		if int64(len(lat)) != r.transactions {
			return outcome{}, fmt.Errorf("pgbench %s: %d transactions logged, %d reported", sc.name, len(lat), r.transactions)
		}
		o.p50, o.p99 = percentile(lat, 50), percentile(lat, 99)
		files, _ := filepath.Glob(prefix + ".*")
		for _, f := range files {
			_ = os.Remove(f) // millions of lines over a run; the percentiles are kept
		}
	}
	o.statements, err = b.db.statementCounts(ctx, database)
	return o, err
}

// beforeMeasurement checkpoints (no timed checkpoint then falls inside a
// measurement of 5 minutes or less) and resets the statement statistics.
func (b *bench) beforeMeasurement(ctx context.Context) error {
	if err := b.db.checkpoint(ctx); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return b.db.resetStatements(ctx)
}

var errNoWrk = errors.New("wrk is not installed: apt-get install -y wrk (as root; Debian's package, a C HTTP load generator)")

// shellQuote is args as one sh command line.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}
