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
	"syscall"
)

// Check refuses path unless only its owner may read it, with one
// exception taken from PostgreSQL's rule for its server key file
// (be-secure-common.c, check_ssl_key_file_permissions): a file owned by
// root may also be readable by its group (at most mode 0640) when this
// process is not root. That is how Kubernetes mounts a Secret for a
// non-root pod with fsGroup (owner root, group the pod's, mode 0440): the
// group is an account the operator chose, and root could read the file
// anyway. Group write, and any access by others, is always refused. The
// error says how to fix the mode.
func Check(path, setting string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	owner, euid := -1, os.Geteuid()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		owner = int(st.Uid)
	}
	if !private(info.Mode().Perm(), owner, euid) {
		fix := fmt.Sprintf("`chmod 600 %s`", path)
		if owner == 0 && euid != 0 {
			fix = fmt.Sprintf("`chmod 440 %s` (root owns it: its group may read, nobody else)", path)
		}
		return fmt.Errorf("%s: %s is readable by group or others (mode %04o); run %s",
			setting, path, info.Mode().Perm(), fix)
	}
	return nil
}

// private is Check's rule for a file of mode perm owned by the user id
// owner (-1 when unknown), read by a process whose effective user id is
// euid.
func private(perm os.FileMode, owner, euid int) bool {
	if owner == 0 && euid != 0 {
		return perm&0o037 == 0 // owner anything, group read only, others nothing
	}
	return perm&0o077 == 0
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
