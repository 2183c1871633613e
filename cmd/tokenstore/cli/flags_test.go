package cli_test

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
)

// TestEveryCommandTakesTheCommonFlags runs every form of every command
// (cli.CommandForms, the table Run dispatches on, so a new command is in
// it) with --help, -h, --config FILE before and after its words, and an
// unknown flag: help on stdout and nothing run; --config read wherever it
// stands by the forms that read configuration (and taken by the others);
// an unknown flag refused by name, with the usage on stderr.
func TestEveryCommandTakesTheCommonFlags(t *testing.T) {
	t.Parallel()
	// A file every reading command refuses, naming it: proof it was read.
	badConfig := writeFile(t, "tokenstore.yaml", "log:\n  format: xml\n", 0o600)
	forms := cli.CommandForms()
	if len(forms) < 10 {
		t.Fatalf("cli.CommandForms lists %d forms", len(forms))
	}
	for _, form := range forms {
		name, words := form.Args[0], form.Args[1:]
		t.Run(strings.Join(form.Args, " "), func(t *testing.T) {
			t.Parallel()
			for _, help := range []string{"--help", "-h"} {
				out, errOut, err := run(t, nil, append(slices.Clone(form.Args), help)...)
				if !errors.Is(err, flag.ErrHelp) {
					t.Errorf("%s: err = %v, want flag.ErrHelp (exit 0, nothing run)", help, err)
				}
				if !strings.Contains(out, "Usage: tokenstore "+name) || errOut != "" {
					t.Errorf("%s: want the usage on stdout, nothing on stderr:\nstdout:\n%s\nstderr:\n%s", help, out, errOut)
				}
			}
			for _, args := range [][]string{
				append(append([]string{name}, words...), "--config", badConfig), // after the words: migrate status --config F
				append([]string{name, "--config", badConfig}, words...),         // before them
			} {
				_, _, err := run(t, nil, args...)
				switch {
				case form.ReadsConfig:
					wantErr(t, err, badConfig, "log.format")
				case err != nil:
					t.Errorf("%v: %v; want --config taken (and ignored)", args, err)
				}
			}
			out, errOut, err := run(t, nil, append(slices.Clone(form.Args), "--no-such-flag")...)
			wantErr(t, err, "no-such-flag")
			if !strings.Contains(errOut, "Usage: tokenstore "+name) || out != "" {
				t.Errorf("unknown flag: want the usage on stderr, nothing on stdout:\nstdout:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
}
