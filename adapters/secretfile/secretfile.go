// Package secretfile reads the files that hold tokenstore's secrets: key
// files, the replaced system's JWT secret (TOKENSTORE_JWT_SECRET_FILE and
// `import openhands --jwt-secret-file`), client secret files, the
// development caller credential, the TLS private key
// (TOKENSTORE_HTTP_TLS_KEY_FILE), and config files that carry a secret
// inline. One home for the rule that such a file must be private, so that
// every secret file is judged the same way, whichever setting or flag names
// it. There is deliberately no way to read a secret file without the check.
//
// Errors name the setting that gave the path (for example
// "TOKENSTORE_KEY_FILE (key_file)") and never quote the file's content.
package secretfile

import (
	"fmt"
	"os"
	"strings"
)

// Check refuses path when group or others may read or write it: a secret
// another account can read is no longer secret. The error says how to fix
// the mode.
func Check(path, setting string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: %s is readable by group or others (mode %04o); run `chmod 600 %s`",
			setting, path, info.Mode().Perm(), path)
	}
	return nil
}

// Read returns the content of path without its final line breaks, after
// Check has accepted its mode. Every other character, spaces included, is
// part of the secret: the same file gives the same secret (and the same
// derived key) whichever setting reads it. An empty file gives "".
func Read(path, setting string) (string, error) {
	if err := Check(path, setting); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", setting, err)
	}
	defer clear(b)
	return strings.TrimRight(string(b), "\r\n"), nil
}
