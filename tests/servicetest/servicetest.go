// Package servicetest starts tokenstore for integration suites the way
// `tokenstore serve` runs it: the composition root's fx graph (cli.NewApp),
// on a real PostgreSQL from testdb, with generated keys and callers, every
// log line captured, each instance stopped when the test ends, and then a
// check that no secret the test handed in reached any log.
//
// It is the one place outside cmd/tokenstore/cli that builds the graph, so a
// change to the composition root is adapted here once, not in every suite.
// Suites keep their own fixtures (a fake provider, an OpenHands database);
// they get their instances from Start.
//
// The package's TestMain must call testdb.Main.
package servicetest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/metrics"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/cmd/tokenstore/cli"
	"github.com/tokenstore/tokenstore/tests/testdb"
	"github.com/tokenstore/tokenstore/tests/testlog"
	"github.com/tokenstore/tokenstore/tests/testpki"
)

// CallerAll names the caller holding every permission.
const CallerAll = "all"

// CallerWithout names the caller holding every permission but p, so a suite
// can show that each route refuses a caller lacking its permission.
func CallerWithout(p httpapi.Permission) string { return "no-" + string(p) }

// Timeout bounds starting one instance and stopping one: a hung start or
// stop fails the test instead of hanging it.
const Timeout = 60 * time.Second

// Options shape a cluster. The zero value is one instance on a fresh
// migrated database with one fresh key.
type Options struct {
	// Instances is how many instances share the database (0: 1).
	Instances int
	// DSN is the database the instances use; "" makes a fresh migrated one
	// (testdb.NewDSN). Give testdb.NewEmptyDSN(t) for an unmigrated one, or
	// another cluster's DSN to share its database.
	DSN string
	// Keys is the keyring every instance opens, primary first (nil: one
	// fresh key).
	Keys []fernet.Key
	// Configure changes each instance's configuration after the cluster
	// filled it in (cli.Defaults, the database, a pool of 8, a loopback
	// port, the keys, the callers), before the instance is built. An
	// instance left without a refresh instance name gets its own; one left
	// without declared providers (cfg.App.Providers) declares those of
	// `serve --dev` (cli.DevProviders: the well-known names the suites use)
	// and every provider of cfg.OAuth, as the loader would from the
	// providers setting. A suite using another name declares it here.
	Configure func(*cli.Config)
	// Scoped adds, by name, callers holding every permission within their
	// scope (a provider list, a user prefix); their credentials join
	// Cluster.Credentials.
	Scoped map[string]httpapi.Scope
	// TLS serves HTTPS: the cluster makes a CA (Cluster.CA) and a server
	// certificate for 127.0.0.1 and localhost signed by it, written to
	// Cluster.CertFiles (the key mode 0600), and sets http.tls_cert_file
	// and http.tls_key_file before Configure runs. Cluster.Client trusts
	// the CA.
	TLS bool
	// TracerProvider replaces the one the OTEL_* variables would give
	// every instance (nil: none), so a test can collect the spans
	// (sdk/trace/tracetest).
	TracerProvider trace.TracerProvider
	// Secrets returns more strings no log may hold; it is asked when the
	// logs are checked, after every instance stopped, so it may list what a
	// fake provider issued during the test.
	Secrets func() []string
}

// Cluster is the instances of one test and what they share.
type Cluster struct {
	// DSN is the instances' database.
	DSN string
	// DB is a pool on that database outside every instance, open until the
	// test ends (stopping an instance does not close it).
	DB *pgxpool.Pool
	// Keys are Options.Keys or the generated key; Keyring opens them.
	Keys    []fernet.Key
	Keyring *fernet.Keyring
	// Credentials maps each caller's name (CallerAll, CallerWithout(p), and
	// those of Options.Scoped) to its bearer credential.
	Credentials map[string]string
	// Instances are the running instances, in start order.
	Instances []*Instance
	// CA and CertFiles are the TLS fixture when Options.TLS is set.
	CA        *testpki.CA
	CertFiles testpki.Files

	mu      sync.Mutex
	secrets []string
	more    func() []string
	tracer  trace.TracerProvider
}

// Instance is one running tokenstore.
type Instance struct {
	// Name is the instance's refresh lease owner and its logs' "instance"
	// attribute: inst0, inst1, ...
	Name string
	// URL is the API's base, http://127.0.0.1:port (https:// with TLS).
	URL string
	// MetricsURL is the metrics listener's base, http://127.0.0.1:port
	// (every instance serves metrics on a free loopback port unless
	// Configure turns them off; then "").
	MetricsURL string
	// Service, Worker and Pool are the instance's own, from its graph.
	Service *app.TokenService
	Worker  *app.RefreshWorker
	Pool    *pgxpool.Pool
	// Logs holds every line the instance logged, as JSON, at debug level.
	Logs *testlog.Buffer

	graph *fx.App
}

// Start starts the cluster o describes and stops every instance when t
// ends; then it checks that no instance logged a caller credential, a key,
// a string given to AddSecrets or one Options.Secrets returns.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Instances == 0 {
		o.Instances = 1
	}
	if o.DSN == "" {
		o.DSN = testdb.NewDSN(t)
	}
	if o.Keys == nil {
		o.Keys = []fernet.Key{NewKey(t)}
	}
	c := &Cluster{DSN: o.DSN, Keys: o.Keys, Credentials: map[string]string{}, more: o.Secrets, tracer: o.TracerProvider}
	c.DB = testdb.Pool(t, o.DSN, nil)
	var err error
	if c.Keyring, err = fernet.NewKeyring(o.Keys[0], o.Keys[1:]...); err != nil {
		t.Fatal(err)
	}
	callers := c.newCallers(t, o.Scoped)
	if o.TLS {
		c.CA = testpki.NewCA(t, "servicetest CA")
		leaf := c.CA.Server(t)
		c.CertFiles = leaf.Write(t, t.TempDir(), "server")
		c.AddSecrets(string(leaf.KeyPEM))
	}
	// Registered before any instance's stop, so it runs after all of them.
	t.Cleanup(func() { c.CheckLogs(t) })

	for i := range o.Instances {
		cfg := cli.Defaults()
		cfg.Database.URL = o.DSN
		cfg.Database.MaxConns = 8
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.Metrics.Addr = "127.0.0.1:0"
		cfg.Keys = fernet.Config{Keys: o.Keys}
		cfg.Callers = callers
		if o.TLS {
			cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile = c.CertFiles.Cert, c.CertFiles.Key
		}
		if o.Configure != nil {
			o.Configure(&cfg)
		}
		if cfg.App.Providers == nil {
			cfg.App.Providers = append(cli.DevProviders(), cfg.OAuth.Names()...)
		}
		if cfg.App.Refresh.Instance == "" {
			// Instances in one process would share the host-pid default
			// and so one lease owner.
			cfg.App.Refresh.Instance = fmt.Sprintf("inst%d", i)
		}
		c.Instances = append(c.Instances, c.start(t, cfg))
	}
	return c
}

// newCallers makes the caller with every permission, one lacking each
// permission and the scoped ones, and remembers their credentials.
func (c *Cluster) newCallers(t testing.TB, scoped map[string]httpapi.Scope) []httpapi.Caller {
	t.Helper()
	var callers []httpapi.Caller
	add := func(name string, perms []httpapi.Permission) {
		cred, caller := NewCaller(t, name, perms...)
		callers = append(callers, caller)
		c.Credentials[name] = cred
		c.AddSecrets(cred)
	}
	add(CallerAll, httpapi.AllPermissions)
	for _, p := range httpapi.AllPermissions {
		var others []httpapi.Permission
		for _, o := range httpapi.AllPermissions {
			if o != p {
				others = append(others, o)
			}
		}
		add(CallerWithout(p), others)
	}
	for name, scope := range scoped {
		add(name, httpapi.AllPermissions)
		callers[len(callers)-1].Scope = scope
	}
	return callers
}

// Client is an HTTP client that trusts the cluster's CA (the system's
// roots without Options.TLS) and presents certs as its client
// certificates. Its idle connections close when t ends.
func (c *Cluster) Client(t testing.TB, certs ...tls.Certificate) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{Certificates: certs}
	if c.CA != nil {
		tr.TLSClientConfig.RootCAs = c.CA.Pool()
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: Timeout}
}

// NewKey returns a fresh Fernet key.
func NewKey(t testing.TB) fernet.Key {
	t.Helper()
	k, err := fernet.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NewCaller returns a fresh bearer credential and a caller named name that
// holds it with perms (none given: every permission).
func NewCaller(t testing.TB, name string, perms ...httpapi.Permission) (credential string, caller httpapi.Caller) {
	t.Helper()
	cred, hash, err := httpapi.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.ParseCredentialHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	if len(perms) == 0 {
		perms = httpapi.AllPermissions
	}
	return cred, httpapi.Caller{Name: name, CredentialHash: h, Permissions: perms}
}

// start builds and starts one instance of cfg and stops it when t ends.
func (c *Cluster) start(t testing.TB, cfg cli.Config) *Instance {
	t.Helper()
	for _, k := range cfg.Keys.Keys {
		c.AddSecrets(k.Encode())
	}
	in := &Instance{Name: cfg.App.Refresh.Instance, Logs: &testlog.Buffer{}}
	log := slog.New(slog.NewJSONHandler(in.Logs, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("instance", in.Name)
	var server *httpapi.Server
	var metricsServer *metrics.Server
	opts := []fx.Option{fx.Populate(&server, &metricsServer, &in.Service, &in.Worker, &in.Pool)}
	if c.tracer != nil {
		opts = append(opts, fx.Decorate(func(trace.TracerProvider) trace.TracerProvider { return c.tracer }))
	}
	in.graph = cli.NewApp(cfg, log, opts...)
	if err := in.graph.Err(); err != nil {
		t.Fatalf("build %s: %v", in.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := in.graph.Start(ctx); err != nil {
		t.Fatalf("start %s: %v\nlogs:\n%s", in.Name, err, in.Logs.String())
	}
	in.URL = server.URL()
	if addr := metricsServer.Addr(); addr != "" {
		in.MetricsURL = "http://" + addr
	}
	t.Cleanup(func() {
		if err := in.Stop(context.Background()); err != nil {
			t.Errorf("stop %s: %v", in.Name, err)
		}
		// Stopped means the port no longer answers.
		if conn, err := net.DialTimeout("tcp", server.Addr(), time.Second); err == nil {
			_ = conn.Close()
			t.Errorf("%s still accepts connections at %s after Stop", in.Name, in.URL)
		}
	})
	return in
}

// Stop stops the instance within ctx and Timeout: the server drains, then
// the worker and the pool stop. Stopping again, or while a Stop is under
// way, returns nil at once.
func (in *Instance) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	return in.graph.Stop(ctx)
}

// AddSecrets adds strings no instance may log; the check runs when the test
// ends (and whenever CheckLogs is called). Safe for concurrent use.
func (c *Cluster) AddSecrets(s ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secrets = append(c.secrets, s...)
}

// CheckLogs fails t if any instance has logged, so far, a caller credential,
// a key, a string given to AddSecrets or one Options.Secrets returns.
func (c *Cluster) CheckLogs(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	secrets := append([]string(nil), c.secrets...)
	c.mu.Unlock()
	if c.more != nil {
		secrets = append(secrets, c.more()...)
	}
	for _, in := range c.Instances {
		// In every encoding tokenstore can produce (raw, URL/form, base64,
		// JSON-escaped, a Basic credential), not only as given.
		if s, _ := testlog.FindSecret(in.Logs.String(), secrets...); s != "" {
			t.Errorf("%s logged secret material (a %d-byte secret, in one of its encodings)", in.Name, len(s))
		}
	}
}
