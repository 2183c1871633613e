package storage_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

func tables(t *testing.T, pool *pgxpool.Pool) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out[name] = true
	}
	return out
}

func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testdb.NewEmptyDSN(t)
	pool := testdb.Pool(t, dsn, nil)
	m, err := postgres.NewMigrator(ctx, postgres.Config{URL: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	applied, err := m.Up(ctx)
	if err != nil || applied == 0 {
		t.Fatalf("first up: applied %d, %v", applied, err)
	}
	current, latest, err := m.Versions(ctx)
	if err != nil || current != latest {
		t.Fatalf("after up: version %d of %d, %v", current, latest, err)
	}
	if got := tables(t, pool); !got["auth_tokens"] || !got["offline_tokens"] {
		t.Fatalf("after up, tables = %v", got)
	}
	if again, err := m.Up(ctx); err != nil || again != 0 {
		t.Fatalf("second up applied %d, %v; want 0", again, err)
	}

	if err := m.DownTo(ctx, 0); err != nil {
		t.Fatalf("down to 0: %v", err)
	}
	if got := tables(t, pool); got["auth_tokens"] || got["offline_tokens"] {
		t.Fatalf("after down, tables = %v", got)
	}
	var functions int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE proname = 'tokenstore_touch_row'`).Scan(&functions); err != nil || functions != 0 {
		t.Fatalf("after down, trigger function still there (%d, %v)", functions, err)
	}

	if reapplied, err := m.Up(ctx); err != nil || reapplied != applied {
		t.Fatalf("up again: applied %d, %v; want %d", reapplied, err, applied)
	}
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range status {
		if !s.Applied {
			t.Errorf("migration %d (%s) not applied after up-down-up", s.Version, s.Name)
		}
	}
}

// Several instances starting at once each run "migrate up"; goose's session
// lock must make exactly one of them apply each migration.
func TestMigrationsConcurrentInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testdb.NewEmptyDSN(t)
	const instances = 4
	applied := make([]int, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := postgres.NewMigrator(ctx, postgres.Config{URL: dsn}, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer m.Close()
			applied[i], errs[i] = m.Up(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for i := range instances {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	m, err := postgres.NewMigrator(ctx, postgres.Config{URL: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	status, err := m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if total != len(status) {
		t.Fatalf("instances applied %d migrations in all (%v), want each of %d once", total, applied, len(status))
	}
}
