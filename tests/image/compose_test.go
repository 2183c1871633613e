package image

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/tests/testdb"
)

// deploy/compose.yaml, run by the docker-compose Debian ships (1.29):
// PostgreSQL, the one-shot migration and both replicas come up, the
// replicas turn healthy, a token written through one is read through the
// other, and `down -v` removes everything.
func TestComposeDeployment(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose is not installed (Debian: apt-get install docker-compose; .ci/run installs it), so deploy/compose.yaml is not exercised here")
	}
	img := image(t)
	s := writeSecrets(t, "") // the compose file gives the database URL
	project := fmt.Sprintf("tokenstoretest%d", time.Now().UnixNano())
	compose := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker-compose", append([]string{"-f", filepath.Join("..", "..", "deploy", "compose.yaml"), "-p", project}, args...)...)
		cmd.Env = append(os.Environ(),
			"IMAGE_TOKENSTORE="+img,
			"IMAGE_POSTGRES="+testdb.Image(),
			"SECRETS_DIR="+s.dir,
			"POSTGRES_PASSWORD=compose-test-"+project,
			"PUBLISH_A=127.0.0.1:", // a free port of the host's loopback
			"PUBLISH_B=127.0.0.1:",
		)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("docker-compose %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}
	t.Cleanup(func() {
		compose(t, "down", "-v", "--remove-orphans", "--timeout", "5")
		if left := compose(t, "ps", "-q"); left != "" {
			t.Errorf("containers left after down: %s", left)
		}
	})
	// up returns once the replicas started: it waits for PostgreSQL to be
	// healthy and for the migration to finish first.
	compose(t, "up", "-d")

	logs := func() string { return compose(t, "logs", "--no-color") }
	if id := compose(t, "ps", "-q", "migrate"); docker(t, "inspect", "-f", "{{.State.ExitCode}}", id) != "0" {
		t.Fatalf("migrate did not succeed:\n%s", logs())
	}
	base := map[string]string{}
	for _, svc := range []string{"tokenstore-a", "tokenstore-b"} {
		id := compose(t, "ps", "-q", svc)
		if got := composeHealth(t, id, 90*time.Second); got != "healthy" {
			t.Fatalf("%s is %s after 90s:\n%s", svc, got, logs())
		}
		base[svc] = "http://" + compose(t, "port", svc, "8080")
	}

	path := "/v1/users/compose-user/providers/github/tokens"
	if status, body := send(t, http.MethodPut, base["tokenstore-a"]+path, s.credential, `{"access_token":"gho_compose_test"}`); status != http.StatusOK {
		t.Fatalf("PUT through tokenstore-a: %d %s", status, body)
	}
	status, body := send(t, http.MethodGet, base["tokenstore-b"]+path, s.credential, "")
	if status != http.StatusOK || !strings.Contains(body, `"access_token":"gho_compose_test"`) {
		t.Fatalf("GET through tokenstore-b: %d %s", status, body)
	}
	if l := logs(); strings.Contains(l, "gho_compose_test") || strings.Contains(l, s.credential) {
		t.Errorf("the logs show the token or the credential:\n%s", l)
	}
}

// composeHealth polls a container's health status until it is no longer
// "starting" or the deadline passes, and returns it.
func composeHealth(t *testing.T, id string, deadline time.Duration) string {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		status := docker(t, "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", id)
		if status != "starting" || time.Now().After(end) {
			return status
		}
		time.Sleep(500 * time.Millisecond)
	}
}
