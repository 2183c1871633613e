package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/dig"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/postgres"
)

// Version is set at build time with -ldflags "-X github.com/tokenstore/tokenstore/cmd/tokenstore/cli.Version=v1.2.3".
var Version = "dev"

const usage = `tokenstore keeps identity-provider tokens encrypted in PostgreSQL.

Usage:
  tokenstore serve [--dev]                     run the HTTP API
  tokenstore migrate up|down|status [--dev]    manage the database schema
  tokenstore keys generate|list|rotate|retire  manage encryption keys (see keys --help)
  tokenstore callers generate --name NAME      print a new caller credential and its hash
  tokenstore import openhands [flags]          copy tokens from an OpenHands database
  tokenstore audit list [filters] [--dev]      print the audit trail (see audit --help)
  tokenstore events list|redeliver [--dev]     webhook and revocation deliveries (see events --help)
  tokenstore healthcheck [--url URL]           exit 0 when the server answers /readyz with 200
  tokenstore version                           print the version

Every command takes --help (-h) and --config FILE, and its flags before or
after its words. Configuration comes from a YAML file (--config or
TOKENSTORE_CONFIG) and TOKENSTORE_* environment variables, which win. Run
"tokenstore serve --help" for every setting. --dev, on every command that
uses the database or the keys, finds the development database and key
file that ` + "`task run`" + ` (serve --dev) uses.
`

// Env is what a command reads from its surroundings; tests supply their own.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Environ lists the variables (os.Environ), so that a misspelt
	// TOKENSTORE_ variable stops every command; nil checks none.
	Environ func() []string
}

// Run executes the command line args (without the program name).
func Run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return errors.New("missing command")
	}
	if env.Environ != nil {
		if err := checkEnviron(env.Environ()); err != nil {
			return err
		}
	}
	if i := slices.IndexFunc(commands(), func(c command) bool { return c.name == args[0] }); i >= 0 {
		return commands()[i].run(ctx, args[1:], env)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	default:
		fmt.Fprint(env.Stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// command is one of tokenstore's commands: its name, the words it takes
// first (each with whether that form reads the configuration: the others
// take --config and ignore it), and what runs it. Every form is in the
// flags test (TestEveryCommandTakesTheCommonFlags), so a new command cannot
// drift from the others' --help, --config and flag errors.
type command struct {
	name  string
	forms []commandForm
	run   func(context.Context, []string, Env) error
}

type commandForm struct {
	words       []string
	readsConfig bool
}

func commands() []command {
	form := func(readsConfig bool, words ...string) commandForm { return commandForm{words, readsConfig} }
	return []command{
		{"serve", []commandForm{form(true)}, runServe},
		{"migrate", []commandForm{form(true, "up"), form(true, "down"), form(true, "status")}, runMigrate},
		{"keys", []commandForm{form(false, "generate"), form(true, "list"), form(true, "rotate"), form(true, "retire", "0123456789abcdef")}, runKeys},
		{"callers", []commandForm{form(false, "generate", "--name", "svc")}, runCallers},
		{"import", []commandForm{form(true, "openhands", "--source-dsn-env", "NO_SUCH_VARIABLE", "--jwt-secret-env", "NO_SUCH_VARIABLE")}, runImport},
		{"audit", []commandForm{form(true, "list")}, runAudit},
		{"events", []commandForm{form(true, "list"), form(true, "redeliver", "ev_1"), form(true, "redeliver", "--failed")}, runEvents},
		{"healthcheck", []commandForm{form(true)}, runHealthcheck},
		{"version", []commandForm{form(false)}, runVersion},
	}
}

// CommandForm is one way to call a command: its words after the program
// name, and whether it reads the configuration (--config).
type CommandForm struct {
	Args        []string
	ReadsConfig bool
}

// CommandForms lists every command's forms, for tests.
func CommandForms() []CommandForm {
	var out []CommandForm
	for _, c := range commands() {
		for _, f := range c.forms {
			out = append(out, CommandForm{Args: append([]string{c.name}, f.words...), ReadsConfig: f.readsConfig})
		}
	}
	return out
}

func runVersion(_ context.Context, args []string, env Env) error {
	fs := newFlags("version", `Usage: tokenstore version

Prints the version: the one stamped at build time (task build), else the
module's (go install ...@version), else "dev". It reads no configuration.
`, env)
	addConfigFlags(fs, false)
	words, err := parseArgs(fs, args, env)
	if err != nil {
		return err
	}
	if len(words) != 0 {
		fs.Usage()
		return fmt.Errorf("version: unexpected %q", words[0])
	}
	fmt.Fprintln(env.Stdout, buildVersion())
	return nil
}

func buildVersion() string {
	if Version != "dev" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return Version
}

func runServe(ctx context.Context, args []string, env Env) error {
	fs := newFlags("serve", `Usage: tokenstore serve [--dev] [--config FILE]

Runs the HTTP API until SIGINT or SIGTERM, then drains in-flight requests.
--dev is for a laptop: it defaults the database to the one `+"`task run`"+` starts,
creates a key file and a caller credential under .dev/ (mode 0600) if
missing, declares github, gitlab, bitbucket, azure_devops and keycloak as
store-only providers when no providers are configured, and applies
migrations. --dev listens on 127.0.0.1 like serve: beyond loopback
only when http.addr asks, and then with TLS or http.plaintext, as always.
Outside --dev, a key, a caller and a database URL must be configured, and
tokens are stored only for declared providers.

TLS: http.tls_cert_file and http.tls_key_file, and http.client_ca_file for
client certificates; SIGHUP or a change of any of them reloads them without
dropping connections.

Keys: serve refuses to start while a stored value is sealed by a key the
keyring lacks, naming the key ids and how many values each seals; /readyz
answers 503 with the same facts if it happens later (another instance
rotated to a key this one lacks). SIGHUP loads the keys again from the same
sources (keys, key_file, jwt_secret) and swaps the keyring whole, unless the
new one lacks a key that seals stored values: then the current keyring
stays and an ERROR line names the missing key ids.
`+settingsHelp(), env)
	flags := addConfigFlags(fs, true)
	if words, err := parseArgs(fs, args, env); err != nil {
		return err
	} else if len(words) != 0 {
		fs.Usage()
		return fmt.Errorf("serve: unexpected %q", words[0])
	}
	// Caught from here on, so that a SIGHUP during start-up does not stop
	// the process either; handled once the server is built.
	hup, stopHangup := notifyHangup()
	defer stopHangup()
	// A broken log stream must not stop the server: see LogStream.
	ignoreBrokenPipes()
	logs := NewLogStream(env.Stderr, env.Stdout)
	// Buffered (see LogStream): whatever way serve returns, its lines are
	// out before main prints the error, if any, and exits.
	defer logs.Close()
	cfg, log, err := flags.load(env, logs, true)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log.Info("starting tokenstore", startupSummary(cfg)...)

	// SIGHUP reloads the keys from where they came from now.
	loadKeys := func() (Config, error) {
		c, err := Load(flags.path, flags.dev, env.Getenv)
		if err != nil {
			return c, err
		}
		return c, c.devKeys(log, true)
	}
	var reloads reloaders
	app := NewApp(cfg, log, withLogStream(logs), withReloaders(&reloads), withKeyLoader(loadKeys))
	if err := app.Err(); err != nil {
		return dig.RootCause(err) // the constructor's own error, not fx's account of the graph
	}
	hupCtx, stopReloads := context.WithCancel(ctx)
	defer stopReloads()
	go reloadOnHangup(hupCtx, hup, reloads, log)
	// Each start step bounds itself (connecting by database.timeout,
	// migrations by migrateStartTimeout) and fails with one line naming the
	// setting involved; fx adds nothing to a hook's error.
	if err := app.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout+5*time.Second)
	defer cancel()
	return app.Stop(stopCtx)
}

func runMigrate(ctx context.Context, args []string, env Env) error {
	fs := newFlags("migrate", `Usage: tokenstore migrate up|down|status [--dev] [--config FILE]

  up      apply every pending migration (safe from several instances at once:
          they serialise on a PostgreSQL advisory lock)
  down    roll back the latest migration
  status  list migrations and whether each is applied

The database is TOKENSTORE_DATABASE_DIRECT_URL when set (a session connection,
bypassing a pooler in transaction mode), else TOKENSTORE_DATABASE_URL (or
database.direct_url, database.url in the config file); with --dev, the
development database of `+"`task run`"+`.
`, env)
	flags := addConfigFlags(fs, true)
	words, err := parseArgs(fs, args, env)
	if err != nil {
		return err
	}
	if len(words) != 1 {
		fs.Usage()
		return errors.New("migrate: say up, down or status")
	}
	cfg, _, err := flags.load(env, env.Stderr, false)
	if err != nil {
		return err
	}
	if err := checkDatabase(cfg.Database); err != nil {
		return err
	}
	m, err := postgres.NewMigrator(ctx, cfg.Database, nil) // the direct URL, when set
	if err != nil {
		return err
	}
	defer m.Close()

	switch words[0] {
	case "up":
		n, err := m.Up(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "applied %d migration(s)\n", n)
	case "down":
		done, err := m.Down(ctx)
		if err != nil {
			return err
		}
		if done {
			fmt.Fprintln(env.Stdout, "rolled back 1 migration")
		} else {
			fmt.Fprintln(env.Stdout, "nothing to roll back")
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
			fmt.Fprintf(env.Stdout, "%05d  %-8s %s\n", s.Version, state, s.Name)
		}
	default:
		fs.Usage()
		return fmt.Errorf("migrate: unknown action %q: say up, down or status", words[0])
	}
	return nil
}

func runCallers(_ context.Context, args []string, env Env) error {
	fs := newFlags("callers", `Usage: tokenstore callers generate --name NAME [--permissions LIST] [--providers LIST] [--user-prefix PREFIX] [--client-cert-identity SAN]

It reads no configuration (--config is taken and ignored).

  generate  print a new random caller credential (give it to the caller) and
            the config entry holding only its hash (give that to tokenstore).
            --providers and --user-prefix limit the caller to those declared
            providers and to the users whose id starts with PREFIX;
            --client-cert-identity makes it present a client certificate
            with that URI SAN (such as a SPIFFE id) or DNS SAN too.
`, env)
	name := fs.String("name", "", "the caller's name, shown in request logs")
	perms := fs.String("permissions", strings.Join(httpapi.PermissionNames(), ","), "comma-separated permissions")
	providers := fs.String("providers", "", "comma-separated declared providers the caller may touch (default every provider)")
	userPrefix := fs.String("user-prefix", "", "the prefix of every user id the caller may touch, such as tenant-a/ (default every user)")
	certIdentity := fs.String("client-cert-identity", "", "URI SAN or DNS SAN of the client certificate the caller must also present (default none)")
	addConfigFlags(fs, false) // taken and not read: the entry printed is checked on its own
	words, err := parseArgs(fs, args, env)
	if err != nil {
		return err
	}
	if len(words) == 0 || words[0] != "generate" {
		fs.Usage()
		return errors.New("callers: say generate")
	} else if len(words) > 1 {
		fs.Usage()
		return fmt.Errorf("callers generate: unexpected %q", words[1])
	}
	if *name == "" {
		return errors.New("callers generate: --name is required")
	}
	var list []string
	for _, p := range strings.Split(*perms, ",") {
		perm, err := httpapi.ParsePermission(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("--permissions: %w", err)
		}
		list = append(list, string(perm))
	}
	entry := httpapi.CallerConfig{Name: *name, Permissions: list, UserPrefix: *userPrefix, ClientCertIdentity: *certIdentity}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["providers"] {
		entry.Providers = []string{} // given empty: refused below, as in the file
		for _, p := range strings.Split(*providers, ",") {
			if p = strings.TrimSpace(p); p != "" {
				entry.Providers = append(entry.Providers, p)
			}
		}
	}
	cred, hash, err := httpapi.NewCredential()
	if err != nil {
		return err
	}
	entry.CredentialHash = hash
	// The entry is checked as the loader will check it, so what is printed loads.
	// The error names the entry's member (providers, user_prefix), which
	// its flag is named after.
	if _, err := entry.Caller(); err != nil {
		return fmt.Errorf("callers generate: %w", err)
	}
	// The name is quoted: YAML would read "billing #2" as "billing" and a comment.
	fmt.Fprintf(env.Stdout, "credential: %s\n\n# config file entry:\ncallers:\n  - name: %s\n    credential_hash: %s\n    permissions: [%s]\n",
		cred, strconv.Quote(*name), hash, strings.Join(list, ", "))
	if entry.Providers != nil {
		fmt.Fprintf(env.Stdout, "    providers: [%s]\n", strings.Join(entry.Providers, ", "))
	}
	if entry.UserPrefix != "" {
		fmt.Fprintf(env.Stdout, "    user_prefix: %s\n", strconv.Quote(entry.UserPrefix))
	}
	if entry.ClientCertIdentity != "" {
		fmt.Fprintf(env.Stdout, "    client_cert_identity: %s\n", strconv.Quote(entry.ClientCertIdentity))
	}
	return nil
}

// connect opens a pool for a one-off command and checks the database
// answers, so a wrong URL fails at once with a clear error.
func connect(ctx context.Context, cfg postgres.Config) (*pgxpool.Pool, error) {
	if err := checkDatabase(cfg); err != nil {
		return nil, err
	}
	pool, err := postgres.NewPool(cfg)
	if err != nil {
		return nil, err
	}
	if err := postgres.PingOrClose(ctx, pool); err != nil { // bounded by database.timeout
		return nil, err
	}
	return pool, nil
}

// checkDatabase refuses a one-off command's database configuration before
// anything is read; without a URL it points at --dev too, since a
// newcomer's database is the one `task run` started.
func checkDatabase(cfg postgres.Config) error {
	if cfg.URL == "" {
		return errors.New("no database URL: set TOKENSTORE_DATABASE_URL (postgres://user:password@host:5432/dbname), " +
			"or give --dev for the development database of `task run`")
	}
	_, err := postgres.ParsePoolConfig(cfg)
	return err
}
