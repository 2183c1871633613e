package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenstore/tokenstore/adapters/fernet"
)

// Memory (issue 14: server RSS ≤ 64 MiB with 100,000 rows cached): one
// tokenstore instance (the built binary, its defaults: read_cache.max_rows
// 100,000) on a database of 100,000 rows, each GET once through the API
// (32 connections), so every row is read once and kept; then the
// instance's resident memory (/proc/PID/status: VmRSS now, VmHWM its peak)
// against the target. The rows are sealed in this process with the
// instance's key (app.Seal, bound to their own user and provider, as a PUT
// seals them) and inserted in batches, like the re-encryption part's:
// 100,000 PUTs would take most of the run's time budget. User ids are 36
// characters (UUID-shaped), tokens GitLab-sized, each row with a refresh
// token, as the other parts' rows.

// defaultMemLimit is BENCH_GOMEMLIMIT's default: the target as Go's soft
// memory limit, as a deployment that wants the target would set it (see
// the README's Read cache).
const defaultMemLimit = "64MiB"

const (
	memoryRows     = 100_000
	memoryDatabase = "memory"
	memoryTarget   = 64 << 20 // bytes: issue 14's RSS bound
)

type memoryResult struct {
	seed, reads time.Duration
	kept        float64 // tokenstore_read_cache_rows after the reads
	misses      float64 // tokenstore_read_cache_reads_total{result="miss"}
	rss, peak   int64   // bytes: VmRSS after the reads, VmHWM
	anon, file  int64   // bytes: RssAnon and RssFile, VmRSS's parts (the heap and such; the binary's pages)
	idle        []int64 // bytes: VmRSS, RssAnon, RssFile once ready, before any read
	heap, sys   float64 // bytes: go_memstats_heap_inuse_bytes, go_memstats_sys_bytes
	limit       string  // the Go memory limit the instance ran with (BENCH_GOMEMLIMIT)
}

func memoryUser(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

func (b *bench) memoryPart(ctx context.Context) (*memoryResult, error) {
	url, err := b.newDatabase(ctx, memoryDatabase)
	if err != nil {
		return nil, err
	}
	key, err := fernet.GenerateKey()
	if err != nil {
		return nil, err
	}
	res := &memoryResult{limit: "GOMEMLIMIT=" + b.memLimit}
	progress("memory: sealing and inserting %d rows", memoryRows)
	t0 := time.Now()
	if err := seedSealed(ctx, url, key, memoryRows, memoryUser); err != nil {
		return nil, err
	}
	res.seed = time.Since(t0)
	s, err := b.startServer(ctx, "tokenstore-memory", serverConfig{
		"database":  map[string]any{"url": url},
		"keys":      []string{key.Encode()},
		"callers":   []any{b.caller.entry},
		"providers": []any{map[string]any{"name": provider, "refresh": false}},
		"metrics":   map[string]any{"addr": "127.0.0.1:0"},
	}, "GOMEMLIMIT="+b.memLimit)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	if res.idle, err = procStatus(s.pid(), "VmRSS", "RssAnon", "RssFile"); err != nil {
		return nil, err
	}
	progress("memory: GET each of the %d rows once (%d connections)", memoryRows, clients)
	t0 = time.Now()
	if err := b.readEach(ctx, s); err != nil {
		return nil, err
	}
	res.reads = time.Since(t0)
	st, err := procStatus(s.pid(), "VmRSS", "VmHWM", "RssAnon", "RssFile")
	if err != nil {
		return nil, err
	}
	res.rss, res.peak, res.anon, res.file = st[0], st[1], st[2], st[3]
	addr, err := metricsAddr(s.logPath)
	if err != nil {
		return nil, err
	}
	m, err := scrape(ctx, addr)
	if err != nil {
		return nil, err
	}
	res.kept, res.misses = m.value("tokenstore_read_cache_rows", ""), m.value("tokenstore_read_cache_reads_total", "miss")
	res.heap, res.sys = m.value("go_memstats_heap_inuse_bytes", ""), m.value("go_memstats_sys_bytes", "")
	// A row read from the database while the cache had no proof would not
	// be kept: the measurement would hold fewer rows than it claims.
	if res.misses < 0.99*memoryRows || res.kept < 0.99*memoryRows {
		return nil, fmt.Errorf("%w: the read cache read %.0f rows into memory and keeps %.0f, want about %d", errInvalid, res.misses, res.kept, memoryRows)
	}
	return res, nil
}

// readEach GETs every seeded row's access token once, clients at a time.
func (b *bench) readEach(ctx context.Context, s *server) error {
	return b.calls(ctx, memoryRows, func(i int) (string, string, any) {
		return http.MethodGet, tokensURL(s, memoryUser(i), provider), nil
	})
}

// metrics are an instance's metric families (its /metrics, parsed).
type metrics map[string]*dto.MetricFamily

func scrape(ctx context.Context, addr string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", addr, err)
	}
	return families, nil
}

// value is the gauge's or counter's value of the family name (its series
// whose label "result" is result, when result is not ""); 0 when absent.
func (m metrics) value(name, result string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	for _, s := range f.Metric {
		match := result == ""
		for _, l := range s.Label {
			match = match || (l.GetName() == "result" && l.GetValue() == result)
		}
		if match {
			return s.GetGauge().GetValue() + s.GetCounter().GetValue()
		}
	}
	return 0
}

// procStatus reads fields of a process's /proc/PID/status that it gives in
// kB, in bytes, in the order asked.
func procStatus(pid int, fields ...string) ([]int64, error) {
	body, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(fields))
	for i, f := range fields {
		found := false
		for line := range strings.SplitSeq(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, f+":"); ok {
				kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("/proc/%d/status: %q: %w", pid, line, err)
				}
				out[i], found = kb<<10, true
			}
		}
		if !found {
			return nil, fmt.Errorf("/proc/%d/status has no %s", pid, f)
		}
	}
	return out, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (r *report) printMemory() []target {
	m := r.memory
	r.printf("")
	r.printf("== Memory: one instance, %d rows each read once through the API (%s), %s ==", memoryRows, m.reads.Round(time.Millisecond), m.limit)
	r.printf("  rows sealed and inserted in %s; read cache: %.0f rows read into memory, %.0f kept", m.seed.Round(time.Millisecond), m.misses, m.kept)
	r.printf("  RSS once ready, before any read %s (anonymous %s, file-backed %s)", mib(m.idle[0]), mib(m.idle[1]), mib(m.idle[2]))
	r.printf("  RSS after the reads %s (anonymous %s, file-backed %s: the binary's pages), peak %s; Go heap in use %s, Go runtime's total from the OS %s",
		mib(m.rss), mib(m.anon), mib(m.file), mib(m.peak), mib(int64(m.heap)), mib(int64(m.sys)))
	return []target{{what: fmt.Sprintf("Memory: RSS with %d rows cached (%s)", memoryRows, m.limit), got: mib(m.rss) + " (peak " + mib(m.peak) + ")",
		want: "≤ " + mib(memoryTarget), met: m.rss <= memoryTarget}}
}
