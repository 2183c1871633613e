package cli

import (
	"bytes"
	"cmp"
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
	"github.com/tokenstore/tokenstore/adapters/secretfile"
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
	Callers       []httpapi.Caller
	OAuth         oauth.Config
	App           app.Config
	Worker        app.WorkerConfig
	Log           LogConfig
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
		{key: "database.max_conns", to: &c.Database.MaxConns, help: "connection pool size", def: "max(4, CPUs)", max: postgres.MaxPoolConns},
		{key: "database.lock_timeout", to: &c.Database.LockTimeout, help: "how long a write waits for a locked row before answering busy", def: postgres.DefaultLockTimeout},
		{key: "database.timeout", to: &c.Database.Timeout, help: "deadline of every database call and of connecting at start-up (statement timeout and client deadline); below http.write_timeout, above database.lock_timeout", def: postgres.DefaultTimeout},
		{key: "database.migrate", to: &c.Migrate, help: "apply pending migrations when serve starts: true or false", def: "false; true in --dev"},
		{key: "http.addr", to: &c.HTTP.Addr, help: "address to listen on, host:port", def: httpapi.DefaultConfig().Addr},
		{key: "http.read_header_timeout", to: &c.HTTP.ReadHeaderTimeout, help: "time to read request headers", def: httpapi.DefaultConfig().ReadHeaderTimeout},
		{key: "http.read_timeout", to: &c.HTTP.ReadTimeout, help: "time to read a whole request", def: httpapi.DefaultConfig().ReadTimeout},
		{key: "http.write_timeout", to: &c.HTTP.WriteTimeout, help: "time to write a response", def: httpapi.DefaultConfig().WriteTimeout},
		{key: "http.idle_timeout", to: &c.HTTP.IdleTimeout, help: "keep-alive idle time", def: httpapi.DefaultConfig().IdleTimeout},
		{key: "http.shutdown_timeout", to: &c.HTTP.ShutdownTimeout, help: "how long shutdown waits for in-flight requests", def: httpapi.DefaultConfig().ShutdownTimeout},
		{key: "keys", to: &c.Keys.Keys, help: "Fernet keys, comma-separated, primary (newest) first"},
		{key: "key_file", to: &c.KeyFile, help: "key file, used when keys is not set: one Fernet key per line (notes after #) or JSON [{key, created_at, note}], primary first; must be mode 0600"},
		{key: "jwt_secret", to: &c.JWTSecret, help: "the replaced system's JWT secret, used when neither keys nor key_file is set: the key is derived as base64(SHA-256(secret))"},
		{key: "jwt_secret_file", to: &c.JWTSecretFile, help: "file holding the replaced system's JWT secret (instead of jwt_secret)"},
		{key: "callers", to: &c.Callers, help: "list of {name, credential_hash, permissions}; permissions: " + strings.Join(httpapi.PermissionNames(), ", ")},
		{key: "providers", to: &c.OAuth, help: "list of providers to refresh: " + oauth.ProviderSettingsHelp()},
		{key: "refresh.margin", to: &c.App.RefreshMargin, help: "refresh access tokens expiring within this margin", def: domain.DefaultRefreshMargin},
		{key: "refresh.wait_timeout", to: &c.App.Refresh.WaitTimeout, help: "how long a read waits for a refresh before answering 503 unavailable", def: app.DefaultRefreshWaitTimeout},
		{key: "refresh.lease", to: &c.App.Refresh.Lease, help: "how long a refresh may take before it counts as interrupted; must exceed every provider timeout", def: app.DefaultRefreshLease},
		{key: "refresh.retry_after", to: &c.App.Refresh.RetryAfter, help: "back-off after a transient provider failure", def: app.DefaultRefreshRetryAfter},
		{key: "refresh.worker", to: &c.Worker.Enabled, help: "refresh tokens ahead of expiry in the background: true or false", def: true},
		{key: "refresh.worker_interval", to: &c.Worker.Interval, help: "time between background refresh scans", def: app.DefaultWorkerInterval},
		{key: "refresh.worker_batch", to: &c.Worker.Batch, help: "tokens one background scan refreshes at most", def: app.DefaultWorkerBatch, max: app.MaxWorkerBatch},
		{key: "log.format", to: &c.Log.Format, help: "json, text or auto (text on a terminal)", def: "auto", oneOf: []string{"json", "text", "auto"}},
		{key: "log.level", to: &c.Log.Level, help: "debug, info, warn or error", def: "info", oneOf: []string{"debug", "info", "warn", "error"}},
	}
}

func (s setting) env() string {
	return "TOKENSTORE_" + strings.ToUpper(strings.ReplaceAll(s.key, ".", "_"))
}

// Defaults returns the configuration before the file and environment apply.
func Defaults() Config {
	return Config{DevDir: ".dev", HTTP: httpapi.DefaultConfig(), Database: postgres.Config{LockTimeout: postgres.DefaultLockTimeout, Timeout: postgres.DefaultTimeout},
		Log: LogConfig{Format: "auto", Level: "info"}, Worker: app.WorkerConfig{Enabled: true}}
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
	c.App.ProviderMargins = c.OAuth.Margins()
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
	inline, table := false, c.settings()
	var walk func(prefix string, m *yaml.Node) error
	walk = func(prefix string, m *yaml.Node) error {
		for i := 0; i+1 < len(m.Content); i += 2 {
			key, n := prefix+m.Content[i].Value, m.Content[i+1]
			at := slices.IndexFunc(table, func(s setting) bool { return s.key == key })
			switch {
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
	var providers []oauth.ProviderSettings
	if key == "providers" && n.Decode(&providers) == nil {
		return slices.ContainsFunc(providers, func(p oauth.ProviderSettings) bool { return p.ClientSecret != "" })
	}
	return key == "keys" || key == "jwt_secret" || key == "database.url" && strings.Contains(postgres.RedactURL(n.Value), ":xxxxx@")
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
		*p, err = decodeList(n, where, "{name, credential_hash, permissions}", httpapi.NewCallers)
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
	case *bool:
		if *p, err = strconv.ParseBool(n.Value); err != nil {
			err = fmt.Errorf("%q is not true or false", n.Value)
		}
	case *time.Duration: // such as 5s or 15m; empty is zero
		if *p, err = time.ParseDuration(cmp.Or(n.Value, "0")); err != nil || *p < 0 {
			err = fmt.Errorf("%q is not a duration such as 5s or 15m", n.Value)
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

// decodeList decodes a list setting strictly (an unknown field is an
// error), then build, from the package that owns the entries, validates
// them: a variable's JSON text, or the file's YAML list, which goes back to
// text because only a yaml.Decoder refuses unknown fields.
func decodeList[E, T any](n *yaml.Node, where, shape string, build func([]E, string) (T, error)) (list T, err error) {
	text := []byte(n.Value)
	if n.Kind != yaml.ScalarNode {
		text, _ = yaml.Marshal(n)
	}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	var entries []E
	if err := dec.Decode(&entries); err != nil {
		return list, fmt.Errorf("%s: must be a list of %s: %w", where, shape, err)
	}
	return build(entries, where)
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
	case c.HTTP.WriteTimeout > 0 && c.Database.Timeout+postgres.ClientGrace >= c.HTTP.WriteTimeout:
		return fmt.Errorf("TOKENSTORE_DATABASE_TIMEOUT (database.timeout) is %s but TOKENSTORE_HTTP_WRITE_TIMEOUT is %s: "+
			"a request waiting for the database would be cut off without an answer; keep the database timeout at least %s shorter",
			c.Database.Timeout, c.HTTP.WriteTimeout, postgres.ClientGrace)
	}
	return errors.Join(c.HTTP.Validate(c.App.Refresh.WaitTimeout), c.OAuth.Validate(), c.App.Validate(c.OAuth.Timeouts()))
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
