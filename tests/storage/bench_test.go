package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// readPathTarget: a service read (load, open the bound envelope, decrypt)
// may cost at most this many times a bare repository read of the same row,
// measured in the same run. Crypto and binding should be noise next to the
// database round trip.
const readPathTarget = 1.5

// BenchmarkReadPath compares TokenService.GetAccessToken with the bare
// repository read it is built on, as a ratio (x-repo), so the figure means
// the same on a fast laptop and on a shared 2-core CI machine.
func BenchmarkReadPath(b *testing.B) {
	ctx := context.Background()
	repo := postgres.New(testdb.New(b), postgres.Options{})
	key, err := fernet.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	ring, err := fernet.NewKeyring(key)
	if err != nil {
		b.Fatal(err)
	}
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
