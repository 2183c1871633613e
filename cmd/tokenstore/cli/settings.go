package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenstore/tokenstore/adapters/fernet"
	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// Config is everything tokenstore can be told. Each section is its
// package's own Config, which that package validates.
type Config struct {
	Dev      bool
	DevDir   string
	Migrate  bool // database.migrate: apply migrations on start
	Database postgres.Config
	HTTP     httpapi.Config
	Keys     fernet.Config
	KeyFile  string
	// KeySource says where the keys came from, for the start-up log.
	KeySource     string
	JWTSecret     string
	JWTSecretFile string
	Callers       []httpapi.Caller
	OAuth         oauth.Config
	App           app.Config
	Worker        app.WorkerConfig
	Log           LogConfig
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Format string // json, text, or auto (text on a terminal, JSON otherwise)
	Level  string // debug, info, warn, error
}

// DevDatabaseURL is the database `task run` starts for development.
const DevDatabaseURL = "postgres://tokenstore:tokenstore@127.0.0.1:55432/tokenstore?sslmode=disable"

// setting is one row of the table that drives the config file's keys, the
// TOKENSTORE_* variables, `serve --help` and the errors, which name it.
type setting struct {
	key   string            // in the config file; dots nest
	help  string            //
	def   any               // the default the help states; nil: none
	field func(*Config) any // where the value goes; its type says how it is read
	max   int               // numbers run from 1 to max
	oneOf []string          // the values a string may take, when limited
}

func (s setting) env() string {
	return "TOKENSTORE_" + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
}

var settings = []setting{
	{key: "database.url", help: "PostgreSQL URL, postgres://user:password@host:5432/dbname (required; never logged with its password)",
		field: func(c *Config) any { return &c.Database.URL }},
	{key: "database.max_conns", help: "connection pool size", def: "max(4, CPUs)", max: postgres.MaxPoolConns,
		field: func(c *Config) any { return &c.Database.MaxConns }},
	{key: "database.lock_timeout", help: "how long a write waits for a locked row before answering busy", def: postgres.DefaultLockTimeout,
		field: func(c *Config) any { return &c.Database.LockTimeout }},
	{key: "database.migrate", help: "apply pending migrations when serve starts: true or false", def: "false; true in --dev",
		field: func(c *Config) any { return &c.Migrate }},
	{key: "http.addr", help: "address to listen on, host:port", def: httpapi.DefaultConfig().Addr,
		field: func(c *Config) any { return &c.HTTP.Addr }},
	{key: "http.read_header_timeout", help: "time to read request headers", def: httpapi.DefaultConfig().ReadHeaderTimeout,
		field: func(c *Config) any { return &c.HTTP.ReadHeaderTimeout }},
	{key: "http.read_timeout", help: "time to read a whole request", def: httpapi.DefaultConfig().ReadTimeout,
		field: func(c *Config) any { return &c.HTTP.ReadTimeout }},
	{key: "http.write_timeout", help: "time to write a response", def: httpapi.DefaultConfig().WriteTimeout,
		field: func(c *Config) any { return &c.HTTP.WriteTimeout }},
	{key: "http.idle_timeout", help: "keep-alive idle time", def: httpapi.DefaultConfig().IdleTimeout,
		field: func(c *Config) any { return &c.HTTP.IdleTimeout }},
	{key: "http.shutdown_timeout", help: "how long shutdown waits for in-flight requests", def: httpapi.DefaultConfig().ShutdownTimeout,
		field: func(c *Config) any { return &c.HTTP.ShutdownTimeout }},
	{key: "keys", help: "Fernet keys, comma-separated, primary (newest) first",
		field: func(c *Config) any { return &c.Keys.Keys }},
	{key: "key_file", help: "key file, used when keys is not set: one Fernet key per line (notes after #) or JSON [{key, created_at, note}], primary first; must be mode 0600",
		field: func(c *Config) any { return &c.KeyFile }},
	{key: "jwt_secret", help: "the replaced system's JWT secret, used when neither keys nor key_file is set: the key is derived as base64(SHA-256(secret))",
		field: func(c *Config) any { return &c.JWTSecret }},
	{key: "jwt_secret_file", help: "file holding the replaced system's JWT secret (instead of jwt_secret)",
		field: func(c *Config) any { return &c.JWTSecretFile }},
	{key: "callers", help: "list of {name, credential_hash, permissions}; permissions: " + permissionList(),
		field: func(c *Config) any { return &c.Callers }},
	{key: "providers", help: "list of providers to refresh: {name, kind (github, gitlab, bitbucket, azure_devops, keycloak, oauth2),\n" +
		"      client_id, client_secret | client_secret_file | client_secret_env, token_url, base_url, realm, tenant, scopes,\n" +
		"      token_endpoint_auth_method (auto, client_secret_basic or client_secret_post; auth_style, header and params\n" +
		"      are accepted aliases), timeout (default " + fmt.Sprint(oauth.DefaultTimeout) + "), never_expires,\n" +
		"      refresh_margin (this provider's margin, below its access-token lifetime)}",
		field: func(c *Config) any { return &c.OAuth }},
	{key: "refresh.margin", help: "refresh access tokens expiring within this margin", def: domain.DefaultRefreshMargin,
		field: func(c *Config) any { return &c.App.RefreshMargin }},
	{key: "refresh.wait_timeout", help: "how long a read waits for a refresh before answering 503 unavailable", def: app.DefaultRefreshWaitTimeout,
		field: func(c *Config) any { return &c.App.Refresh.WaitTimeout }},
	{key: "refresh.lease", help: "how long a refresh may take before it counts as interrupted; must exceed every provider timeout", def: app.DefaultRefreshLease,
		field: func(c *Config) any { return &c.App.Refresh.Lease }},
	{key: "refresh.retry_after", help: "back-off after a transient provider failure", def: app.DefaultRefreshRetryAfter,
		field: func(c *Config) any { return &c.App.Refresh.RetryAfter }},
	{key: "refresh.worker", help: "refresh tokens ahead of expiry in the background: true or false", def: true,
		field: func(c *Config) any { return &c.Worker.Enabled }},
	{key: "refresh.worker_interval", help: "time between background refresh scans", def: app.DefaultWorkerInterval,
		field: func(c *Config) any { return &c.Worker.Interval }},
	{key: "refresh.worker_batch", help: "tokens one background scan refreshes at most", def: app.DefaultWorkerBatch, max: app.MaxWorkerBatch,
		field: func(c *Config) any { return &c.Worker.Batch }},
	{key: "log.format", help: "json, text or auto (text on a terminal)", def: "auto", oneOf: []string{"json", "text", "auto"},
		field: func(c *Config) any { return &c.Log.Format }},
	{key: "log.level", help: "debug, info, warn or error", def: "info", oneOf: []string{"debug", "info", "warn", "error"},
		field: func(c *Config) any { return &c.Log.Level }},
}

// Defaults returns the configuration before the file and environment apply.
func Defaults() Config {
	return Config{
		DevDir:   ".dev",
		HTTP:     httpapi.DefaultConfig(),
		Database: postgres.Config{LockTimeout: postgres.DefaultLockTimeout},
		Log:      LogConfig{Format: "auto", Level: "info"},
		Worker:   app.WorkerConfig{Enabled: true},
	}
}

// Load builds the configuration: defaults, then the config file (path from
// TOKENSTORE_CONFIG unless given), then TOKENSTORE_* environment variables;
// an empty variable counts as unset. A list (keys, callers, providers) from a
// later source replaces the earlier one. getenv is os.Getenv outside tests.
func Load(path string, dev bool, getenv func(string) string) (Config, error) {
	c := Defaults()
	c.Dev, c.Migrate = dev, dev
	if dev {
		c.Database.URL = DevDatabaseURL
	}
	if path == "" {
		path = getenv("TOKENSTORE_CONFIG")
	}
	if path != "" {
		if err := c.loadFile(path, getenv); err != nil {
			return Config{}, err
		}
	}
	for _, s := range settings {
		if v := getenv(s.env()); v != "" {
			if err := s.set(&c, &yaml.Node{Kind: yaml.ScalarNode, Value: v}, s.env(), getenv); err != nil {
				return Config{}, err
			}
		}
	}
	if v := getenv("TOKENSTORE_DEV_DIR"); v != "" {
		c.DevDir = v
	}
	return c, c.resolveKeys()
}

// loadFile applies a config file: nested keys or dotted ones (http.addr).
// A file that holds secrets inline must be private.
func (c *Config) loadFile(path string, getenv func(string) string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config file %s: not valid YAML: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	inline := false
	var walk func(prefix string, m *yaml.Node) error
	walk = func(prefix string, m *yaml.Node) error {
		if m.Kind != yaml.MappingNode {
			return fmt.Errorf("config file %s: %s: must be a mapping of settings", path, strings.TrimSuffix(prefix, "."))
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			key, n := prefix+m.Content[i].Value, m.Content[i+1]
			at := slices.IndexFunc(settings, func(s setting) bool { return s.key == key })
			switch {
			case at < 0 && n.Kind == yaml.MappingNode:
				if err := walk(key+".", n); err != nil {
					return err
				}
			case at < 0:
				return fmt.Errorf("config file %s: unknown setting %q (see configs/tokenstore.example.yaml)", path, key)
			case n.Tag != "!!null":
				inline = inline || holdsSecret(key, n)
				if err := settings[at].set(c, n, key, getenv); err != nil {
					return fmt.Errorf("config file %s: %w", path, err)
				}
			}
		}
		return nil
	}
	if err := walk("", doc.Content[0]); err != nil {
		return err
	}
	if inline {
		if err := checkPrivate(path, "config file"); err != nil {
			return fmt.Errorf("%w (it holds keys or secrets inline)", err)
		}
	}
	return nil
}

// holdsSecret reports whether a file setting carries key material or a
// secret itself rather than naming a file or variable that does.
func holdsSecret(key string, n *yaml.Node) bool {
	switch key {
	case "keys", "jwt_secret":
		return true
	case "database.url":
		return strings.Contains(postgres.RedactURL(n.Value), ":xxxxx@")
	case "providers":
		for _, entry := range n.Content {
			for i := 0; i < len(entry.Content); i += 2 {
				if entry.Content[i].Value == "client_secret" {
					return true
				}
			}
		}
	}
	return false
}

// set decodes n into s's field, by the field's type. where names the
// setting (its variable, or its file key) in errors, which never quote
// key material.
func (s setting) set(c *Config, n *yaml.Node, where string, getenv func(string) string) error {
	var err error
	switch p := s.field(c).(type) {
	case *[]fernet.Key:
		texts := []string{n.Value}
		if n.Kind == yaml.SequenceNode {
			texts = nil
			for _, item := range n.Content {
				texts = append(texts, item.Value)
			}
		}
		*p, err = parseKeys(texts, where)
		return err
	case *[]httpapi.Caller:
		*p, err = decodeCallers(n, where)
		return err
	case *oauth.Config:
		*p, c.App.ProviderMargins, err = decodeProviders(n, where, getenv)
		return err
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("%s: must be a single value", where)
	}
	v := n.Value
	switch p := s.field(c).(type) {
	case *string:
		if s.oneOf != nil && !slices.Contains(s.oneOf, v) {
			err = fmt.Errorf("%q is not one of %s", v, strings.Join(s.oneOf, ", "))
		}
		*p = v
	case *bool:
		if *p, err = strconv.ParseBool(v); err != nil {
			err = fmt.Errorf("%q is not true or false", v)
		}
	case *time.Duration:
		*p, err = duration(v, where)
		return err
	case *int:
		*p, err = count(v, s.max)
	case *int32:
		var i int
		i, err = count(v, s.max)
		*p = int32(i)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// duration reads a setting such as 5s or 15m; empty is zero.
func duration(v, where string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if v != "" && (err != nil || d < 0) {
		return 0, fmt.Errorf("%s: %q is not a duration such as 5s or 15m", where, v)
	}
	return d, nil
}

func count(v string, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > hi {
		return 0, fmt.Errorf("%q is not a whole number from 1 to %d", v, hi)
	}
	return n, nil
}

// Validate checks what serve needs, naming the missing setting and how to
// provide it; each section's own rules are its package's Validate.
func (c *Config) Validate() error {
	if err := c.Database.Validate(); err != nil {
		return err
	}
	if len(c.Keys.Keys) == 0 {
		return errNoKeys
	}
	if len(c.Callers) == 0 {
		return errors.New("no API callers: add a callers section to the config file or set TOKENSTORE_CALLERS; " +
			"make a credential with `tokenstore callers generate --name NAME`")
	}
	if err := c.HTTP.Validate(); err != nil {
		return err
	}
	if wait := c.App.Refresh.WaitTimeout; wait > 0 && c.HTTP.WriteTimeout > 0 && wait >= c.HTTP.WriteTimeout {
		return fmt.Errorf("TOKENSTORE_REFRESH_WAIT_TIMEOUT (refresh.wait_timeout) is %s but TOKENSTORE_HTTP_WRITE_TIMEOUT is %s: "+
			"a read waiting for a refresh would be cut off without an answer; keep the wait shorter", wait, c.HTTP.WriteTimeout)
	}
	if err := c.OAuth.Validate(); err != nil {
		return err
	}
	return c.App.Validate(c.OAuth.Timeouts())
}

func settingsHelp() string {
	var b strings.Builder
	b.WriteString("\nSettings (config file key / environment variable):\n")
	for _, s := range settings {
		help := s.help
		if s.def != nil {
			help += " (default " + strings.Replace(fmt.Sprint(s.def), "m0s", "m", 1) + ")"
		}
		fmt.Fprintf(&b, "  %-26s %s\n      %s\n", s.key, s.env(), help)
	}
	return b.String()
}
