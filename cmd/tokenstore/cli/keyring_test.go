package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/servicetest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// named gives a servicetest instance its instance name (the name its
// keyring is recorded under).
func named(name string) func(*cli.Config) {
	return func(cfg *cli.Config) { cfg.App.Refresh.Instance = name }
}

// putTokens stores user's github tokens through svc: two values (access
// and refresh token) sealed by svc's primary key.
func putTokens(t *testing.T, svc *app.TokenService, user domain.UserID) {
	t.Helper()
	_, err := svc.PutAuthTokens(context.Background(), domain.AuthTokens{User: user, Provider: domain.ProviderGitHub,
		AccessToken: domain.NewSecret("access-" + string(user)), RefreshToken: domain.NewSecret("refresh-" + string(user))})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServeRefusesKeysMissingFromTheKeyring: stored values sealed by a key
// the keyring lacks stop `serve` before it listens, with an error naming the
// key id and how many values it seals (and no key material); the same
// keyring with that key added as an older key starts.
func TestServeRefusesKeysMissingFromTheKeyring(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	old, other := servicetest.NewKey(t), servicetest.NewKey(t)
	writer := servicetest.Start(t, servicetest.Options{DSN: dsn, Keys: []fernet.Key{old}, Configure: named("writer")})
	putTokens(t, writer.Instances[0].Service, "alice")
	if _, err := writer.Instances[0].Service.PutOfflineToken(context.Background(),
		domain.OfflineToken{User: "bob", Token: domain.NewSecret("offline-bob")}); err != nil {
		t.Fatal(err)
	}
	callers, _ := callersJSON(t, "app")
	env := map[string]string{"TOKENSTORE_DATABASE_URL": dsn, "TOKENSTORE_KEYS": other.Encode(), "TOKENSTORE_HTTP_ADDR": "127.0.0.1:0",
		"TOKENSTORE_CALLERS": callers, "TOKENSTORE_LOG_FORMAT": "json"}

	r := start(t, []string{"serve"}, envOf(env))
	err := r.wait(t)
	wantErr(t, err, "refusing to serve: the keyring lacks 1 key sealing stored values",
		fmt.Sprintf("key %s seals 3 stored values", old.ID()), "add the missing keys to the keyring")
	out := r.stdout.String() + r.stderr.String()
	if strings.Contains(out, `"msg":"listening"`) {
		t.Errorf("serve listened before refusing:\n%s", out)
	}
	for _, k := range []fernet.Key{old, other} {
		if strings.Contains(err.Error()+out, k.Encode()) {
			t.Errorf("the refusal shows key material:\n%v\n%s", err, out)
		}
	}

	env["TOKENSTORE_KEYS"] = other.Encode() + "," + old.Encode()
	r = start(t, []string{"serve"}, envOf(env))
	eventually(t, 60*time.Second, "serve with the missing key added as an older key to listen", func() bool {
		select {
		case err := <-r.done:
			t.Fatalf("serve with every key stopped: %v\n%s", err, r.stderr.String())
		default:
		}
		return listeningAddr(t, r.stderr.String()+r.stdout.String()) != ""
	})
}

// readyz returns /readyz's status and its problem detail (if any).
func readyz(t *testing.T, base string) (int, string) {
	t.Helper()
	status, _, body := get(t, base+"/readyz", "")
	var p httpapi.Problem
	if status != http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("/readyz %d %s: %v", status, body, err)
		}
	}
	return status, p.Detail
}

// TestReadyzWhenAKeyGoesMissing: an instance that is ready turns 503 as
// soon as another instance stores values under a key it lacks (as after a
// rotation it was not given), naming the key and its count of values, and
// ready again once no stored value needs that key.
func TestReadyzWhenAKeyGoesMissing(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	mine, theirs := servicetest.NewKey(t), servicetest.NewKey(t)
	a := servicetest.Start(t, servicetest.Options{DSN: dsn, Keys: []fernet.Key{mine}, Configure: named("a")}).Instances[0]
	b := servicetest.Start(t, servicetest.Options{DSN: dsn, Keys: []fernet.Key{theirs}, Configure: named("b")}).Instances[0]
	if status, detail := readyz(t, a.URL); status != http.StatusOK {
		t.Fatalf("/readyz before: %d %s", status, detail)
	}

	putTokens(t, b.Service, "alice")
	status, detail := readyz(t, a.URL)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with values under a key the keyring lacks: %d, want 503", status)
	}
	for _, want := range []string{"not ready: the keyring lacks 1 key sealing stored values", fmt.Sprintf("key %s seals 2 stored values", theirs.ID())} {
		if !strings.Contains(detail, want) {
			t.Errorf("/readyz detail %q does not say %q", detail, want)
		}
	}
	if strings.Contains(detail, theirs.Encode()) || strings.Contains(detail, mine.Encode()) {
		t.Errorf("/readyz detail shows key material: %q", detail)
	}

	if err := b.Service.DeleteAuthTokens(context.Background(), "alice", domain.ProviderGitHub); err != nil {
		t.Fatal(err)
	}
	if status, detail := readyz(t, a.URL); status != http.StatusOK {
		t.Errorf("/readyz once no value needs the key: %d %s, want 200", status, detail)
	}
}

// keyringServer is the real binary serving with a key file.
type keyringServer struct {
	base, cred, dsn, keyFile string
	logs                     *os.File
	db                       *pgxpool.Pool
}

func (s *keyringServer) logged() string {
	b, _ := os.ReadFile(s.logs.Name())
	return string(b)
}

// writeKeys replaces the key file's keys (primary first), mode 0600.
func (s *keyringServer) writeKeys(t *testing.T, keys ...fernet.Key) {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k.Encode() + "\n")
	}
	tmp := s.keyFile + ".new"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.keyFile); err != nil {
		t.Fatal(err)
	}
}

// do sends method to the user's github tokens with the caller's credential.
func (s *keyringServer) do(t *testing.T, method, user string) int {
	t.Helper()
	var body *bytes.Reader
	if method == http.MethodPut {
		body = bytes.NewReader([]byte(`{"access_token":"access-` + user + `","refresh_token":"refresh-` + user + `"}`))
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, s.base+"/v1/users/"+user+"/providers/github/tokens", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cred)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// keyOf is the key id stored with user's github tokens.
func (s *keyringServer) keyOf(t *testing.T, user string) string {
	t.Helper()
	var id string
	if err := s.db.QueryRow(context.Background(), `SELECT key_id FROM auth_tokens WHERE user_id = $1`, user).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestServeReloadsKeyringOnSIGHUP: SIGHUP loads the key file again. A new
// primary is taken at once (new writes sealed by it, old values still
// read, the instance's record updated); a keyring that lacks keys sealing
// stored values is refused with an ERROR naming them, and the server keeps
// serving with the keyring it had. No key material is ever logged.
func TestServeReloadsKeyringOnSIGHUP(t *testing.T) {
	t.Parallel()
	bin := tokenstoreBinary(t)
	first, second, stranger := servicetest.NewKey(t), servicetest.NewKey(t), servicetest.NewKey(t)
	callers, cred := callersJSON(t, "app")
	addr := freeAddr(t)
	s := &keyringServer{base: "http://" + addr, cred: cred, dsn: testdb.NewDSN(t), keyFile: filepath.Join(t.TempDir(), "keys"), logs: captured(t)}
	s.db = testdb.Pool(t, s.dsn, nil)
	s.writeKeys(t, first)
	env := []string{"PATH=" + os.Getenv("PATH"), "TOKENSTORE_DATABASE_URL=" + s.dsn, "TOKENSTORE_KEY_FILE=" + s.keyFile,
		"TOKENSTORE_HTTP_ADDR=" + addr, "TOKENSTORE_LOG_FORMAT=json", "TOKENSTORE_CALLERS=" + callers,
		`TOKENSTORE_PROVIDERS=[{"name":"github","refresh":false}]`}
	cmd, exited := startServe(t, bin, env, s.logs, s.logs)
	waitServing(t, http.DefaultClient, s.base, exited)
	hangup := func(want string) {
		t.Helper()
		before := strings.Count(s.logged(), want)
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the reload to be logged: "+want, func() bool {
			select {
			case err := <-exited:
				t.Fatalf("the server exited after SIGHUP: %v\n%s", err, s.logged())
			default:
			}
			return strings.Count(s.logged(), want) > before
		})
	}

	if got := s.do(t, http.MethodPut, "alice"); got != http.StatusOK {
		t.Fatalf("PUT alice: %d", got)
	}

	// Accepted: the second key becomes primary, the first stays to read.
	s.writeKeys(t, second, first)
	hangup(fmt.Sprintf(`"msg":"keyring reloaded","trigger":"SIGHUP","primary":"%s"`, second.ID()))
	if got := s.do(t, http.MethodPut, "bob"); got != http.StatusOK {
		t.Fatalf("PUT bob after the reload: %d", got)
	}
	if got := s.keyOf(t, "bob"); got != string(second.ID()) {
		t.Errorf("bob written after the reload is sealed by %s, want the new primary %s", got, second.ID())
	}
	if got := s.do(t, http.MethodGet, "alice"); got != http.StatusOK {
		t.Errorf("GET alice (sealed by the older key) after the reload: %d", got)
	}
	eventually(t, 30*time.Second, "the instance's record to show the new primary", func() bool {
		var primary string
		err := s.db.QueryRow(context.Background(), `SELECT primary_key_id FROM instance_keyrings`).Scan(&primary)
		return err == nil && primary == string(second.ID())
	})

	// Refused: a keyring without the keys of alice's and bob's values.
	s.writeKeys(t, stranger)
	hangup(`"msg":"keyring not reloaded: it would leave stored values unreadable; the current keyring stays in use"`)
	var refusal map[string]any
	for _, m := range logLines(t, s.logged()) {
		if strings.HasPrefix(m["msg"].(string), "keyring not reloaded") {
			refusal = m
		}
	}
	if refusal["level"] != "ERROR" || fmt.Sprint(refusal["missing_key_ids"]) != fmt.Sprint([]string{string(min(first.ID(), second.ID())), string(max(first.ID(), second.ID()))}) ||
		!strings.Contains(fmt.Sprint(refusal["err"]), fmt.Sprintf("key %s seals 2 stored values", first.ID())) {
		t.Errorf("refused reload logged as %v; want ERROR naming both missing key ids and their values", refusal)
	}
	for _, user := range []string{"alice", "bob"} {
		if got := s.do(t, http.MethodGet, user); got != http.StatusOK {
			t.Errorf("GET %s after the refused reload: %d, want 200 (the keyring kept)", user, got)
		}
	}
	if got := s.do(t, http.MethodPut, "carol"); got != http.StatusOK || s.keyOf(t, "carol") != string(second.ID()) {
		t.Errorf("PUT carol after the refused reload: %d, sealed by %s; want 200 under %s", got, s.keyOf(t, "carol"), second.ID())
	}
	if status, detail := readyz(t, s.base); status != http.StatusOK {
		t.Errorf("/readyz after the refused reload: %d %s", status, detail)
	}

	stopServe(t, cmd, exited)
	out := s.logged()
	for _, secret := range []string{first.Encode(), second.Encode(), stranger.Encode(), cred} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds key material or the credential")
		}
	}
	var left int
	if err := s.db.QueryRow(context.Background(), `SELECT count(*) FROM instance_keyrings`).Scan(&left); err != nil || left != 0 {
		t.Errorf("instance records after a clean stop: %d, %v; want none", left, err)
	}
}

// TestRetireWaitsForADeadInstancesHeartbeat: `keys retire` refuses a key
// that a running server seals with, naming the server; the server is then
// killed (no chance to delete its record), and retiring succeeds once its
// record expires (key_heartbeat_interval 1s: 3 s after its last beat).
func TestRetireWaitsForADeadInstancesHeartbeat(t *testing.T) {
	t.Parallel()
	bin := tokenstoreBinary(t)
	retired, next := servicetest.NewKey(t), servicetest.NewKey(t)
	dsn := testdb.NewDSN(t)
	db := testdb.Pool(t, dsn, nil)
	callers, _ := callersJSON(t, "app")
	addr := freeAddr(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "TOKENSTORE_DATABASE_URL=" + dsn, "TOKENSTORE_KEYS=" + retired.Encode(),
		"TOKENSTORE_HTTP_ADDR=" + addr, "TOKENSTORE_LOG_FORMAT=json", "TOKENSTORE_CALLERS=" + callers,
		"TOKENSTORE_KEY_HEARTBEAT_INTERVAL=1s"}
	logs := captured(t)
	cmd, exited := startServe(t, bin, env, logs, logs)
	waitServing(t, http.DefaultClient, "http://"+addr, exited)
	host, _ := os.Hostname()
	instance := fmt.Sprintf("%s-%d", host, cmd.Process.Pid)

	retire := func() (string, error) {
		var out bytes.Buffer
		err := cli.Run(context.Background(), []string{"keys", "retire", string(retired.ID())}, cli.Env{Stdout: &out, Stderr: &out,
			Getenv: envOf(map[string]string{"TOKENSTORE_DATABASE_URL": dsn, "TOKENSTORE_KEYS": next.Encode() + "," + retired.Encode()})})
		return out.String(), err
	}
	out, err := retire()
	if !errors.Is(err, app.ErrKeyInUse) || !strings.Contains(err.Error(), "is the primary key of 1 live instances: "+instance+" (last heartbeat ") {
		t.Fatalf("retire while %s seals with the key = %v, want refused naming it\n%s", instance, err, out)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	var rows int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM instance_keyrings WHERE instance = $1`, instance).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("the killed instance's record: %d rows, %v; want it left behind", rows, err)
	}
	eventually(t, 60*time.Second, "retire to be allowed once the killed instance's record expired", func() bool {
		out, err = retire()
		return err == nil
	})
	if !strings.Contains(out, "no stored value is sealed by key "+string(retired.ID())+" and no live instance seals with it") {
		t.Errorf("retire output:\n%s", out)
	}
}
