package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// newFlags is a command's flag set: --help and -h print synopsis (and the
// flags) on stdout, an unknown or malformed flag is an error with the usage
// on stderr. Parse it with parseArgs.
func newFlags(name, synopsis string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), synopsis)
		if hasFlags(fs) {
			fmt.Fprintln(fs.Output(), "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseArgs parses flags wherever they stand, before, between or after the
// command's words (migrate status --config F is migrate --config F status),
// and returns the words. Everything after "--" is a word. --help prints
// the usage on stdout and returns flag.ErrHelp, which main turns into exit
// status 0.
func parseArgs(fs *flag.FlagSet, args []string, env Env) ([]string, error) {
	usage := fs.Usage
	fs.Usage = func() {} // printed below, where it belongs
	defer func() { fs.Usage = usage }()
	var words []string
	for {
		before := len(args)
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(env.Stdout)
			usage()
			fs.SetOutput(env.Stderr)
			return nil, err
		} else if err != nil {
			usage()
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return words, nil
		}
		// flag stops at the first word, or after "--", which it consumes.
		if consumed := before - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(words, rest...), nil
		}
		words, args = append(words, rest[0]), rest[1:]
	}
}

// configFlags are --config, which every command takes, and --dev, which
// every command that uses the database or the keys takes.
type configFlags struct {
	path string
	dev  bool
}

// addConfigFlags registers --config and, when dev, --dev on fs.
func addConfigFlags(fs *flag.FlagSet, dev bool) *configFlags {
	f := &configFlags{}
	fs.StringVar(&f.path, "config", "", "YAML config file (default $TOKENSTORE_CONFIG)")
	if dev {
		fs.BoolVar(&f.dev, "dev", false, "the development database and keys `task run` (serve --dev) uses: dev.database_port on 127.0.0.1 and the key file in TOKENSTORE_DEV_DIR (.dev)")
	}
	return f
}

// load is the configuration a command runs with, and its logger writing to
// logTo: Load's, then with --dev what prepareDev adds. serve --dev and
// every one-off command's --dev come through here, so they find the same
// database and key file; create is serve's (make the development key and
// credential when missing), a one-off command only finds them.
func (f *configFlags) load(env Env, logTo io.Writer, create bool) (Config, *slog.Logger, error) {
	cfg, err := Load(f.path, f.dev, env.Getenv)
	if err != nil {
		return Config{}, nil, err
	}
	log := NewLogger(cfg.Log, logTo)
	if cfg.Dev {
		devLog := log
		if !create {
			devLog = slog.New(slog.DiscardHandler) // what --dev found is not news to a one-off command
		}
		if err := prepareDev(&cfg, devLog, create); err != nil {
			return Config{}, nil, err
		}
	}
	return cfg, log, nil
}
