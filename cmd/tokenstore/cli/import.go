package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/openhands"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/adapters/secretfile"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

const importUsage = `Usage: tokenstore import SYSTEM [flags]

Copies another token store's tokens into tokenstore. Systems:

  openhands   the OpenHands enterprise database (tables auth_tokens and
              offline_tokens); run "tokenstore import openhands --help"
`

const importOpenHandsUsage = `Usage: tokenstore import openhands
         (--source-dsn DSN | --source-dsn-env VAR)
         (--jwt-secret-file FILE | --jwt-secret-env VAR)
         [--dry-run] [--batch-size N] [--dev] [--config FILE]

Copies every row of an OpenHands enterprise database's auth_tokens and
offline_tokens tables into tokenstore. OpenHands encrypted them with Fernet
under base64(SHA-256(its JWT secret)); give that secret. Each value is
decrypted, checked (user id, provider name), re-encrypted under tokenstore's
primary key and bound to its row.

  - Tokens tokenstore already holds for a user (and provider) are left as
    they are, so running the import twice changes nothing.
  - Rows are written in batches, each in one transaction. A row that cannot
    be imported (wrong secret, bad ciphertext, invalid user id or provider
    name, a provider the providers setting does not declare) is reported
    and skipped; the rest of its batch is imported.
  - An expiry of 0 means "never expires"; an empty refresh token means "no
    refresh token".
  - The OpenHands database is only read (its sessions are read-only).

The target database and keys come from tokenstore's configuration
(TOKENSTORE_DATABASE_URL, TOKENSTORE_KEYS or TOKENSTORE_KEY_FILE, or the
--config file; with --dev, the development database and key file of
` + "`task run`" + `); its schema must be migrated (tokenstore migrate up).

Prefer --source-dsn-env and --jwt-secret-file: a command line is visible to
every user of the machine. Neither the source password nor the JWT secret is
ever printed. The secret file must be mode 0600, like every secret file; a
final newline in it is ignored.

Prints a summary (imported, already present, failed, and each failed row by
table, source id, user and provider with the reason) and exits non-zero if
any row failed.
`

func runImport(ctx context.Context, args []string, env Env) error {
	// The system is the first word; the common flags (--config FILE, --dev)
	// may stand before it, as before any command's words.
	for i := 0; i < len(args); i++ {
		switch a := strings.TrimLeft(args[i], "-"); {
		case a == "config" && strings.HasPrefix(args[i], "-"):
			i++ // its value
		case strings.HasPrefix(args[i], "-") && (a == "dev" || strings.HasPrefix(a, "config=") || strings.HasPrefix(a, "dev=")):
		case args[i] == "-h" || args[i] == "--help" || args[i] == "-help" || args[i] == "help":
			fmt.Fprint(env.Stdout, importUsage)
			return flag.ErrHelp
		case args[i] == "openhands":
			return runImportOpenHands(ctx, slices.Delete(slices.Clone(args), i, i+1), env)
		default:
			fmt.Fprint(env.Stderr, importUsage)
			return fmt.Errorf("import: unknown system %q: say openhands", args[i])
		}
	}
	fmt.Fprint(env.Stderr, importUsage)
	return errors.New("import: say which system to import from: openhands")
}

func runImportOpenHands(ctx context.Context, args []string, env Env) error {
	fs := newFlags("import openhands", importOpenHandsUsage, env)
	dsn := fs.String("source-dsn", "", "OpenHands database URL, postgres://user:password@host:5432/dbname")
	dsnEnv := fs.String("source-dsn-env", "", "environment variable holding the OpenHands database URL")
	secretFile := fs.String("jwt-secret-file", "", "file holding OpenHands' JWT secret")
	secretEnv := fs.String("jwt-secret-env", "", "environment variable holding OpenHands' JWT secret")
	dryRun := fs.Bool("dry-run", false, "read, decrypt and check everything, write nothing, report what would be imported")
	batch := fs.Int("batch-size", app.DefaultImportBatchSize,
		fmt.Sprintf("rows per batch and transaction (1 to %d)", app.MaxImportBatchSize))
	flags := addConfigFlags(fs, true)
	words, err := parseArgs(fs, args, env)
	if err != nil {
		return err
	}
	if len(words) != 0 {
		fs.Usage()
		return fmt.Errorf("import openhands: unexpected argument %q", words[0])
	}
	// The configuration first: its errors name the file or variable.
	cfg, log, err := flags.load(env, env.Stderr, false)
	if err != nil {
		return err
	}
	if *batch < 1 || *batch > app.MaxImportBatchSize {
		return fmt.Errorf("import openhands: --batch-size %d is not from 1 to %d", *batch, app.MaxImportBatchSize)
	}
	sourceDSN, err := importSourceDSN(*dsn, *dsnEnv, env)
	if err != nil {
		return err
	}
	secret, err := importJWTSecret(*secretFile, *secretEnv, env)
	if err != nil {
		return err
	}

	if err := checkDatabase(cfg.Database); err != nil {
		return err
	}
	keyring, err := cfg.Keyring()
	if err != nil {
		return err
	}

	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	target, err := connect(connectCtx, cfg.Database)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := checkSchemaCurrent(connectCtx, target); err != nil {
		return err
	}
	sourcePool, err := openhands.Connect(connectCtx, sourceDSN)
	if err != nil {
		return err
	}
	defer sourcePool.Close()
	source, err := openhands.NewSource(sourcePool, secret)
	if err != nil {
		return err
	}
	if err := source.Check(connectCtx); err != nil {
		return err
	}

	log.Info("importing from OpenHands", "source", postgres.RedactURL(sourceDSN), "target", cfg.Database,
		"primary_key", keyring.PrimaryKeyID(), "dry_run", *dryRun, "batch_size", *batch)
	repo := postgres.New(target, cfg.Database.Options())
	audit := commandAuditor(cfg, log, repo)
	defer flushAuditor(audit, cfg, log)
	importer := app.NewImporter(log, cfg.App.Providers, keyring, repo, audit)
	sum, importErr := importer.Import(ctx, source, app.ImportOptions{BatchSize: *batch, DryRun: *dryRun, Envelope: cfg.App.Envelope})
	printImportSummary(env.Stdout, sum)
	if importErr != nil {
		return fmt.Errorf("%w (batches reported above are committed; running the import again skips them)", importErr)
	}
	if n := sum.Total().Failed; n > 0 {
		return fmt.Errorf("import openhands: %d row(s) could not be imported; they are listed above", n)
	}
	return nil
}

// importSourceDSN takes the connection string from exactly one place.
func importSourceDSN(dsn, envVar string, env Env) (string, error) {
	switch {
	case dsn != "" && envVar != "":
		return "", errors.New("import openhands: give --source-dsn or --source-dsn-env, not both")
	case dsn != "":
		return dsn, nil
	case envVar != "":
		v := env.Getenv(envVar)
		if v == "" {
			return "", fmt.Errorf("import openhands: --source-dsn-env: the variable %s is empty or unset", envVar)
		}
		return v, nil
	default:
		return "", errors.New("import openhands: say where the OpenHands database is: --source-dsn-env VAR or --source-dsn DSN")
	}
}

// importJWTSecret reads OpenHands' JWT secret from exactly one place. A
// file is read as TOKENSTORE_JWT_SECRET_FILE is (secretfile.Read: private,
// only its final line breaks dropped), so one file gives one key.
func importJWTSecret(file, envVar string, env Env) (domain.Secret, error) {
	var secret string
	switch {
	case file != "" && envVar != "":
		return domain.Secret{}, errors.New("import openhands: give --jwt-secret-file or --jwt-secret-env, not both")
	case file != "":
		var err error
		if secret, err = secretfile.Read(file, "import openhands: --jwt-secret-file"); err != nil {
			return domain.Secret{}, err
		}
		if secret == "" {
			return domain.Secret{}, fmt.Errorf("import openhands: --jwt-secret-file: %s is empty", file)
		}
	case envVar != "":
		secret = env.Getenv(envVar)
		if secret == "" {
			return domain.Secret{}, fmt.Errorf("import openhands: --jwt-secret-env: the variable %s is empty or unset", envVar)
		}
	default:
		return domain.Secret{}, errors.New("import openhands: give OpenHands' JWT secret: --jwt-secret-file FILE or --jwt-secret-env VAR")
	}
	return domain.NewSecret(secret), nil
}

// checkSchemaCurrent refuses a target whose schema is behind this build.
func checkSchemaCurrent(ctx context.Context, pool *pgxpool.Pool) error {
	current, latest, err := postgres.SchemaVersions(ctx, pool)
	if err != nil {
		return err
	}
	if current != latest {
		return fmt.Errorf("the tokenstore database schema is at version %d, this build needs %d: run `tokenstore migrate up` first",
			current, latest)
	}
	return nil
}

// printImportSummary writes the counts and every failed row. User ids and
// provider names are quoted: they come from the source as they are, and a
// line break in one must not forge a line of the report.
func printImportSummary(w io.Writer, sum app.ImportSummary) {
	title, imported := "Imported from OpenHands", "imported"
	if sum.DryRun {
		title, imported = "Dry run of the import from OpenHands: nothing was written", "would import"
	}
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\t%s\talready present\tfailed\t\n", imported)
	row := func(name string, c app.ImportCounts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", name, c.Imported, c.AlreadyPresent, c.Failed)
	}
	row(app.ImportTableAuthTokens, sum.AuthTokens)
	row(app.ImportTableOfflineTokens, sum.OfflineTokens)
	row("total", sum.Total())
	_ = tw.Flush()
	if len(sum.Failures) == 0 {
		return
	}
	fmt.Fprintln(w, "\nFailed rows:")
	for _, f := range sum.Failures {
		var where string
		if f.Table == app.ImportTableOfflineTokens {
			where = fmt.Sprintf("%s user_id %s", f.Table, strconv.Quote(f.SourceID))
		} else {
			where = fmt.Sprintf("%s id %s (user %s, provider %s)", f.Table, oneLine(f.SourceID),
				strconv.Quote(f.User), strconv.Quote(f.Provider))
		}
		fmt.Fprintf(w, "  %s: %s: %s\n", where, f.Reason, oneLine(f.Detail))
	}
}

// oneLine replaces control characters, so a value from the source cannot
// break a report line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}
