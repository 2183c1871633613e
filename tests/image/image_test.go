// Package image tests the container image and the compose deployment as an
// operator runs them: the image is built once per package run the way
// `task image` builds it (deploy/build.sh, deploy/image.sh), started against
// a real PostgreSQL, migrated by a one-shot container, and used over HTTP.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// nonRoot is the image's user, uid:gid.
const nonRoot = "65532:65532"

var (
	buildOnce  sync.Once
	builtImage string
	// builtVersion is stamped into the binary by deploy/build.sh ($VERSION).
	builtVersion = fmt.Sprintf("v0.0.0-imagetest.%d", time.Now().UnixNano())
	buildErr     error
	imageSize    int64
)

func TestMain(m *testing.M) {
	testdb.MainWith(m, testdb.Options{AfterRun: func() {
		if builtImage == "" {
			return
		}
		log.Printf("image: %s is %d bytes (%.1f MB)", builtImage, imageSize, float64(imageSize)/1e6)
		if out, err := exec.Command("docker", "image", "rm", "-f", builtImage).CombinedOutput(); err != nil {
			log.Printf("image: remove %s: %v\n%s", builtImage, err, out)
		}
	}})
}

// image builds the binary and the image once per package run, as `task
// image` does, and returns its tag.
func image(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokenstore-image-test")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		tag := fmt.Sprintf("tokenstore:test-%d", time.Now().UnixNano())
		bin := filepath.Join(dir, "tokenstore")
		for _, args := range [][]string{{"../../deploy/build.sh", bin}, {"../../deploy/image.sh", bin, tag}} {
			cmd := exec.Command("bash", args...)
			cmd.Env = append(os.Environ(), "VERSION="+builtVersion)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
				return
			}
		}
		builtImage = tag
		out, err := exec.Command("docker", "image", "inspect", "-f", "{{.Size}}", tag).Output()
		if err == nil {
			_, err = fmt.Sscan(string(out), &imageSize)
		}
		buildErr = err
	})
	if buildErr != nil {
		t.Fatalf("build the image: %v", buildErr)
	}
	return builtImage
}

// docker runs the docker CLI and returns its trimmed standard output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// secrets are the files an operator mounts read-only into the container:
// a key file and a config file (the caller's credential hash, the declared
// provider and, when given, the database URL with its password), both mode
// 0600 and owned by the image's user (the secret-file rule of
// adapters/secretfile refuses anything others may read).
type secrets struct {
	dir        string
	credential string // the caller's bearer credential
}

// writeSecrets writes them; dsn "" leaves the database URL to the
// environment.
func writeSecrets(t *testing.T, dsn string) secrets {
	t.Helper()
	dir := t.TempDir()
	// The directory is mounted, so the image's user must be able to enter it.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cred, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	perms := make([]string, len(httpapi.AllPermissions))
	for i, p := range httpapi.AllPermissions {
		perms[i] = string(p)
	}
	callers, err := json.Marshal([]map[string]any{{"name": "image-test", "credential_hash": hash, "permissions": perms}})
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("callers: %s\nproviders:\n  - name: github\n    refresh: false\n", callers)
	if dsn != "" {
		config += fmt.Sprintf("database:\n  url: %q\n", dsn)
	}
	// Both shapes a secret file may have: the config file the image's
	// user's own (0600), the key file as Kubernetes mounts a Secret with
	// fsGroup (owner root, group the image's, 0440).
	files := []struct {
		name, content string
		mode          os.FileMode
		uid, gid      int
	}{
		{"config.yaml", config, 0o600, 65532, 65532},
		{"keys", servicetest.NewKey(t).Encode() + "\n", 0o440, 0, 65532},
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, f.mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		chown(t, dir, f.name, f.uid, f.gid) // last: the owner may no longer be us
	}
	return secrets{dir: dir, credential: cred}
}

// chown gives a file in dir to uid:gid: directly when the test runs as
// root (CI), otherwise through a throwaway container of the PostgreSQL
// image, which has chown.
func chown(t *testing.T, dir, name string, uid, gid int) {
	t.Helper()
	err := os.Chown(filepath.Join(dir, name), uid, gid)
	if err == nil {
		return
	}
	if !errors.Is(err, os.ErrPermission) {
		t.Fatal(err)
	}
	docker(t, "run", "--rm", "--user", "0", "--entrypoint", "chown", "-v", dir+":/s", testdb.Image(),
		fmt.Sprintf("%d:%d", uid, gid), "/s/"+name)
}

// containerDSN is dsn (a database of the package's PostgreSQL, as the host
// reaches it) as a container on the same Docker network reaches it: the
// server's address on that network and its own port.
func containerDSN(t *testing.T, dsn string) string {
	t.Helper()
	ip := docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", testdb.ContainerID())
	ip, _, _ = strings.Cut(ip, " ")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ip + ":5432"
	return u.String()
}

// run starts a container of the image with the secrets mounted read-only,
// a read-only root file system, every capability dropped and no privilege
// escalation: how the Kubernetes example runs it.
func run(t *testing.T, img string, s secrets, cmd []string, waitFor wait.Strategy, more ...testcontainers.ContainerCustomizer) testcontainers.Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts := append([]testcontainers.ContainerCustomizer{
		testcontainers.WithCmd(cmd...),
		testcontainers.WithEnv(map[string]string{
			"TOKENSTORE_CONFIG":           "/run/secrets/tokenstore/config.yaml",
			"TOKENSTORE_KEY_FILE":         "/run/secrets/tokenstore/keys",
			"TOKENSTORE_HTTP_PLAINTEXT":   "true", // the test network is the transport's protection
			"TOKENSTORE_LOG_FORMAT":       "json",
			"TOKENSTORE_REFRESH_WORKER":   "false",
			"TOKENSTORE_DATABASE_MIGRATE": "false",
		}),
		testcontainers.WithLabels(map[string]string{"org.tokenstore.test": "true"}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.Binds = append(hc.Binds, s.dir+":/run/secrets/tokenstore:ro")
			hc.ReadonlyRootfs = true
			hc.CapDrop = []string{"ALL"}
			hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
		}),
		testcontainers.WithWaitStrategy(waitFor),
	}, more...)
	ctr, err := testcontainers.Run(ctx, img, opts...)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		logs := ""
		if ctr != nil {
			logs = containerLogs(t, ctr)
		}
		t.Fatalf("run %s %v: %v\n%s", img, cmd, err, logs)
	}
	return ctr
}

func containerLogs(t *testing.T, ctr testcontainers.Container) string {
	t.Helper()
	rc, err := ctr.Logs(context.Background())
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// The image runs migrate as a one-shot container and serves the API:
// a PUT and a GET through it, its HEALTHCHECK turns healthy, and its
// process runs as the non-root user with a read-only root file system.
func TestImageServesAgainstPostgreSQL(t *testing.T) {
	t.Parallel()
	img := image(t)
	s := writeSecrets(t, containerDSN(t, testdb.NewEmptyDSN(t)))

	// One-shot migration, as a deploy runs it before the new version serves.
	mig := run(t, img, s, []string{"migrate", "up"}, wait.ForExit().WithExitTimeout(90*time.Second))
	state, err := mig.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if logs := containerLogs(t, mig); state.ExitCode != 0 || !strings.Contains(logs, "applied ") {
		t.Fatalf("migrate up exited %d:\n%s", state.ExitCode, logs)
	}

	srv := run(t, img, s, nil, // the image's CMD: serve
		wait.ForHTTP("/readyz").WithPort("8080/tcp").WithStartupTimeout(90*time.Second),
		// Check health every second instead of every 10 s; the command
		// stays the image's (Docker keeps the image's test when none is given).
		testcontainers.WithConfigModifier(func(c *container.Config) {
			c.Healthcheck = &container.HealthConfig{Interval: time.Second, Timeout: 5 * time.Second, Retries: 3}
		}),
		testcontainers.WithExposedPorts("8080/tcp"))
	id := srv.GetContainerID()
	if got := docker(t, "inspect", "-f", "{{json .Config.Healthcheck.Test}}", id); got != `["CMD","/tokenstore","healthcheck"]` {
		t.Errorf("health check command %s, want the image's /tokenstore healthcheck", got)
	}

	endpoint, err := srv.PortEndpoint(context.Background(), "8080/tcp", "http")
	if err != nil {
		t.Fatal(err)
	}
	path := endpoint + "/v1/users/alice%2Fimage/providers/github/tokens"
	if status, body := send(t, http.MethodPut, path, s.credential, `{"access_token":"gho_image_test","expires_in":3600}`); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, body)
	}
	status, body := send(t, http.MethodGet, path, s.credential, "")
	if status != http.StatusOK || !strings.Contains(body, `"access_token":"gho_image_test"`) {
		t.Fatalf("GET: %d %s", status, body)
	}

	health := waitHealth(t, srv, 60*time.Second)
	if health.Status != container.Healthy {
		t.Fatalf("health %s after 60s; last checks: %+v", health.Status, health.Log)
	}
	if last := health.Log[len(health.Log)-1]; last.ExitCode != 0 || !strings.Contains(last.Output, "/readyz answered 200") {
		t.Errorf("last health check: exit %d %q", last.ExitCode, last.Output)
	}

	if user := docker(t, "inspect", "-f", "{{.Config.User}}", id); user != nonRoot {
		t.Errorf("container user %q, want %s", user, nonRoot)
	}
	// ps on the Docker host: the processes' real ids. Besides serve, a
	// health check (tokenstore healthcheck, or runc starting it) may be
	// running: every process must be 65532:65532, and serve among them.
	top := strings.Fields(docker(t, "top", id, "-o", "pid,uid,gid,comm"))
	serving := false
	for i := 4; i+3 < len(top); i += 4 {
		if top[i+1] != "65532" || top[i+2] != "65532" {
			t.Errorf("process %s (%s) runs as %s:%s, want 65532:65532", top[i], top[i+3], top[i+1], top[i+2])
		}
		serving = serving || top[i+3] == "tokenstore"
	}
	if len(top)%4 != 0 || !serving {
		t.Errorf("processes (ps pid,uid,gid,comm): %q, want tokenstore as 65532:65532", top)
	}
	if logs := containerLogs(t, srv); strings.Contains(logs, "gho_image_test") || strings.Contains(logs, s.credential) {
		t.Errorf("the container's log shows the token or the credential:\n%s", logs)
	}
}

// The image holds the binary and the CA bundle and nothing else: no shell,
// no package manager, no passwd file.
func TestImageHoldsOnlyTheBinaryAndCABundle(t *testing.T) {
	t.Parallel()
	img := image(t)
	id := docker(t, "create", "--label", "org.tokenstore.test=true", img)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	out, err := exec.Command("docker", "export", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeDir {
			files = append(files, strings.TrimPrefix(h.Name, "./"))
		}
	}
	// Docker itself adds .dockerenv, /etc/mtab and the mount points of
	// /etc/hosts, /etc/hostname, /etc/resolv.conf and /dev/console to every
	// container.
	allowed := []string{"tokenstore", "etc/ssl/certs/ca-certificates.crt", ".dockerenv", "etc/mtab",
		"etc/hosts", "etc/hostname", "etc/resolv.conf", "dev/console", "dev/pts", "dev/shm", "proc", "sys"}
	for _, f := range files {
		if !slices.Contains(allowed, f) {
			t.Errorf("the image holds %s", f)
		}
	}
	for _, want := range []string{"tokenstore", "etc/ssl/certs/ca-certificates.crt"} {
		if !slices.Contains(files, want) {
			t.Errorf("the image lacks %s; it holds %q", want, files)
		}
	}
	// deploy/build.sh stamps the version where `tokenstore version` reads it.
	if got := docker(t, "run", "--rm", "--label", "org.tokenstore.test=true", img, "version"); got != builtVersion {
		t.Errorf("tokenstore version in the image: %q, want %q", got, builtVersion)
	}
	if got := docker(t, "image", "inspect", "-f", `{{index .Config.Labels "org.opencontainers.image.version"}}`, img); got != builtVersion {
		t.Errorf("image version label %q, want %q", got, builtVersion)
	}
	if imageSize > 30e6 {
		t.Errorf("the image is %d bytes: the README says about 15 MB", imageSize)
	}
	t.Logf("image %s: %d bytes", img, imageSize)
}

// waitHealth polls the container's health until it is no longer starting
// or the deadline passes.
func waitHealth(t *testing.T, ctr testcontainers.Container, deadline time.Duration) *container.Health {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		state, err := ctr.State(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if state.Health == nil {
			t.Fatal("the container has no health check")
		}
		if state.Health.Status != container.Starting || time.Now().After(end) {
			return state.Health
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

// send makes one API request with the caller's credential.
func send(t *testing.T, method, url, credential, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+credential)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
