package secretfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/secretfile"
)

// WriteFile writes content to a new file in dir with exactly mode (the
// umask may have narrowed what os.WriteFile made).
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	private := writeFile(t, dir, "private", " s3cret \r\n\n", 0o600)
	if got, err := secretfile.Read(private, "SETTING"); err != nil || got != " s3cret " {
		t.Errorf("Read(0600) = %q, %v; want the content without its final line breaks", got, err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602} {
		shared := writeFile(t, dir, "shared"+mode.String(), "s3cret\n", mode)
		_, err := secretfile.Read(shared, "SETTING")
		if err == nil || !strings.HasPrefix(err.Error(), "SETTING: "+shared+" is readable by group or others") ||
			!strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Read(%04o) error = %v; want the setting, the mode and the fix, never the content", mode, err)
		}
	}
	if _, err := secretfile.Read(filepath.Join(dir, "missing"), "SETTING"); err == nil || !strings.HasPrefix(err.Error(), "SETTING: ") {
		t.Errorf("Read(missing) error = %v; want it to start with the setting", err)
	}
}
