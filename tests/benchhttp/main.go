// Command benchhttp is `task bench:http`: it measures tokenstore's HTTP API
// against the database's own limit, pgbench running the very statements
// tokenstore sends, in one run on one machine, and fails when a ratio
// misses the targets of issue 14. It is a program rather than a Go
// benchmark because it drives other programs (PostgreSQL, the built
// tokenstore binary, wrk, pgbench) and reads their CPU time from /proc; it
// is not part of CI's tests (only its parsers' unit tests are).
//
// One run, in order (each part can be chosen with BENCH_ONLY):
//
//   - http: a throwaway PostgreSQL 15 cluster (cluster.go); two tokenstore
//     instances on it, one with every default (audit fail_closed, events
//     on) and one with audit.mode off; 10,000 users seeded through the API;
//     then, interleaved over BENCH_ROUNDS rounds (the order reversed every
//     other round, so a drift of the machine's load favours neither side),
//     wrk at 32 connections against each instance and pgbench at 32
//     connections running the same statements: GET a valid token against
//     GetAuthTokens, PUT against the transaction a PUT sends
//     (UpsertAuthTokens and the audit insert).
//   - storm: 3 instances × 200 callers reading one expired token whose
//     provider (a fake, in this process) answers in 200 ms (storm.go).
//   - reencrypt: `tokenstore keys rotate` over 100,000 values against
//     pgbench running the same statements on a copy of the same rows
//     (reencrypt.go).
//   - memory: one instance's resident memory with 100,000 rows in its read
//     cache, each read once through the API (memory.go).
//
// Settings (environment): BENCH_DURATION (whole seconds per measurement,
// default 10s), BENCH_ROUNDS (default 3), BENCH_WARMUP (default 2s, each
// side once before the rounds, not counted), BENCH_ONLY (http, storm,
// reencrypt, memory: a comma-separated subset), BENCH_PG_BIN (PostgreSQL 15's bin
// directory, default /usr/lib/postgresql/15/bin), BENCH_KEEP=1 (keep the
// run's directory: configs, logs, pgbench scripts), BENCH_PROFILE=1 (after
// the rounds, one more GET run per instance under a CPU profile, from
// net/http/pprof on a loopback metrics listener: the top functions are
// printed and the profiles kept in the run's directory, so use it with
// BENCH_KEEP=1), BENCH_MAX_CONNS (the
// http part's database.max_conns, 1 to 1000; default tokenstore's own, to
// compare pool sizes), BENCH_GOMEMLIMIT (the memory part's instance's
// GOMEMLIMIT, default 64MiB, the target itself as Go's soft limit; off for
// none). Flag -bin names the
// tokenstore binary (task bench:http builds bin/tokenstore first).
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The workload issue 14 fixes.
const (
	clients      = 32        // connections of each load generator
	users        = 10_000    // seeded users
	firstUser    = 1_000_001 // user ids are firstUser..firstUser+users-1 (see below)
	provider     = "gitlab"  // declared store-only: tokens are kept, never refreshed
	mainDatabase = "tokenstore"
	// pgbench's copy of mainDatabase once seeded (see httpPart).
	pgbenchDatabase = "tokenstore_pgbench"
)

// User ids are decimal numbers because pgbench can make a random number
// but not a string: `\set uid random(...)` then gives the SELECT the very
// user id wrk asks for, with no SQL around the parameter that tokenstore
// does not send.

//go:embed wrk/*.lua
var wrkScripts embed.FS

type settings struct {
	bin, pgBin       string
	duration, warmup time.Duration
	rounds           int
	maxConns         int // 0: tokenstore's default
	parts            []string
	keep             bool
	profile          bool   // BENCH_PROFILE=1
	memLimit         string // BENCH_GOMEMLIMIT: the memory part's instance's GOMEMLIMIT
}

// memLimitSyntax is what GOMEMLIMIT accepts (Go's runtime package: a byte
// count with an optional unit), or off.
var memLimitSyntax = regexp.MustCompile(`^([0-9]+(B|KiB|MiB|GiB|TiB)?|off)$`)

var allParts = []string{"http", "storm", "reencrypt", "memory"}

// settingsFromEnv reads and checks the settings; an error names the
// variable and what it accepts.
func settingsFromEnv(bin string, getenv func(string) string) (settings, error) {
	s := settings{bin: bin, pgBin: "/usr/lib/postgresql/15/bin", duration: 10 * time.Second,
		warmup: 2 * time.Second, rounds: 3, parts: allParts, memLimit: defaultMemLimit}
	if v := getenv("BENCH_PG_BIN"); v != "" {
		s.pgBin = v
	}
	var err error
	if s.duration, err = wholeSeconds("BENCH_DURATION", getenv("BENCH_DURATION"), s.duration, 1); err != nil {
		return s, err
	}
	if s.warmup, err = wholeSeconds("BENCH_WARMUP", getenv("BENCH_WARMUP"), s.warmup, 0); err != nil {
		return s, err
	}
	if v := getenv("BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			return s, fmt.Errorf("BENCH_ROUNDS=%q: give a number of rounds from 1 to 20", v)
		}
		s.rounds = n
	}
	if v := getenv("BENCH_MAX_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return s, fmt.Errorf("BENCH_MAX_CONNS=%q: give a pool size from 1 to 1000 (database.max_conns), or nothing for tokenstore's default", v)
		}
		s.maxConns = n
	}
	if v := getenv("BENCH_ONLY"); v != "" {
		s.parts = nil
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains(allParts, p) {
				return s, fmt.Errorf("BENCH_ONLY=%q: %q is not a part; give a comma-separated subset of %s", v, p, strings.Join(allParts, ", "))
			}
			if !slices.Contains(s.parts, p) {
				s.parts = append(s.parts, p)
			}
		}
	}
	if v := getenv("BENCH_GOMEMLIMIT"); v != "" {
		if !memLimitSyntax.MatchString(v) {
			return s, fmt.Errorf("BENCH_GOMEMLIMIT=%q: give a GOMEMLIMIT such as 64MiB (a byte count, optionally with B, KiB, MiB, GiB or TiB), or off", v)
		}
		s.memLimit = v
	}
	switch v := getenv("BENCH_KEEP"); v {
	case "", "0":
	case "1":
		s.keep = true
	default:
		return s, fmt.Errorf("BENCH_KEEP=%q: give 1 to keep the run's directory, 0 or nothing to remove it", v)
	}
	switch v := getenv("BENCH_PROFILE"); v {
	case "", "0":
	case "1":
		s.profile = true
	default:
		return s, fmt.Errorf("BENCH_PROFILE=%q: give 1 to profile a GET run of each instance after the rounds, 0 or nothing not to", v)
	}
	return s, nil
}

// wholeSeconds reads a duration of whole seconds (pgbench -T and wrk -d
// take seconds), at least minSec.
func wholeSeconds(name, v string, def time.Duration, minSec int) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d%time.Second != 0 || d < time.Duration(minSec)*time.Second || d > 10*time.Minute {
		return 0, fmt.Errorf("%s=%q: give whole seconds from %ds to 10m, such as 10s (pgbench -T and wrk -d take seconds)", name, v, minSec)
	}
	return d, nil
}

// bench is one run's state.
type bench struct {
	settings
	dir     string
	cpus    int
	db      *cluster
	servers []*server
	caller  caller
	wrkEnv  []string
	runs    int
}

func main() {
	bin := flag.String("bin", "bin/tokenstore", "the tokenstore binary to measure (task bench:http builds it)")
	noop := flag.String("serve-noop", "", "serve the no-op HTTP ceiling on this address and do nothing else (the benchmark starts itself so)")
	provider := flag.String("serve-provider", "", "serve the refresh storm's fake provider on this address and do nothing else (the benchmark starts itself so)")
	flag.Parse()
	if *noop != "" {
		fmt.Fprintln(os.Stderr, serveNoop(*noop))
		os.Exit(2)
	}
	if *provider != "" {
		fmt.Fprintln(os.Stderr, serveProvider(*provider))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, *bin)
	stop()
	os.Exit(code)
}

// run returns the exit status: 0 when every target is met, 1 when one is
// missed or a check of the run itself fails, 2 when the run could not be
// made.
func run(ctx context.Context, bin string) int {
	s, err := settingsFromEnv(bin, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:http:", err)
		return 2
	}
	if err := preflight(s); err != nil {
		fmt.Fprintln(os.Stderr, "bench:http:", err)
		return 2
	}
	b := &bench{settings: s, cpus: runtime.NumCPU()}
	if b.dir, err = os.MkdirTemp("", "tokenstore-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, "bench:http:", err)
		return 2
	}
	// The postgres user (when this runs as root) must reach its directory.
	_ = os.Chmod(b.dir, 0o755)
	start := time.Now()
	rep := &report{start: start, load: loadAverage(), cpus: b.cpus, settings: s}
	err = b.runParts(ctx, rep)
	b.cleanup()
	rep.elapsed, rep.err = time.Since(start), err
	rep.print(os.Stdout)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench:http: %v\nbench:http: the run's files are kept in %s\n", err, b.dir)
		return 2
	case !s.keep:
		_ = os.RemoveAll(b.dir)
	default:
		fmt.Fprintf(os.Stderr, "bench:http: the run's files are in %s\n", b.dir)
	}
	if rep.failed() {
		return 1
	}
	return 0
}

// preflight checks the programs the run needs, naming the fix.
func preflight(s settings) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errNoWrk
	}
	for _, p := range []string{"initdb", "postgres", "pgbench"} {
		if _, err := os.Stat(filepath.Join(s.pgBin, p)); err != nil {
			return fmt.Errorf("%s is missing: install postgresql-15 (apt-get install -y postgresql-15) or set BENCH_PG_BIN to PostgreSQL 15's bin directory", filepath.Join(s.pgBin, p))
		}
	}
	if st, err := os.Stat(s.bin); err != nil || st.IsDir() {
		return fmt.Errorf("-bin %s: no tokenstore binary there; build it with go tool -modfile=tools/go.mod task build", s.bin)
	}
	return nil
}

func (b *bench) runParts(ctx context.Context, rep *report) error {
	progress("starting PostgreSQL 15 (initdb in %s)", b.dir)
	var err error
	if b.db, err = startCluster(ctx, b.pgBin, b.dir); err != nil {
		return err
	}
	if b.caller, err = newCaller(); err != nil {
		return err
	}
	rep.postgres = b.postgresVersion(ctx)
	rep.tokenstore = b.tokenstoreVersion(ctx)
	for _, part := range b.parts {
		switch part {
		case "http":
			rep.http, err = b.httpPart(ctx)
		case "storm":
			rep.storm, err = b.stormPart(ctx)
		case "reencrypt":
			rep.reenc, err = b.reencryptPart(ctx)
		case "memory":
			rep.memory, err = b.memoryPart(ctx)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", part, err)
		}
	}
	return nil
}

func (b *bench) cleanup() {
	for _, s := range b.servers {
		s.stop()
	}
	b.servers = nil
	if b.db != nil {
		b.db.stop()
	}
}

func (b *bench) postgresVersion(ctx context.Context) string {
	var v string
	if err := b.db.admin.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

func (b *bench) tokenstoreVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, b.bin, "version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// progress tells what the run is doing, on stderr (the report is stdout).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench:http: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

var errInvalid = errors.New("the run is invalid")
