package cli

import (
	"errors"
	"fmt"

	"github.com/tokenstore/tokenstore/adapters/fernet"
)

func runKeys(args []string, env Env) error {
	fs := newFlags("keys", `Usage: tokenstore keys generate

  generate  print a new random Fernet key (32 bytes from crypto/rand, URL-safe
            base64) and its id. Put the key first in TOKENSTORE_KEYS or the
            key file to make it the primary; keep older keys after it so
            existing values stay readable.
`, env)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) != "generate" {
		fs.Usage()
		return errors.New("keys: say generate")
	}
	k, err := fernet.GenerateKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, k.Encode())
	fmt.Fprintf(env.Stderr, "key id %s\n", k.ID())
	return nil
}
