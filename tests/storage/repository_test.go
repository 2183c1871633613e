package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/repotest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func TestRepositoryContract(t *testing.T) {
	t.Parallel()
	repotest.Run(t, func(t *testing.T) repotest.Repository {
		return postgres.New(testdb.New(t), postgres.Options{})
	})
}

func setup(t *testing.T, opts postgres.Options) (*postgres.Repository, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.New(t)
	return postgres.New(pool, opts), pool
}

// waitForLockWaiters polls until n sessions of this database wait on a lock.
// It asks PostgreSQL rather than sleeping, so it is exact on a slow machine.
func waitForLockWaiters(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		err := pool.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions waiting on a lock after 30s, want %d", waiting, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUpdateBlocksSecondLockerUntilFirstCommits(t *testing.T) {
	t.Parallel()
	repo, pool := setup(t, postgres.Options{})
	ctx := context.Background()
	if _, err := repo.PutAuthTokens(ctx, repotest.Sample("u1", domain.ProviderGitLab, "0")); err != nil {
		t.Fatal(err)
	}

	holding, release := make(chan struct{}), make(chan struct{})
	firstDone := make(chan error, 1)
	go func() {
		next := repotest.Sample("u1", domain.ProviderGitLab, "first")
		_, err := repo.UpdateAuthTokens(ctx, "u1", domain.ProviderGitLab,
			func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
				close(holding)
				<-release
				return &next, nil, nil
			})
		firstDone <- err
	}()
	<-holding

	type result struct {
		seen domain.SealedAuthTokens
		err  error
	}
	secondDone := make(chan result, 1)
	go func() {
		var seen domain.SealedAuthTokens
		_, err := repo.UpdateAuthTokens(ctx, "u1", domain.ProviderGitLab,
			func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
				seen = cur
				return nil, nil, nil
			})
		secondDone <- result{seen, err}
	}()

	waitForLockWaiters(t, pool, 1)
	select {
	case r := <-secondDone:
		t.Fatalf("second locker finished while the first held the row: %+v", r)
	default:
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatalf("first update: %v", err)
	}
	r := <-secondDone
	if r.err != nil {
		t.Fatalf("second update: %v", r.err)
	}
	// The second locker read the row as the first committed it.
	repotest.AssertSameTokens(t, r.seen, repotest.Sample("u1", domain.ProviderGitLab, "first"))
	if r.seen.Version != 2 {
		t.Errorf("second locker saw version %d, want 2", r.seen.Version)
	}
}

func TestLockTimeoutIsBusy(t *testing.T) {
	t.Parallel()
	repo, pool := setup(t, postgres.Options{LockTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	if _, err := repo.PutAuthTokens(ctx, repotest.Sample("u2", domain.ProviderGitLab, "0")); err != nil {
		t.Fatal(err)
	}
	// Another transaction (another instance, say) holds the row.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT 1 FROM auth_tokens WHERE user_id = 'u2' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	called := false
	_, err = repo.UpdateAuthTokens(ctx, "u2", domain.ProviderGitLab,
		func(domain.SealedAuthTokens, time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
			called = true
			return nil, nil, nil
		})
	if !errors.Is(err, domain.ErrBusy) {
		t.Fatalf("UpdateAuthTokens on a locked row = %v, want ErrBusy", err)
	}
	if called {
		t.Error("fn ran without the lock")
	}
	// The timeout is local to the unit of work: the pool's sessions keep the default.
	var setting string
	if err := pool.QueryRow(ctx, `SHOW lock_timeout`).Scan(&setting); err != nil {
		t.Fatal(err)
	}
	if setting != "0" {
		t.Errorf("lock_timeout leaked into the session: %q", setting)
	}
}

func TestDatabaseRejectsInvalidRows(t *testing.T) {
	t.Parallel()
	repo, _ := setup(t, postgres.Options{})
	ok := repotest.Sample("u3", domain.ProviderGitLab, "1")
	cases := map[string]func(*domain.SealedAuthTokens){
		"provider not a provider name": func(s *domain.SealedAuthTokens) { s.Provider = "Git Lab" },
		"empty user":                   func(s *domain.SealedAuthTokens) { s.User = "" },
		"empty key id":                 func(s *domain.SealedAuthTokens) { s.KeyID = "" },
		"empty access token":           func(s *domain.SealedAuthTokens) { s.AccessToken = []byte{} },
		"refresh expiry without token": func(s *domain.SealedAuthTokens) { s.RefreshToken = nil },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bad := ok
			mutate(&bad)
			if _, err := repo.PutAuthTokens(context.Background(), bad); !errors.Is(err, domain.ErrInvalid) {
				t.Fatalf("PutAuthTokens = %v, want ErrInvalid", err)
			}
		})
	}
}
