package secretfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/adapters/secretfile"
)

func TestRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("  s3cret\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // the umask may have narrowed it
			t.Fatal(err)
		}
		return path
	}
	private, shared := write("private", 0o600), write("shared", 0o640)

	if got, err := secretfile.Read(private, "SETTING"); err != nil || got != "s3cret" {
		t.Errorf("Read(0600) = %q, %v; want the trimmed content", got, err)
	}
	_, err := secretfile.Read(shared, "SETTING")
	if err == nil || !strings.Contains(err.Error(), "SETTING") || !strings.Contains(err.Error(), "chmod 600") ||
		!strings.Contains(err.Error(), "0640") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Read(0640) error = %v; want the setting, the mode and the fix, never the content", err)
	}
	if got, err := secretfile.ReadUnchecked(shared, "SETTING"); err != nil || got != "s3cret" {
		t.Errorf("ReadUnchecked(0640) = %q, %v; want the trimmed content", got, err)
	}
	if _, err := secretfile.ReadUnchecked(filepath.Join(dir, "missing"), "SETTING"); err == nil || !strings.HasPrefix(err.Error(), "SETTING: ") {
		t.Errorf("ReadUnchecked(missing) error = %v; want it to start with the setting", err)
	}
}
