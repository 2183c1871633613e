// Package testdb gives integration tests a real PostgreSQL: one container per
// test package (started in TestMain by Main), tokenstore's migrations applied
// once into a template database, and a fresh database cloned from that
// template for every test (New), so tests run in parallel without sharing
// state and without paying for migrations each time.
//
// The image is TOKENSTORE_TEST_POSTGRES_IMAGE (default DefaultImage). On a
// machine without a registry, tests/pgimage/ensure.sh builds a compatible
// image from Debian packages and points the variable at it.
package testdb

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" database/sql driver for the wait strategy
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/tokenstore/tokenstore/adapters/postgres"
)

const (
	// ImageEnv names the environment variable that selects the image.
	ImageEnv = "TOKENSTORE_TEST_POSTGRES_IMAGE"
	// DefaultImage is used where a registry is reachable.
	DefaultImage = "postgres:15-alpine"

	user         = "tokenstore"
	password     = "tokenstore-test"
	templateName = "tokenstore_template"
	dataDir      = "/var/lib/postgresql/data" // PGDATA of both images
)

var (
	pgContainer testcontainers.Container
	adminPool   *pgxpool.Pool
	baseDSN     string // DSN of the container's "postgres" database
	dbCounter   atomic.Int64
	cloneMu     sync.Mutex // CREATE DATABASE ... TEMPLATE refuses concurrent use of the template
)

// Image returns the PostgreSQL image tests run.
func Image() string {
	if img := os.Getenv(ImageEnv); img != "" {
		return img
	}
	return DefaultImage
}

// Main starts the container, prepares the template database, runs the
// package's tests and removes the container. Use it from TestMain:
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
func Main(m *testing.M) { MainWith(m, Options{}) }

// Options shape a package's PostgreSQL server.
type Options struct {
	// FixedPort publishes the server on a loopback port chosen once, so
	// that it keeps its address when a fault test restarts the container
	// (Docker picks a new random port at each start otherwise).
	FixedPort bool
	// AfterRun, if set, runs once the tests have finished (a package's
	// summary of what its tests measured).
	AfterRun func()
}

// MainWith is Main with options, for packages that need more of their
// server than a database per test (tests/faults stops and pauses it).
func MainWith(m *testing.M, o Options) {
	code, err := run(m, o)
	if err != nil {
		log.Printf("testdb: %v", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(m *testing.M, o Options) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if os.Getenv("TOKENSTORE_TEST_VERBOSE") == "" {
		tclog.SetDefault(tclog.NewNoopLogger()) // container chatter hides test output
	}
	image := Image()
	var fixed []testcontainers.ContainerCustomizer
	if o.FixedPort {
		port, err := FreeLoopbackPort()
		if err != nil {
			return 1, err
		}
		fixed = append(fixed, testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}},
			}
		}))
	}
	ctr, err := tcpostgres.Run(ctx, image, append([]testcontainers.ContainerCustomizer{
		tcpostgres.WithUsername(user),
		tcpostgres.WithPassword(password),
		tcpostgres.WithDatabase("postgres"),
		// Durability is worthless for a throwaway database; speed is not.
		testcontainers.WithCmd("postgres",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=300"),
		testcontainers.WithLabels(map[string]string{"org.tokenstore.test": "true"}),
		// The data directory on a volume of its own, as the public image
		// declares (VOLUME) and the image tests/pgimage builds does not: on
		// the container's own layer (fuse-overlayfs on some hosts) every
		// page PostgreSQL adds to a growing table is a slow write through
		// the overlay. An anonymous volume outlives a stop and start of the
		// container (tests/faults) and is removed with it.
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Target: dataDir})
		}),
		testcontainers.WithWaitStrategy(
			wait.ForSQL("5432/tcp", "pgx", func(host string, port network.Port) string {
				return dsn(host, port.Port(), "postgres")
			}).WithStartupTimeout(2 * time.Minute).WithPollInterval(200 * time.Millisecond),
		),
	}, fixed...)...)
	defer func() {
		if ctr != nil {
			if err := testcontainers.TerminateContainer(ctr); err != nil {
				log.Printf("testdb: terminate container: %v", err)
			}
		}
	}()
	if err != nil {
		return 1, fmt.Errorf("start PostgreSQL from image %q (set %s to choose another; "+
			"run tests through `go tool -modfile=tools/go.mod task test` to build one locally): %w",
			image, ImageEnv, err)
	}
	pgContainer = ctr
	host, err := ctr.Host(ctx)
	if err != nil {
		return 1, err
	}
	port, err := ctr.MappedPort(ctx, "5432/tcp")
	if err != nil {
		return 1, err
	}
	baseDSN = dsn(host, port.Port(), "postgres")
	log.Printf("testdb: PostgreSQL from %s at %s:%s", image, host, port.Port())

	adminPool, err = pgxpool.New(ctx, baseDSN)
	if err != nil {
		return 1, err
	}
	defer adminPool.Close()
	if err := prepareTemplate(ctx); err != nil {
		return 1, err
	}
	code := m.Run()
	if o.AfterRun != nil {
		o.AfterRun()
	}
	return code, nil
}

// ContainerID is the package's PostgreSQL container, for tests that pause,
// stop or restart it (docker pause ID); "" before Main started it.
func ContainerID() string {
	if pgContainer == nil {
		return ""
	}
	return pgContainer.GetContainerID()
}

// FreeLoopbackPort returns a loopback TCP port nothing listens on now (it
// may be taken before the caller binds it: callers that can, retry).
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func dsn(host, port, database string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password,
		net.JoinHostPort(host, port), database)
}

func prepareTemplate(ctx context.Context) error {
	if _, err := adminPool.Exec(ctx, "CREATE DATABASE "+templateName); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	m, err := postgres.NewMigrator(ctx, postgres.Config{URL: DSNFor(templateName)}, nil)
	if err != nil {
		return err
	}
	_, err = m.Up(ctx)
	_ = m.Close()
	if err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	_, err = adminPool.Exec(ctx, "ALTER DATABASE "+templateName+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false")
	return err
}

// DSNFor returns the connection string of a database in the container.
func DSNFor(database string) string {
	return strings.Replace(baseDSN, "/postgres?", "/"+database+"?", 1)
}

// NewDSN creates a migrated database for t and returns its connection
// string. The database is dropped when t ends.
func NewDSN(t testing.TB) string {
	t.Helper()
	return create(t, "TEMPLATE "+templateName)
}

// NewEmptyDSN creates a database with no schema at all (for migration tests).
func NewEmptyDSN(t testing.TB) string {
	t.Helper()
	return create(t, "TEMPLATE template0")
}

// New creates a migrated database for t and returns a pool on it, closed
// when t ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Pool(t, NewDSN(t), nil)
}

// Pool opens a pool on dsn, configured by configure if non-nil, and closes it
// when t ends.
func Pool(t testing.TB, dsn string, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("testdb: parse dsn: %v", err)
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testdb: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func create(t testing.TB, from string) string {
	t.Helper()
	if adminPool == nil {
		t.Fatal("testdb: no database server: call testdb.Main from the package's TestMain")
	}
	name := fmt.Sprintf("t%d_%d", dbCounter.Add(1), time.Now().UnixNano()%1_000_000)
	cloneMu.Lock()
	_, err := adminPool.Exec(context.Background(),
		"CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" "+from)
	cloneMu.Unlock()
	if err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() {
		_, err := adminPool.Exec(context.Background(),
			"DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			t.Errorf("testdb: drop database %s: %v", name, err)
		}
	})
	return DSNFor(name)
}
