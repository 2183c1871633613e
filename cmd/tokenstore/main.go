// Command tokenstore runs and operates the token store: `tokenstore migrate`
// manages the database schema; `tokenstore version` prints the build. It
// parses the command line and calls into the adapters; nothing else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/postgres"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `tokenstore keeps identity-provider tokens encrypted in PostgreSQL.

Usage:
  tokenstore migrate up|down|status   manage the database schema
  tokenstore version                  print the version

Settings come from the environment:
  TOKENSTORE_DATABASE_URL   PostgreSQL URL, e.g. postgres://user:pass@localhost:5432/tokenstore

Run "tokenstore <command> --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokenstore:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, buildVersion())
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return version
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", os.Getenv("TOKENSTORE_DATABASE_URL"),
		"PostgreSQL URL (default $TOKENSTORE_DATABASE_URL)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: tokenstore migrate [flags] up|down|status

  up      apply every pending migration (safe to run from several instances at once)
  down    roll back the latest migration
  status  list migrations and whether each is applied

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("migrate: say up, down or status")
	}
	if *dbURL == "" {
		return errors.New("migrate: no database: set TOKENSTORE_DATABASE_URL or --database-url")
	}
	pool, err := openPool(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := postgres.NewMigrator(pool, nil)
	if err != nil {
		return err
	}
	defer m.Close()

	switch fs.Arg(0) {
	case "up":
		n, err := m.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s)\n", n)
	case "down":
		done, err := m.Down(ctx)
		if err != nil {
			return err
		}
		if !done {
			fmt.Fprintln(stdout, "nothing to roll back")
		} else {
			fmt.Fprintln(stdout, "rolled back 1 migration")
		}
	case "status":
		states, err := m.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range states {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(stdout, "%05d  %-8s %s\n", s.Version, state, s.Name)
		}
	default:
		fs.Usage()
		return fmt.Errorf("migrate: unknown action %q: say up, down or status", fs.Arg(0))
	}
	return nil
}

// openPool connects and pings, so a wrong URL fails here with a clear error.
// Errors name the host, never the URL: it may contain a password.
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("TOKENSTORE_DATABASE_URL is not a valid PostgreSQL URL " +
			"(expected postgres://user:password@host:5432/dbname)")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}
