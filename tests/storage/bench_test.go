package storage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// readPathTarget: a service read (load, open the bound envelope, decrypt)
// may cost at most this many times a bare repository read of the same row,
// measured in the same run. Crypto and binding should be noise next to the
// database round trip.
const readPathTarget = 1.5

// benchStore is a repository on a fresh database and a keyring of one
// fresh key.
func benchStore(b *testing.B) (*postgres.Repository, *fernet.Keyring) {
	return postgres.New(testdb.New(b), postgres.Options{}), benchKeyring(b)
}

// benchKeyring is a keyring of one fresh key.
func benchKeyring(b *testing.B) *fernet.Keyring {
	key, err := fernet.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ring, err := fernet.NewKeyring(key)
	if err != nil {
		b.Fatal(err)
	}
	return ring
}

// BenchmarkReadPath compares TokenService.GetAccessToken with the bare
// repository read it is built on, as a ratio (x-repo), so the figure means
// the same on a fast laptop and on a shared 2-core CI machine.
func BenchmarkReadPath(b *testing.B) {
	ctx := context.Background()
	repo, ring := benchStore(b)
	svc := app.NewTokenService(app.Config{Providers: []domain.Provider{domain.ProviderGitLab}}, nil, ring, repo, app.NoRefresher{}, nil)
	if _, err := svc.PutAuthTokens(ctx, domain.AuthTokens{
		User: "bench", Provider: domain.ProviderGitLab,
		AccessToken:  domain.NewSecret("glpat-benchmark-access-token-0123456789"),
		RefreshToken: domain.NewSecret("glrt-benchmark-refresh-token-0123456789"),
		AccessExpiry: domain.At(time.Now().Add(24 * time.Hour)),
	}); err != nil {
		b.Fatal(err)
	}
	measure := func(n int, fn func() error) time.Duration {
		start := time.Now()
		for range n {
			if err := fn(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	repoRead := func() error { _, err := repo.GetAuthTokens(ctx, "bench", domain.ProviderGitLab); return err }
	svcRead := func() error { _, err := svc.GetAccessToken(ctx, "bench", domain.ProviderGitLab); return err }
	measure(50, repoRead) // warm the pool
	measure(50, svcRead)

	b.ResetTimer()
	var base, full time.Duration
	for b.Loop() {
		// Interleaved, so machine noise hits both sides alike.
		base += measure(1, repoRead)
		full += measure(1, svcRead)
	}
	ratio := float64(full) / float64(base)
	b.ReportMetric(ratio, "x-repo")
	b.ReportMetric(float64(full.Microseconds())/float64(b.N), "µs-service/op")
	if ratio > readPathTarget {
		b.Errorf("service read costs %.2fx a repository read; target <= %.1fx", ratio, readPathTarget)
	}
}

// batchCounter counts the batcher's inserts and their events, so the
// benchmark can say how far batching went (each insert costs about as much
// as a few reads' own work, whatever its size).
type batchCounter struct {
	ports.AuditRecorder
	calls, events atomic.Int64
}

func (c *batchCounter) RecordAuditEvents(ctx context.Context, events []domain.AuditEvent) error {
	c.calls.Add(1)
	c.events.Add(int64(len(events)))
	return c.AuditRecorder.RecordAuditEvents(ctx, events)
}

// auditedReadsTarget: concurrent reads with the fail-closed audit trail must
// keep at least this fraction of the throughput of reads without it,
// measured in the same run (issue 11).
const auditedReadsTarget = 0.8

// BenchmarkAuditedReads compares concurrent GetAccessToken throughput with
// audit.mode off and fail_closed on one database and pool, as a ratio
// (x-off: audited throughput / unaudited), interleaved so machine noise
// hits both alike. 32 readers at once: the batcher writes their events
// with one insert per batch, which is what keeps the ratio up.
func BenchmarkAuditedReads(b *testing.B) {
	ctx := context.Background()
	repo, ring := benchStore(b)
	cfg := app.Config{Providers: []domain.Provider{domain.ProviderGitLab}}
	batches := &batchCounter{AuditRecorder: repo}
	auditor := app.NewAuditor(app.AuditConfig{Mode: app.AuditFailClosed, Instance: "bench"}, nil, batches)
	b.Cleanup(func() { _ = auditor.Stop(context.Background()) })
	off := app.NewTokenService(cfg, nil, ring, repo, app.NoRefresher{}, nil)
	audited := app.NewTokenService(cfg, nil, ring, repo, app.NoRefresher{}, auditor)
	if _, err := off.PutAuthTokens(ctx, domain.AuthTokens{
		User: "bench", Provider: domain.ProviderGitLab,
		AccessToken:  domain.NewSecret("glpat-benchmark-access-token-0123456789"),
		AccessExpiry: domain.At(time.Now().Add(24 * time.Hour)),
	}); err != nil {
		b.Fatal(err)
	}
	const readers, each = 32, 10
	measure := func(svc *app.TokenService) time.Duration {
		return concurrently(b, readers, each, func(int, int) error {
			_, err := svc.GetAccessToken(ctx, "bench", domain.ProviderGitLab)
			return err
		})
	}
	measure(off) // warm the pool
	measure(audited)

	b.ResetTimer()
	batches.calls.Store(0)
	batches.events.Store(0)
	var base, full time.Duration
	for b.Loop() {
		base += measure(off)
		full += measure(audited)
	}
	ratio := float64(base) / float64(full) // throughput ratio: same work, inverse times
	b.ReportMetric(ratio, "x-off")
	b.ReportMetric(float64(full.Microseconds())/float64(b.N*readers*each), "µs-audited/read")
	b.ReportMetric(float64(base.Microseconds())/float64(b.N*readers*each), "µs-off/read")
	b.ReportMetric(float64(batches.events.Load())/float64(max(batches.calls.Load(), 1)), "events/insert")
	if ratio < auditedReadsTarget {
		b.Errorf("fail-closed audited reads run at %.2fx the throughput of reads without audit; target >= %.1fx", ratio, auditedReadsTarget)
	}
}

// BenchmarkQueryExecModes measures what database.query_exec_mode costs: a
// repository read of one row through a pool in each of pgx's modes, direct
// to PostgreSQL, interleaved in one run and reported as a ratio to the
// default, cache_statement (x-cache_statement). It has no target: the
// figures are the README's (Poolers).
func BenchmarkQueryExecModes(b *testing.B) {
	ctx := context.Background()
	dsn, ring := testdb.NewDSN(b), benchKeyring(b)
	repos := make([]*postgres.Repository, len(postgres.QueryExecModes))
	for i, mode := range postgres.QueryExecModes {
		pool, err := postgres.NewPool(postgres.Config{URL: dsn, QueryExecMode: mode, MaxConns: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		repos[i] = postgres.New(pool, postgres.Options{})
	}
	svc := app.NewTokenService(app.Config{Providers: []domain.Provider{domain.ProviderGitLab}}, nil, ring, repos[0], app.NoRefresher{}, nil)
	if _, err := svc.PutAuthTokens(ctx, domain.AuthTokens{
		User: "bench", Provider: domain.ProviderGitLab,
		AccessToken:  domain.NewSecret("glpat-benchmark-access-token-0123456789"),
		AccessExpiry: domain.At(time.Now().Add(24 * time.Hour)),
	}); err != nil {
		b.Fatal(err)
	}
	took := make([]time.Duration, len(repos))
	read := func(i int) {
		start := time.Now()
		if _, err := repos[i].GetAuthTokens(ctx, "bench", domain.ProviderGitLab); err != nil {
			b.Fatalf("%s: %v", postgres.QueryExecModes[i], err)
		}
		took[i] += time.Since(start)
	}
	for range 50 { // connect and warm every pool
		for i := range repos {
			read(i)
		}
	}
	clear(took)
	b.ResetTimer()
	for b.Loop() {
		for i := range repos { // interleaved, so machine noise hits every mode alike
			read(i)
		}
	}
	for i, mode := range postgres.QueryExecModes {
		b.ReportMetric(float64(took[i])/float64(took[0]), mode+"-x-cache_statement")
		b.ReportMetric(float64(took[i].Microseconds())/float64(b.N), mode+"-µs/op")
	}
}

// BenchmarkOutboxPuts measures what the event outbox costs a PUT: 16
// concurrent writers storing tokens for distinct users through
// TokenService, with events on (the default) against events.enabled
// false, on one database and pool, interleaved in one run and reported as
// throughput ratios: x-off with the audit trail off (the outbox alone: a
// PUT becomes a transaction that locks the row, upserts and inserts its
// event, instead of one statement) and x-off-audited with the audit trail
// fail-closed, the default, where a PUT is already a transaction and the
// outbox adds two statements to it. It has no target: the figures are the
// README's (Events).
func BenchmarkOutboxPuts(b *testing.B) {
	ctx := context.Background()
	pool, ring := testdb.New(b), benchKeyring(b)
	withEvents, without := postgres.New(pool, postgres.Options{}), postgres.New(pool, postgres.Options{Events: domain.EventPolicy{Off: true}})
	cfg := app.Config{Providers: []domain.Provider{domain.ProviderGitLab}}
	auditor := app.NewAuditor(app.AuditConfig{Mode: app.AuditFailClosed, Instance: "bench"}, nil, withEvents)
	b.Cleanup(func() { _ = auditor.Stop(context.Background()) })
	svcs := map[string]*app.TokenService{
		"off":            app.NewTokenService(cfg, nil, ring, without, app.NoRefresher{}, nil),
		"events":         app.NewTokenService(cfg, nil, ring, withEvents, app.NoRefresher{}, nil),
		"off-audited":    app.NewTokenService(cfg, nil, ring, without, app.NoRefresher{}, auditor),
		"events-audited": app.NewTokenService(cfg, nil, ring, withEvents, app.NoRefresher{}, auditor),
	}
	const writers, each = 16, 10
	measure := func(name string) time.Duration {
		svc := svcs[name]
		return concurrently(b, writers, each, func(w, i int) error {
			_, err := svc.PutAuthTokens(ctx, domain.AuthTokens{
				User: domain.UserID(fmt.Sprintf("bench-%d-%d", w, i)), Provider: domain.ProviderGitLab,
				AccessToken:  domain.NewSecret("glpat-benchmark-access-token-0123456789"),
				RefreshToken: domain.NewSecret("glprt-benchmark-refresh-token-0123456789"),
				AccessExpiry: domain.At(time.Now().Add(24 * time.Hour)),
			})
			return err
		})
	}
	order := []string{"off", "events", "off-audited", "events-audited"}
	for _, name := range order { // warm the pool and create the rows
		measure(name)
	}
	b.ResetTimer()
	took := map[string]time.Duration{}
	for b.Loop() {
		for _, name := range order {
			took[name] += measure(name)
		}
	}
	// Throughput ratios: the same work, inverse times.
	b.ReportMetric(float64(took["off"])/float64(took["events"]), "x-off")
	b.ReportMetric(float64(took["off-audited"])/float64(took["events-audited"]), "x-off-audited")
	for _, name := range order {
		b.ReportMetric(float64(took[name].Microseconds())/float64(b.N*writers*each), "µs-"+name+"/put")
	}
}

// concurrently runs op(worker, i) each times in each of workers goroutines
// at once and returns how long they took together; the first error fails
// the benchmark.
func concurrently(b *testing.B, workers, each int, op func(worker, i int) error) time.Duration {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := op(w, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkCoalescedPuts measures the group commit of PutAuthTokens: 32
// writers at once storing tokens through TokenService with the default
// settings (events on, audit fail_closed) for random users among 1,000
// stored ones, on one database and one pool of postgres.DefaultMaxConns,
// with the group commit (the default) against each PUT alone
// (Options.PutsAlone, as before), interleaved in chunks of 320 PUTs so
// machine noise hits both alike. b.N is the PUTs of each side. Reported:
// x-alone, the throughput ratio (coalesced / alone); PUTs/s of each;
// puts/batch, the mean size of the batches that wrote several; alone-share,
// the share of coalesced PUTs written by a statement of their own. It has
// no target: the figures are the README's (Storage). The test database
// runs with fsync off, so the WAL flush each batch saves is not in the
// figure.
func BenchmarkCoalescedPuts(b *testing.B) {
	ctx := context.Background()
	pool := testdb.Pool(b, testdb.NewDSN(b), func(c *pgxpool.Config) { c.MaxConns = postgres.DefaultMaxConns })
	ring := benchKeyring(b)
	coalesced, alone := postgres.New(pool, postgres.Options{}), postgres.New(pool, postgres.Options{PutsAlone: true})
	cfg := app.Config{Providers: []domain.Provider{domain.ProviderGitLab}}
	auditor := app.NewAuditor(app.AuditConfig{Mode: app.AuditFailClosed, Instance: "bench"}, nil, coalesced)
	b.Cleanup(func() { _ = auditor.Stop(context.Background()) })
	svcs := []*app.TokenService{
		app.NewTokenService(cfg, nil, ring, coalesced, app.NoRefresher{}, auditor),
		app.NewTokenService(cfg, nil, ring, alone, app.NoRefresher{}, auditor),
	}
	const writers, users, chunk = 32, 1000, 320
	putUser := func(svc *app.TokenService, user int) error {
		_, err := svc.PutAuthTokens(ctx, domain.AuthTokens{
			User: domain.UserID(fmt.Sprintf("bench-%d", user)), Provider: domain.ProviderGitLab,
			AccessToken:  domain.NewSecret("glpat-benchmark-access-token-0123456789"),
			RefreshToken: domain.NewSecret("glprt-benchmark-refresh-token-0123456789"),
			AccessExpiry: domain.At(time.Now().Add(24 * time.Hour)),
		})
		return err
	}
	// measure runs n PUTs of random users, writers at a time.
	measure := func(svc *app.TokenService, n int) time.Duration {
		var left atomic.Int64
		left.Store(int64(n))
		return concurrently(b, writers, 1, func(int, int) error {
			for left.Add(-1) >= 0 {
				if err := putUser(svc, rand.IntN(users)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var seeded atomic.Int64
	concurrently(b, writers, 1, func(int, int) error { // store every user, warm the pool
		for u := seeded.Add(1) - 1; u < users; u = seeded.Add(1) - 1 {
			if err := putUser(svcs[1], int(u)); err != nil {
				return err
			}
		}
		return nil
	})
	measure(svcs[0], chunk)
	b.ResetTimer()
	before := coalesced.PutStats()
	var took [2]time.Duration
	for done := 0; done < b.N; done += chunk {
		for i, svc := range svcs {
			took[i] += measure(svc, min(chunk, b.N-done))
		}
	}
	b.StopTimer()
	stats := coalesced.PutStats()
	b.ReportMetric(float64(took[1])/float64(took[0]), "x-alone")
	b.ReportMetric(float64(b.N)/took[0].Seconds(), "coalesced-puts/s")
	b.ReportMetric(float64(b.N)/took[1].Seconds(), "alone-puts/s")
	b.ReportMetric(float64(stats.BatchedPuts-before.BatchedPuts)/float64(max(stats.Batches-before.Batches, 1)), "puts/batch")
	b.ReportMetric(float64(stats.Alone-before.Alone)/float64(b.N), "alone-share")
}
