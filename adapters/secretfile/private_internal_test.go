package secretfile

import (
	"os"
	"testing"
)

// TestPrivateRule pins the rule for every owner/process combination that
// a test process cannot make by itself (tests usually run as root or as
// the file's owner).
func TestPrivateRule(t *testing.T) {
	t.Parallel()
	const root, app, other = 0, 65532, 1000
	cases := []struct {
		perm        os.FileMode
		owner, euid int
		want        bool
	}{
		{0o600, app, app, true},
		{0o400, app, app, true},
		{0o640, app, app, false}, // the owner's own file: no group access
		{0o604, app, app, false},
		{0o600, root, root, true},
		{0o640, root, root, false}, // root reading its own file: strict
		{0o440, root, app, true},   // Kubernetes Secret with fsGroup
		{0o640, root, app, true},
		{0o660, root, app, false}, // group write
		{0o650, root, app, false}, // group execute
		{0o644, root, app, false}, // others read
		{0o604, root, app, false},
		{0o640, other, app, false}, // only root's files get the exception
		{0o600, other, app, true},  // unreadable to us, but not shared: the read reports it
		{0o640, -1, app, false},    // owner unknown: strict
	}
	for _, c := range cases {
		if got := private(c.perm, c.owner, c.euid); got != c.want {
			t.Errorf("private(%04o, owner %d, euid %d) = %v, want %v", c.perm, c.owner, c.euid, got, c.want)
		}
	}
}
