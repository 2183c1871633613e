package cli

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agnivade/levenshtein"
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"go.yaml.in/yaml/v3"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/metrics"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/adapters/secretfile"
	"github.com/tokenstore/tokenstore/adapters/webhook"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// Config is everything tokenstore can be told. Each section is its
// package's own Config, which that package validates.
type Config struct {
	Dev, Migrate  bool // Migrate is database.migrate: apply migrations on start
	DevDir        string
	Database      postgres.Config
	HTTP          httpapi.Config
	Keys          fernet.Config
	KeyFile       string
	KeySource     string // where the keys came from, for the start-up log
	JWTSecret     string
	JWTSecretFile string
	// KeyringHeartbeat: Interval is key_heartbeat_interval; Instance is
	// App.Refresh.Instance (AppOptions fills it in).
	KeyringHeartbeat app.KeyringHeartbeatConfig
	Callers          []httpapi.Caller
	OAuth            oauth.Config
	App              app.Config
	Worker           app.WorkerConfig
	Audit            AuditSettings
	Events           EventSettings
	ReadCache        ReadCacheSettings
	Log              LogConfig
	Metrics          metrics.Config
	// Webhooks are the receivers events are delivered to (app.DeliveryWorker).
	Webhooks []webhook.Endpoint
	// Delivery tunes the delivery worker; Owner is App.Refresh.Instance
	// (AppOptions fills it in). Not settings: the defaults, or a test's.
	Delivery app.DeliveryConfig
	// Tracing: an OpenTelemetry trace exporter is configured by the
	// standard OTEL_* variables (TracingConfigured); not a setting.
	Tracing bool

	// DevDatabasePort is dev.database_port: the loopback port of the
	// development PostgreSQL that `task run` starts and --dev connects to.
	DevDatabasePort int
	// devKeyFile is where a one-off command's --dev looked for the
	// development key file and found none.
	devKeyFile string
}

// AuditSettings are the audit.* settings.
type AuditSettings struct {
	Mode      string        // fail_closed, best_effort or off (app.AuditMode)
	Retention time.Duration // 0: keep forever
}

// EventSettings are the events.* settings (the outbox, README: Events).
type EventSettings struct {
	Enabled   bool          // false: the writes insert no events
	Refreshed bool          // also tokens.refreshed
	Retention time.Duration // 0: keep forever
}

// ReadCacheSettings are the read_cache.* settings (README: Read cache).
type ReadCacheSettings struct {
	Enabled bool // false: every read goes to the database
	MaxRows int  // rows kept at most
	// SyncTimeout: how long a read waits for the proof that every change
	// was heard before it goes to the database.
	SyncTimeout time.Duration
}

// MaxReadCacheRows bounds read_cache.max_rows (about 1 KiB a row).
const MaxReadCacheRows = 10_000_000

// Policy is the outbox policy the settings choose.
func (e EventSettings) Policy() domain.EventPolicy {
	return domain.EventPolicy{Off: !e.Enabled, Refreshed: e.Refreshed}
}

// setting is one row of the table that drives the config file's keys, the
// TOKENSTORE_* variables, `serve --help` and the errors, which name it. to
// points at the Config field it sets; the field's type says how the value is
// read. def is the default the help states.
type setting struct {
	key, help string
	to, def   any
	max       int      // numbers run from 1 to max
	oneOf     []string // the values a string may take, when limited
}

// settings is the table, its rows bound to c's fields.
func (c *Config) settings() []setting {
	return []setting{
		{key: "database.url", to: &c.Database.URL, help: "PostgreSQL URL, postgres://user:password@host:5432/dbname (required; never logged with its password)"},
		{key: "database.max_conns", to: &c.Database.MaxConns, help: "connection pool size; instances × this must stay under PostgreSQL's max_connections (100 by default)", def: strconv.Itoa(postgres.DefaultMaxConns) + " (or the URL's pool_max_conns)", max: postgres.MaxPoolConns},
		{key: "database.lock_timeout", to: &c.Database.LockTimeout, help: "how long a write waits for a locked row before answering busy", def: postgres.DefaultLockTimeout},
		{key: "database.timeout", to: &c.Database.Timeout, help: "deadline of every database call and of connecting at start-up (statement timeout and client deadline); below http.write_timeout, above database.lock_timeout", def: postgres.DefaultTimeout},
		{key: "database.query_exec_mode", to: &c.Database.QueryExecMode, help: "how statements are sent, pgx's modes: cache_statement (named prepared statements: fastest), cache_describe, describe_exec, exec, simple_protocol; " +
			"behind PgBouncer in transaction mode without prepared statement support use exec (see README: Poolers)", def: "cache_statement", oneOf: postgres.QueryExecModes},
		{key: "database.direct_url", to: &c.Database.DirectURL, help: "PostgreSQL URL of a session connection to the same database, bypassing a pooler in transaction mode, for migrations' advisory lock (never logged with its password)", def: "database.url"},
		{key: "database.migrate", to: &c.Migrate, help: "apply pending migrations when serve starts: true or false", def: "false; true in --dev"},
		{key: "http.addr", to: &c.HTTP.Addr, help: "address to listen on, host:port", def: httpapi.DefaultConfig().Addr},
		{key: "http.read_header_timeout", to: &c.HTTP.ReadHeaderTimeout, help: "time to read request headers", def: httpapi.DefaultConfig().ReadHeaderTimeout},
		{key: "http.read_timeout", to: &c.HTTP.ReadTimeout, help: "time to read a whole request", def: httpapi.DefaultConfig().ReadTimeout},
		{key: "http.write_timeout", to: &c.HTTP.WriteTimeout, help: "time to write a response", def: httpapi.DefaultConfig().WriteTimeout},
		{key: "http.idle_timeout", to: &c.HTTP.IdleTimeout, help: "keep-alive idle time", def: httpapi.DefaultConfig().IdleTimeout},
		{key: "http.shutdown_timeout", to: &c.HTTP.ShutdownTimeout, help: "how long shutdown waits for in-flight requests", def: httpapi.DefaultConfig().ShutdownTimeout},
		{key: "http.tls_cert_file", to: &c.HTTP.TLSCertFile, help: "PEM certificate chain, leaf first: turns on TLS 1.2 or newer; reloaded with the key when either file changes or on SIGHUP"},
		{key: "http.tls_key_file", to: &c.HTTP.TLSKeyFile, help: "PEM private key of http.tls_cert_file; must be mode 0600"},
		{key: "http.client_ca_file", to: &c.HTTP.ClientCAFile, help: "PEM CA certificates that client certificates are verified against when presented; reloaded when it changes or on SIGHUP; a caller with client_cert_identity must present one"},
		{key: "http.plaintext", to: &c.HTTP.Plaintext, help: "allow plain HTTP on a non-loopback http.addr because a service mesh or sidecar protects the transport: true or false", def: false},
		{key: "keys", to: &c.Keys.Keys, help: "Fernet keys, comma-separated, primary (newest) first"},
		{key: "key_file", to: &c.KeyFile, help: "key file, used when keys is not set: one Fernet key per line (notes after #) or JSON [{key, created_at, note}], primary first; must be mode 0600"},
		{key: "jwt_secret", to: &c.JWTSecret, help: "the replaced system's JWT secret, used when neither keys nor key_file is set: the key is derived as base64(SHA-256(secret))"},
		{key: "jwt_secret_file", to: &c.JWTSecretFile, help: "file holding the replaced system's JWT secret (instead of jwt_secret)"},
		{key: "envelope", to: &c.App.Envelope, help: "the envelope new values are sealed in: binary (compact, cheap to open); json, the one releases before the binary envelope read, " +
			"while any of them runs beside this one (a rolling deploy) or before returning to one; both are always read, and `keys rotate --envelopes` rewrites stored values into this one (see README: Keys)",
			def: string(app.EnvelopeBinary), oneOf: app.EnvelopeFormats()},
		{key: "key_heartbeat_interval", to: &c.KeyringHeartbeat.Interval, help: fmt.Sprintf("how often serve records its keyring (key ids, never keys) in the database; "+
			"an instance that stops beating counts as live for %d intervals, and `keys retire` refuses a key a live instance holds", app.KeyringLiveBeats), def: app.DefaultKeyringHeartbeat},
		{key: "callers", to: &c.Callers, help: "list of {name, credential_hash, permissions, providers, user_prefix, client_cert_identity}; permissions: " + strings.Join(httpapi.PermissionNames(), ", ") +
			"; providers (declared names) and user_prefix (such as tenant-a/) limit what the caller may touch, every provider and user when left out; client_cert_identity (a URI or DNS SAN) requires that client certificate too"},
		{key: "providers", to: &c.OAuth, help: "list of providers to refresh: " + oauth.ProviderSettingsHelp()},
		{key: "webhooks", to: &c.Webhooks, help: "list of webhook receivers: " + webhook.SettingsHelp() + "; event kinds: " + strings.Join(eventKinds(), ", ") +
			" (see README: Webhooks)"},
		{key: "refresh.margin", to: &c.App.RefreshMargin, help: "refresh access tokens expiring within this margin", def: domain.DefaultRefreshMargin},
		{key: "refresh.lifetime_fraction", to: &c.App.LifetimeFraction, help: "cap every refresh margin at this fraction of each access token's lifetime, so tokens living less than the margin are not refreshed at every read: a number between 0 and 1, exclusive", def: domain.DefaultLifetimeFraction},
		{key: "refresh.wait_timeout", to: &c.App.Refresh.WaitTimeout, help: "how long a read waits for a refresh before answering 503 unavailable", def: app.DefaultRefreshWaitTimeout},
		{key: "refresh.lease", to: &c.App.Refresh.Lease, help: "how long a refresh may take before it counts as interrupted; must exceed every provider timeout", def: app.DefaultRefreshLease},
		{key: "refresh.retry_after", to: &c.App.Refresh.RetryAfter, help: "back-off after a transient provider failure", def: app.DefaultRefreshRetryAfter},
		{key: "refresh.worker", to: &c.Worker.Enabled, help: "refresh tokens ahead of expiry in the background: true or false", def: true},
		{key: "refresh.worker_interval", to: &c.Worker.Interval, help: "time between background refresh scans", def: app.DefaultWorkerInterval},
		{key: "refresh.worker_batch", to: &c.Worker.Batch, help: "tokens one background scan refreshes at most", def: app.DefaultWorkerBatch, max: app.MaxWorkerBatch},
		{key: "audit.mode", to: &c.Audit.Mode, help: "fail_closed: a token is handed out only after its audit event is committed, and a write commits its event in its own transaction (an audit store that fails answers 503); best_effort: events are written after the answer and lost when the audit store fails; off: no audit trail",
			def: string(app.AuditFailClosed), oneOf: []string{string(app.AuditFailClosed), string(app.AuditBestEffort), string(app.AuditOff)}},
		{key: "audit.retention", to: &c.Audit.Retention, help: "how long audit events are kept (older ones are removed in batches every hour); 0 keeps them forever", def: "9600h (400 days)"},
		{key: "events.enabled", to: &c.Events.Enabled, help: "write events (tokens stored, need re-authorization, recovered, deleted...; README: Events) in the same transaction as each change, for GET /v1/events: true or false", def: true},
		{key: "events.refreshed", to: &c.Events.Refreshed, help: "also write a tokens.refreshed event for every refresh stored (one per refresh: high volume): true or false", def: false},
		{key: "events.retention", to: &c.Events.Retention, help: "how long events are kept for the feed (older ones are removed in batches every hour); 0 keeps them forever", def: "168h (7 days)"},
		{key: "read_cache.enabled", to: &c.ReadCache.Enabled, help: "answer token reads from sealed rows kept in memory, kept exact by the database's change notifications (README: Read cache): true or false", def: true},
		{key: "read_cache.max_rows", to: &c.ReadCache.MaxRows, help: "rows the read cache keeps at most (sealed, about 360 bytes of heap each; set GOMEMLIMIT: README, Read cache)", def: strconv.Itoa(readcache.DefaultMaxRows), max: MaxReadCacheRows},
		{key: "read_cache.sync_timeout", to: &c.ReadCache.SyncTimeout, help: "how long a read waits for the proof (a probe through the database) that this instance has heard every change committed before the read began; past it the read goes to the database and the cache is emptied; from 1ms to 10s", def: readcache.DefaultSyncTimeout},
		{key: "metrics.addr", to: &c.Metrics.Addr, help: "host:port serving Prometheus metrics at /metrics, apart from the API; empty serves none. Metrics carry no secret and no user id, so any address may be given", def: "off"},
		{key: "metrics.pprof", to: &c.Metrics.Pprof, help: "also serve net/http/pprof at /debug/pprof/ on metrics.addr, which must then be a loopback address: true or false", def: false},
		{key: "log.format", to: &c.Log.Format, help: "json, text or auto (text on a terminal)", def: "auto", oneOf: []string{"json", "text", "auto"}},
		{key: "log.level", to: &c.Log.Level, help: "debug, info, warn or error", def: "info", oneOf: []string{"debug", "info", "warn", "error"}},
		{key: "dev.database_port", to: &c.DevDatabasePort, help: "--dev only: the port on 127.0.0.1 of the development PostgreSQL that `task run` starts (tests/pgimage/devdb.sh reads the variable too) and every --dev command connects to, unless database.url is set", def: DefaultDevDatabasePort, max: 65535},
	}
}

func (s setting) env() string {
	return "TOKENSTORE_" + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
}

// otherVariables are the TOKENSTORE_ variables the program reads besides
// the settings' own: where the config file is, and --dev's directory.
var otherVariables = []string{"TOKENSTORE_CONFIG", "TOKENSTORE_DEV_DIR"}

// testVariablePrefixes start the variables of the test suites and
// benchmarks (tests/testdb's TOKENSTORE_TEST_POSTGRES_IMAGE, tests/keys'
// TOKENSTORE_ROTATION_ROWS, adapters/fernet's TOKENSTORE_FERNET_TEST_*):
// the program never reads them, and they may be set where it runs.
var testVariablePrefixes = []string{"TOKENSTORE_TEST_", "TOKENSTORE_ROTATION_", "TOKENSTORE_FERNET_TEST_"}

// Variables lists every TOKENSTORE_ variable the program reads: one per
// setting, then TOKENSTORE_CONFIG and TOKENSTORE_DEV_DIR.
func Variables() []string {
	var names []string
	for _, s := range new(Config).settings() {
		names = append(names, s.env())
	}
	return append(names, otherVariables...)
}

// checkEnviron refuses a TOKENSTORE_ variable the program does not read:
// a misspelt setting would otherwise be ignored and its default used in
// silence. The error names the closest real variable; it never quotes a
// value.
func checkEnviron(environ []string) error {
	known := Variables()
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "TOKENSTORE_") || slices.Contains(known, name) ||
			slices.ContainsFunc(testVariablePrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		hint := "it is not a setting"
		if best := closest(name, known); best != "" {
			hint = "did you mean " + best + "?"
		}
		errs = append(errs, fmt.Errorf("unknown variable %s: %s (`tokenstore serve --help` lists every setting)", name, hint))
	}
	return errors.Join(errs...)
}

// Defaults returns the configuration before the file and environment apply.
func Defaults() Config {
	return Config{DevDir: ".dev", DevDatabasePort: DefaultDevDatabasePort, HTTP: httpapi.DefaultConfig(), Database: postgres.Config{LockTimeout: postgres.DefaultLockTimeout, Timeout: postgres.DefaultTimeout},
		Log: LogConfig{Format: "auto", Level: "info"}, Worker: app.WorkerConfig{Enabled: true},
		Audit:     AuditSettings{Mode: string(app.AuditFailClosed), Retention: app.DefaultAuditRetention},
		Events:    EventSettings{Enabled: true, Retention: app.DefaultEventRetention},
		ReadCache: ReadCacheSettings{Enabled: true, MaxRows: readcache.DefaultMaxRows, SyncTimeout: readcache.DefaultSyncTimeout}}
}

// Load builds the configuration: defaults, then the config file (path from
// TOKENSTORE_CONFIG unless given), then TOKENSTORE_* environment variables;
// an empty variable counts as unset. A list (keys, callers, providers,
// webhooks) from a later source replaces the earlier one. getenv is os.Getenv outside tests.
func Load(path string, dev bool, getenv func(string) string) (Config, error) {
	c := Defaults()
	c.Dev, c.Migrate = dev, dev
	if path = cmp.Or(path, getenv("TOKENSTORE_CONFIG")); path != "" {
		if err := c.loadFile(path, getenv); err != nil {
			return Config{}, err
		}
	}
	for _, s := range c.settings() {
		if v := getenv(s.env()); v != "" {
			if err := s.set(&yaml.Node{Kind: yaml.ScalarNode, Value: v}, s.env(), getenv); err != nil {
				return Config{}, err
			}
		}
	}
	c.DevDir = cmp.Or(getenv("TOKENSTORE_DEV_DIR"), c.DevDir)
	c.Tracing = TracingConfigured(getenv)
	if dev && c.Database.URL == "" {
		c.Database.URL = DevDatabaseURL(c.DevDatabasePort)
	}
	c.App.ProviderMargins = c.OAuth.Margins()
	c.App.Providers = c.OAuth.Names()
	if err := c.HTTP.CheckFiles(); err != nil {
		return Config{}, err
	}
	return c, c.resolveKeys()
}

// loadFile decodes a config file once into the settings it names, nested
// (http: {addr: ...}) or dotted (http.addr: ...). A file that holds a
// secret inline must be private.
func (c *Config) loadFile(path string, getenv func(string) string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config file %s: not valid YAML: %w", path, err)
	} else if len(doc.Content) > 0 && doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: want a mapping of settings (key: value)", path)
	}
	inline, table, seen := false, c.settings(), map[string]int{}
	var walk func(prefix string, m *yaml.Node) error
	walk = func(prefix string, m *yaml.Node) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			key, n := prefix+m.Content[i].Value, m.Content[i+1]
			at := slices.IndexFunc(table, func(s setting) bool { return s.key == key })
			// yaml.v3 refuses a repeated key only when it decodes into a Go
			// value, never in a Node; and http: {addr} with http.addr names
			// one setting twice too. Either way the file would mean two things.
			line, twice := seen[key]
			seen[key] = m.Content[i].Line
			switch {
			case twice:
				err = fmt.Errorf("%q is set twice (lines %d and %d): keep one", key, line, m.Content[i].Line)
			case at < 0 && n.Kind == yaml.MappingNode:
				err = walk(key+".", n)
			case at < 0:
				err = fmt.Errorf("unknown setting %q (see configs/tokenstore.example.yaml)", key)
			case n.Tag != "!!null":
				inline = inline || holdsSecret(key, n)
				err = table[at].set(n, key, getenv)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if len(doc.Content) > 0 {
		if err := walk("", doc.Content[0]); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := secretfile.Check(path, "config file"); inline && err != nil {
		return fmt.Errorf("%w (it holds keys or secrets inline)", err)
	}
	return nil
}

// holdsSecret reports whether a file setting carries key material or a
// secret itself rather than naming a file or variable that does.
func holdsSecret(key string, n *yaml.Node) bool {
	if key == "providers" {
		return slices.ContainsFunc(n.Content, func(entry *yaml.Node) bool {
			for i := 0; i+1 < len(entry.Content); i += 2 {
				if entry.Content[i].Value == "client_secret" && entry.Content[i+1].Value != "" {
					return true
				}
			}
			return false
		})
	}
	return key == "keys" || key == "jwt_secret" || (key == "database.url" || key == "database.direct_url") && strings.Contains(postgres.RedactURL(n.Value), ":xxxxx@")
}

// set decodes n into s's field, as the field's type says. where names the
// setting (its variable, or its file key) in errors, which never quote key
// material.
func (s setting) set(n *yaml.Node, where string, getenv func(string) string) (err error) {
	switch p := s.to.(type) {
	case *[]fernet.Key:
		texts := []string{n.Value} // or, for a YAML list, its items
		for _, item := range n.Content {
			texts = append(texts, item.Value)
		}
		*p, err = fernet.ParseKeys(strings.Join(texts, "\n"))
	case *[]httpapi.Caller:
		*p, err = decodeList(n, where, "{name, credential_hash, permissions, providers, user_prefix, client_cert_identity}", func(entries []callerSettings, where string) ([]httpapi.Caller, error) {
			configs := make([]httpapi.CallerConfig, len(entries))
			for i, e := range entries {
				configs[i] = httpapi.CallerConfig(e)
			}
			return httpapi.NewCallers(configs, where)
		})
		return err
	case *[]webhook.Endpoint:
		*p, err = decodeList(n, where, "{name, url, events, secret_file, timeout, max_age}", func(entries []webhook.EndpointSettings, where string) ([]webhook.Endpoint, error) {
			return webhook.NewEndpoints(entries, where, eventKinds())
		})
		return err
	case *oauth.Config:
		*p, err = decodeList(n, where, "provider settings", func(entries []oauth.ProviderSettings, where string) (oauth.Config, error) {
			return oauth.NewConfig(entries, where, getenv)
		})
		return err
	case *string:
		if *p = n.Value; s.oneOf != nil && !slices.Contains(s.oneOf, n.Value) {
			err = fmt.Errorf("%q is not one of %s", n.Value, strings.Join(s.oneOf, ", "))
		}
	case *app.EnvelopeFormat:
		if *p = app.EnvelopeFormat(n.Value); !slices.Contains(s.oneOf, n.Value) {
			err = fmt.Errorf("%q is not one of %s", n.Value, strings.Join(s.oneOf, ", "))
		}
	case *bool:
		if *p, err = strconv.ParseBool(n.Value); err != nil {
			err = fmt.Errorf("%q is not true or false", n.Value)
		}
	case *time.Duration: // such as 5s or 15m; empty is zero
		if *p, err = time.ParseDuration(cmp.Or(n.Value, "0")); err != nil || *p < 0 {
			err = fmt.Errorf("%q is not a duration such as 5s or 15m", n.Value)
		}
	case *float64: // a fraction such as 0.5
		v, perr := strconv.ParseFloat(n.Value, 64)
		if *p = v; perr != nil || !(v > 0 && v < 1) {
			err = fmt.Errorf("%q is not a number between 0 and 1 (exclusive) such as 0.5", n.Value)
		}
	case *int:
		err = count(n.Value, s.max, p)
	case *int32:
		err = count(n.Value, s.max, p)
	}
	if n.Kind != yaml.ScalarNode && s.key != "keys" {
		err = errors.New("must be a single value")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// eventKinds are the event kinds a webhook endpoint may ask for, as
// receivers see them: the outbox's kinds (issue 13; domain.EventKind on
// the outbox branch, which this list must equal once it lands) and the
// outcomes of upstream revocation.
func eventKinds() []string {
	kinds := domain.EventKinds()
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = string(k)
	}
	return out
}

// callerSettings is httpapi.CallerConfig under the member names an
// operator writes (a conversion, so a field added there fails to compile
// here until it has its name).
type callerSettings struct {
	Name           string   `json:"name"`
	CredentialHash string   `json:"credential_hash"`
	Permissions    []string `json:"permissions"`
	Providers      []string `json:"providers"`
	UserPrefix     string   `json:"user_prefix"`
	// ClientCertIdentity: omitted, no client certificate is required.
	ClientCertIdentity string `json:"client_cert_identity"`
}

// decodeList decodes a list setting, then build, from the package that owns
// the entries, validates them. A variable holds JSON; the file's YAML list
// is turned into JSON first; both are decoded strictly (a member given
// twice, an unknown or differently cased member, invalid UTF-8 or a lone
// surrogate is refused), so a setting means exactly one thing. Errors name
// the setting and the member, never a Go type or a value.
func decodeList[E, T any](n *yaml.Node, where, shape string, build func([]E, string) (T, error)) (list T, err error) {
	text := []byte(n.Value)
	if n.Kind != yaml.ScalarNode {
		if text, err = yamlToJSON(n); err != nil {
			return list, settingJSONError[E](where, shape, err)
		}
	}
	var entries []E
	if err := json.Unmarshal(text, &entries, json.RejectUnknownMembers(true)); err != nil {
		return list, settingJSONError[E](where, shape, err)
	}
	return build(entries, where)
}

// yamlToJSON writes a YAML value as JSON: mappings as objects (a repeated
// key stays repeated, for the decoder to refuse), sequences as arrays,
// booleans, numbers and null as themselves, every other scalar as a string.
func yamlToJSON(n *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := jsontext.NewEncoder(&buf, jsontext.AllowDuplicateNames(true))
	var write func(n *yaml.Node) error
	write = func(n *yaml.Node) error {
		switch n.Kind {
		case yaml.DocumentNode, yaml.AliasNode:
			target := n.Alias
			if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
				target = n.Content[0]
			}
			return write(target)
		case yaml.MappingNode, yaml.SequenceNode:
			open, end := jsontext.BeginArray, jsontext.EndArray
			if n.Kind == yaml.MappingNode {
				open, end = jsontext.BeginObject, jsontext.EndObject
			}
			if err := enc.WriteToken(open); err != nil {
				return err
			}
			for i, item := range n.Content {
				if n.Kind == yaml.MappingNode && i%2 == 0 {
					item = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: item.Value} // names are strings
				}
				if err := write(item); err != nil {
					return err
				}
			}
			return enc.WriteToken(end)
		}
		var tok jsontext.Token
		var b bool
		var f float64
		switch {
		case n.Tag == "!!null":
			tok = jsontext.Null
		case n.Tag == "!!bool" && n.Decode(&b) == nil:
			tok = jsontext.Bool(b)
		case (n.Tag == "!!int" || n.Tag == "!!float") && n.Decode(&f) == nil:
			tok = jsontext.Float(f)
		default:
			tok = jsontext.String(n.Value)
		}
		return enc.WriteToken(tok)
	}
	if err := write(n); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// settingJSONError says what is wrong with a list setting in the
// operator's words: where (the setting) and the entry and member, as in
// TOKENSTORE_PROVIDERS[0].client_id. It never quotes a value: an entry may
// hold a client secret.
func settingJSONError[E any](where, shape string, err error) error {
	var ptr jsontext.Pointer
	var sem *json.SemanticError
	var syn *jsontext.SyntacticError
	if errors.As(err, &sem) {
		ptr = sem.JSONPointer
	} else if errors.As(err, &syn) {
		ptr = syn.JSONPointer
	}
	at := where
	for tok := range ptr.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil {
			at += "[" + tok + "]"
		} else {
			at += "." + tok
		}
	}
	members := memberNames(reflect.TypeFor[E]())
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		return fmt.Errorf("%s: given twice: keep one", at)
	case errors.Is(err, json.ErrUnknownName):
		return fmt.Errorf("%s: unknown member%s; an entry has %s", at, suggest(ptr.LastToken(), members), strings.Join(members, ", "))
	case syn != nil && strings.Contains(syn.Err.Error(), "UTF-8"):
		return fmt.Errorf("%s: invalid UTF-8", at)
	case syn != nil && strings.Contains(syn.Err.Error(), "surrogate"):
		return fmt.Errorf("%s: a lone surrogate escape (\\ud800 to \\udfff unpaired) is not text", at)
	case syn != nil:
		return fmt.Errorf("%s: not valid JSON (near byte %d): must be a list of %s", where, syn.ByteOffset, shape)
	case sem != nil && len(ptr) == 0:
		return fmt.Errorf("%s: must be a list of %s", where, shape)
	case sem != nil && sem.GoType != nil:
		return fmt.Errorf("%s: must be %s", at, describeKind(sem.GoType))
	}
	return fmt.Errorf("%s: must be a list of %s", at, shape)
}

// memberNames lists the JSON member names of struct type t, embedded
// structs' included.
func memberNames(t reflect.Type) (names []string) {
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			names = append(names, memberNames(f.Type)...)
		case name != "":
			names = append(names, name)
		}
	}
	return names
}

// describeKind says, in the operator's words, what a value of type t is.
func describeKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(describeKind(t.Elem()), "a ") + "s"
	case reflect.Struct:
		return "an object"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Pointer:
		return describeKind(t.Elem())
	}
	return "another kind of value"
}

// suggest names the closest of names to got, when one is close enough to
// be a misspelling of it.
func suggest(got string, names []string) string {
	if best := closest(got, names); best != "" {
		return fmt.Sprintf(" %q (did you mean %s?)", got, best)
	}
	return fmt.Sprintf(" %q", got)
}

// closest is the name in names nearest to got by edit distance, ignoring
// case, or "" when none is within a third of got's length (at least 2).
func closest(got string, names []string) string {
	best, bestDist := "", max(2, len(got)/3)+1
	for _, name := range names {
		if d := levenshtein.ComputeDistance(strings.ToLower(got), strings.ToLower(name)); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// count reads a whole number from 1 to hi into dst.
func count[T int | int32](v string, hi int, dst *T) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > hi {
		return fmt.Errorf("%q is not a whole number from 1 to %d", v, hi)
	}
	*dst = T(n)
	return nil
}

// Validate checks what serve needs, naming the missing setting and how to
// provide it; each section's own rules are its package's Validate.
func (c *Config) Validate() error {
	switch err := c.Database.Validate(); {
	case err != nil:
		return err
	case len(c.Keys.Keys) == 0:
		return errNoKeys
	case len(c.Callers) == 0:
		return errors.New("no API callers: add a callers section to the config file or set TOKENSTORE_CALLERS; " +
			"make a credential with `tokenstore callers generate --name NAME`")
	case c.Metrics.Addr != "" && c.Metrics.Addr == c.HTTP.Addr && !strings.HasSuffix(c.Metrics.Addr, ":0"): // port 0: each picks a free one
		return fmt.Errorf("TOKENSTORE_METRICS_ADDR (metrics.addr) and TOKENSTORE_HTTP_ADDR (http.addr) are both %s: metrics are served on a listener of their own; give another port", c.Metrics.Addr)
	case c.HTTP.WriteTimeout > 0 && c.Database.Timeout+postgres.ClientGrace >= c.HTTP.WriteTimeout:
		return fmt.Errorf("TOKENSTORE_DATABASE_TIMEOUT (database.timeout) is %s but TOKENSTORE_HTTP_WRITE_TIMEOUT is %s: "+
			"a request waiting for the database would be cut off without an answer; keep the database timeout at least %s shorter",
			c.Database.Timeout, c.HTTP.WriteTimeout, postgres.ClientGrace)
	case c.ReadCache.SyncTimeout < time.Millisecond || c.ReadCache.SyncTimeout > 10*time.Second:
		return fmt.Errorf("TOKENSTORE_READ_CACHE_SYNC_TIMEOUT (read_cache.sync_timeout) is %s: give a duration from 1ms to 10s", c.ReadCache.SyncTimeout)
	}
	return errors.Join(c.HTTP.Validate(c.App.Refresh.WaitTimeout), c.Metrics.Validate(), c.validateClientCerts(), c.OAuth.Validate(), c.App.Validate(c.OAuth.Timeouts()),
		httpapi.ValidateScopes(c.Callers, c.App.Providers), c.validateDeliveries())
}

// validateDeliveries refuses webhooks that would never be sent an event,
// and retry windows longer than the events they retry are kept.
func (c *Config) validateDeliveries() error {
	var errs []error
	for i, ep := range c.Webhooks {
		at := fmt.Sprintf("webhooks[%d] (%s)", i, ep.Name)
		switch {
		case !c.Events.Enabled:
			errs = append(errs, fmt.Errorf("%s: TOKENSTORE_EVENTS_ENABLED (events.enabled) is false, so no event is written to send: enable events or remove the endpoint", at))
		case ep.Wants(string(domain.EventTokensRefreshed)) && !c.Events.Refreshed:
			errs = append(errs, fmt.Errorf("%s.events: lists %s, which is written only with TOKENSTORE_EVENTS_REFRESHED (events.refreshed) true: set it or remove the kind", at, domain.EventTokensRefreshed))
		case c.Events.Retention > 0 && ep.MaxAge >= c.Events.Retention:
			errs = append(errs, fmt.Errorf("%s.max_age: %s is not shorter than TOKENSTORE_EVENTS_RETENTION (events.retention) %s: events would be removed while still being retried; shorten max_age or lengthen the retention",
				at, ep.MaxAge, c.Events.Retention))
		}
	}
	if c.Events.Retention > 0 && c.Events.Retention <= domain.DefaultRetryMaxAge {
		for _, p := range c.OAuth.Providers {
			if p.RevokeOnDelete {
				errs = append(errs, fmt.Errorf("providers (%s).revoke_on_delete: TOKENSTORE_EVENTS_RETENTION (events.retention) %s is not longer than the %s upstream revocation is retried for: "+
					"the deleted tokens would be removed before their revocation ended; lengthen the retention", p.Name, c.Events.Retention, domain.DefaultRetryMaxAge))
			}
		}
	}
	return errors.Join(errs...)
}

// validateClientCerts refuses a caller that requires a client certificate
// no server setting would ever verify.
func (c *Config) validateClientCerts() error {
	for i, caller := range c.Callers {
		if !caller.ClientCertIdentity.IsZero() && c.HTTP.ClientCAFile == "" {
			return fmt.Errorf("callers[%d].client_cert_identity (caller %q): a client certificate can only be verified against TOKENSTORE_HTTP_CLIENT_CA_FILE (http.client_ca_file): set it, with TLS", i, caller.Name)
		}
	}
	return nil
}

func settingsHelp() (help string) {
	for _, s := range new(Config).settings() {
		def := ""
		if s.def != nil {
			def = " (default " + strings.Replace(fmt.Sprint(s.def), "m0s", "m", 1) + ")"
		}
		help += fmt.Sprintf("  %-26s %s\n      %s%s\n", s.key, s.env(), s.help, def)
	}
	return "\nSettings (config file key / environment variable):\n" + help
}
