package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
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

// Config is everything tokenstore can be told. Each section is the type
// its package's Module consumes.
type Config struct {
	Dev      bool
	DevDir   string
	Migrate  bool // apply migrations on start
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

// setting is one configuration value: its key in the config file, its
// environment variable, and how to apply it. Errors name the setting.
type setting struct {
	key   string
	help  string
	apply func(c *Config, v string) error
}

func (s setting) env() string {
	return "TOKENSTORE_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(s.key))
}

var settings = []setting{
	{"database.url", "PostgreSQL URL, postgres://user:password@host:5432/dbname (required; never logged with its password)",
		func(c *Config, v string) error { c.Database.URL = v; return nil }},
	{"database.max_conns", "connection pool size (default: max(4, CPUs))",
		func(c *Config, v string) error { return parseInt32(v, 1, 1000, &c.Database.MaxConns) }},
	{"database.lock_timeout", "how long a write waits for a locked row before answering busy (default 5s)",
		func(c *Config, v string) error { return parseDuration(v, &c.Database.LockTimeout) }},
	{"database.migrate", "apply pending migrations when serve starts: true or false (default false; true in --dev)",
		func(c *Config, v string) error { return parseBool(v, &c.Migrate) }},
	{"http.addr", "address to listen on, host:port (default 127.0.0.1:8080)",
		func(c *Config, v string) error { c.HTTP.Addr = v; return nil }},
	{"http.read_header_timeout", "time to read request headers (default 5s)",
		func(c *Config, v string) error { return parseDuration(v, &c.HTTP.ReadHeaderTimeout) }},
	{"http.read_timeout", "time to read a whole request (default 15s)",
		func(c *Config, v string) error { return parseDuration(v, &c.HTTP.ReadTimeout) }},
	{"http.write_timeout", "time to write a response (default 30s)",
		func(c *Config, v string) error { return parseDuration(v, &c.HTTP.WriteTimeout) }},
	{"http.idle_timeout", "keep-alive idle time (default 2m)",
		func(c *Config, v string) error { return parseDuration(v, &c.HTTP.IdleTimeout) }},
	{"http.shutdown_timeout", "how long shutdown waits for in-flight requests (default 20s)",
		func(c *Config, v string) error { return parseDuration(v, &c.HTTP.ShutdownTimeout) }},
	{"keys", "Fernet keys, comma-separated, primary (newest) first",
		func(c *Config, v string) error { return c.addKeys(v, "the key list") }},
	{"key_file", "key file, used when keys is not set: one Fernet key per line (notes after #) or JSON [{key, created_at, note}], primary first; must be mode 0600",
		func(c *Config, v string) error { c.KeyFile = v; return nil }},
	{"jwt_secret", "the replaced system's JWT secret, used when neither keys nor key_file is set: the key is derived as base64(SHA-256(secret))",
		func(c *Config, v string) error { c.JWTSecret = v; return nil }},
	{"jwt_secret_file", "file holding the replaced system's JWT secret (instead of jwt_secret)",
		func(c *Config, v string) error { c.JWTSecretFile = v; return nil }},
	{"refresh.margin", "refresh access tokens expiring within this margin (default 15m)",
		func(c *Config, v string) error { return parseDuration(v, &c.App.RefreshMargin) }},
	{"refresh.wait_timeout", "how long a read waits for a refresh before answering 503 unavailable (default 20s)",
		func(c *Config, v string) error { return parseDuration(v, &c.App.Refresh.WaitTimeout) }},
	{"refresh.lease", "how long a refresh may take before it counts as interrupted; must exceed every provider timeout (default 45s)",
		func(c *Config, v string) error { return parseDuration(v, &c.App.Refresh.Lease) }},
	{"refresh.retry_after", "back-off after a transient provider failure (default 10s)",
		func(c *Config, v string) error { return parseDuration(v, &c.App.Refresh.RetryAfter) }},
	{"refresh.worker", "refresh tokens ahead of expiry in the background: true or false (default true)",
		func(c *Config, v string) error { return parseBool(v, &c.Worker.Enabled) }},
	{"refresh.worker_interval", "time between background refresh scans (default 1m)",
		func(c *Config, v string) error { return parseDuration(v, &c.Worker.Interval) }},
	{"refresh.worker_batch", "tokens one background scan refreshes at most (default 50)",
		func(c *Config, v string) error { return parseInt(v, 1, 10000, &c.Worker.Batch) }},
	{"log.format", "json, text or auto (text on a terminal) (default auto)",
		func(c *Config, v string) error { return oneOf(v, &c.Log.Format, "json", "text", "auto") }},
	{"log.level", "debug, info, warn or error (default info)",
		func(c *Config, v string) error { return oneOf(v, &c.Log.Level, "debug", "info", "warn", "error") }},
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
// TOKENSTORE_CONFIG unless given), then TOKENSTORE_* environment variables.
// getenv is os.Getenv outside tests.
func Load(path string, dev bool, getenv func(string) string) (Config, error) {
	c := Defaults()
	c.Dev = dev
	if dev {
		c.Migrate = true
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
	// Keys and callers from the environment replace the file's: the
	// environment wins, and merging would keep the file's primary key.
	if _, ok := lookup(getenv, "TOKENSTORE_KEYS"); ok {
		c.Keys.Keys = nil
	}
	for _, s := range settings {
		if v, ok := lookup(getenv, s.env()); ok {
			if err := s.apply(&c, v); err != nil {
				return Config{}, fmt.Errorf("%s: %w", s.env(), err)
			}
		}
	}
	if v, ok := lookup(getenv, "TOKENSTORE_CALLERS"); ok {
		var callers []callerEntry
		dec := yaml.NewDecoder(strings.NewReader(v))
		dec.KnownFields(true)
		if err := dec.Decode(&callers); err != nil {
			return Config{}, errors.New("TOKENSTORE_CALLERS: must be a JSON array of {name, credential_hash, permissions}")
		}
		c.Callers = nil
		if err := c.addCallers(callers, "TOKENSTORE_CALLERS"); err != nil {
			return Config{}, err
		}
	}
	if v, ok := lookup(getenv, "TOKENSTORE_PROVIDERS"); ok {
		var entries []providerEntry
		dec := yaml.NewDecoder(strings.NewReader(v))
		dec.KnownFields(true)
		if err := dec.Decode(&entries); err != nil {
			return Config{}, fmt.Errorf("TOKENSTORE_PROVIDERS: must be a JSON array of provider objects: %w", err)
		}
		c.OAuth.Providers, c.App.ProviderMargins = nil, nil
		if err := c.addProviders(entries, "TOKENSTORE_PROVIDERS", getenv); err != nil {
			return Config{}, err
		}
	}
	if v, ok := lookup(getenv, "TOKENSTORE_DEV_DIR"); ok {
		c.DevDir = v
	}
	if err := c.resolveKeys(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// resolveKeys picks the key source, first configured wins: the keys setting
// (TOKENSTORE_KEYS), the key file, the legacy JWT secret. Nothing is ever
// generated here (only --dev does that).
func (c *Config) resolveKeys() error {
	switch {
	case len(c.Keys.Keys) > 0:
		c.KeySource = "TOKENSTORE_KEYS"
	case c.KeyFile != "":
		if err := c.loadKeyFile(c.KeyFile); err != nil {
			return err
		}
		c.KeySource = "key file " + c.KeyFile
	case c.JWTSecret != "" || c.JWTSecretFile != "":
		secret := c.JWTSecret
		if c.JWTSecretFile != "" {
			if c.JWTSecret != "" {
				return errors.New("TOKENSTORE_JWT_SECRET and TOKENSTORE_JWT_SECRET_FILE are both set: give the secret one way")
			}
			if err := checkPrivate(c.JWTSecretFile, "TOKENSTORE_JWT_SECRET_FILE (jwt_secret_file)"); err != nil {
				return err
			}
			s, err := readTrimmed(c.JWTSecretFile)
			if err != nil {
				return fmt.Errorf("TOKENSTORE_JWT_SECRET_FILE (jwt_secret_file): %w", err)
			}
			secret = s
		}
		if len(secret) < 16 {
			return errors.New("TOKENSTORE_JWT_SECRET: the secret is shorter than 16 bytes; a key derived from it would be guessable")
		}
		c.Keys.Keys = []fernet.Key{fernet.KeyFromJWTSecret(secret)}
		c.KeySource = "legacy JWT secret"
	}
	return nil
}

// checkPrivate refuses a secret file that group or others can read.
func checkPrivate(path, setting string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: %s is readable by group or others (mode %04o); run `chmod 600 %s`",
			setting, path, info.Mode().Perm(), path)
	}
	return nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

type callerEntry struct {
	Name           string   `yaml:"name"`
	CredentialHash string   `yaml:"credential_hash"`
	Permissions    []string `yaml:"permissions"`
}

func (c *Config) addCallers(entries []callerEntry, where string) error {
	for i, e := range entries {
		at := fmt.Sprintf("%s[%d]", where, i)
		if e.Name == "" {
			return fmt.Errorf("%s.name: must not be empty", at)
		}
		h, err := httpapi.ParseCredentialHash(e.CredentialHash)
		if err != nil {
			return fmt.Errorf("%s.credential_hash (caller %q): %w", at, e.Name, err)
		}
		caller := httpapi.Caller{Name: e.Name, CredentialHash: h}
		if len(e.Permissions) == 0 {
			return fmt.Errorf("%s.permissions (caller %q): grant at least one of %s", at, e.Name, permissionList())
		}
		for _, p := range e.Permissions {
			perm, err := httpapi.ParsePermission(p)
			if err != nil {
				return fmt.Errorf("%s.permissions (caller %q): %w", at, e.Name, err)
			}
			caller.Permissions = append(caller.Permissions, perm)
		}
		c.Callers = append(c.Callers, caller)
	}
	return nil
}

// providerEntry configures refreshing one provider's tokens. The client
// secret comes inline, from a file, or from an environment variable.
type providerEntry struct {
	Name             string   `yaml:"name"`
	Kind             string   `yaml:"kind"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	ClientSecretEnv  string   `yaml:"client_secret_env"`
	TokenURL         string   `yaml:"token_url"`
	BaseURL          string   `yaml:"base_url"`
	Realm            string   `yaml:"realm"`
	Tenant           string   `yaml:"tenant"`
	Scopes           []string `yaml:"scopes"`
	AuthStyle        string   `yaml:"auth_style"`
	Timeout          string   `yaml:"timeout"`
	NeverExpires     bool     `yaml:"never_expires"`
	// RefreshMargin overrides refresh.margin for this provider's tokens.
	RefreshMargin string `yaml:"refresh_margin"`
}

func (c *Config) addProviders(entries []providerEntry, where string, getenv func(string) string) error {
	for i, e := range entries {
		at := fmt.Sprintf("%s[%d] (%s)", where, i, e.Name)
		name, err := domain.ParseProvider(e.Name)
		if err != nil {
			return fmt.Errorf("%s.name: %w", at, err)
		}
		p := oauth.ProviderConfig{
			Name: name, Kind: oauth.Kind(e.Kind), ClientID: e.ClientID,
			TokenURL: e.TokenURL, BaseURL: e.BaseURL, Realm: e.Realm, Tenant: e.Tenant,
			Scopes: e.Scopes, AuthStyle: oauth.AuthStyle(e.AuthStyle), NeverExpires: e.NeverExpires,
		}
		if e.Timeout != "" {
			if err := parseDuration(e.Timeout, &p.Timeout); err != nil {
				return fmt.Errorf("%s.timeout: %w", at, err)
			}
		}
		if e.RefreshMargin != "" {
			var m time.Duration
			if err := parseDuration(e.RefreshMargin, &m); err != nil {
				return fmt.Errorf("%s.refresh_margin: %w", at, err)
			}
			if c.App.ProviderMargins == nil {
				c.App.ProviderMargins = map[domain.Provider]time.Duration{}
			}
			c.App.ProviderMargins[name] = m
		}
		sources := 0
		for _, v := range []string{e.ClientSecret, e.ClientSecretFile, e.ClientSecretEnv} {
			if v != "" {
				sources++
			}
		}
		if sources > 1 {
			return fmt.Errorf("%s: give the client secret one way: client_secret, client_secret_file or client_secret_env", at)
		}
		switch {
		case e.ClientSecret != "":
			p.ClientSecret = domain.NewSecret(e.ClientSecret)
		case e.ClientSecretFile != "":
			secret, err := readTrimmed(e.ClientSecretFile)
			if err != nil {
				return fmt.Errorf("%s.client_secret_file: %w", at, err)
			}
			p.ClientSecret = domain.NewSecret(secret)
		case e.ClientSecretEnv != "":
			secret := getenv(e.ClientSecretEnv)
			if secret == "" {
				return fmt.Errorf("%s.client_secret_env: the variable %s is empty or unset", at, e.ClientSecretEnv)
			}
			p.ClientSecret = domain.NewSecret(secret)
		}
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		c.OAuth.Providers = append(c.OAuth.Providers, p)
	}
	return nil
}

func permissionList() string {
	var names []string
	for _, p := range httpapi.AllPermissions {
		names = append(names, string(p))
	}
	return strings.Join(names, ", ")
}

func (c *Config) loadFile(path string, getenv func(string) string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config file %s: not valid YAML: %w", path, err)
	}
	if holdsSecrets(doc) {
		if err := checkPrivate(path, "config file"); err != nil {
			return fmt.Errorf("%w (it holds keys or secrets inline)", err)
		}
	}
	if rawCallers, ok := doc["callers"]; ok {
		delete(doc, "callers")
		b, _ := yaml.Marshal(rawCallers)
		var entries []callerEntry
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&entries); err != nil {
			return fmt.Errorf("config file %s: callers: must be a list of {name, credential_hash, permissions}: %w", path, err)
		}
		if err := c.addCallers(entries, "callers"); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if rawProviders, ok := doc["providers"]; ok {
		delete(doc, "providers")
		b, _ := yaml.Marshal(rawProviders)
		var entries []providerEntry
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&entries); err != nil {
			return fmt.Errorf("config file %s: providers: must be a list of provider settings: %w", path, err)
		}
		if err := c.addProviders(entries, "providers", getenv); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	flat := map[string]string{}
	if err := flatten("", doc, flat); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		i := slices.IndexFunc(settings, func(s setting) bool { return s.key == k })
		if i < 0 {
			return fmt.Errorf("config file %s: unknown setting %q (see configs/tokenstore.example.yaml)", path, k)
		}
		if err := settings[i].apply(c, flat[k]); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// holdsSecrets reports whether a config file carries key material or a
// secret inline (rather than naming a file or variable that does).
func holdsSecrets(doc map[string]any) bool {
	if doc["keys"] != nil || doc["jwt_secret"] != nil {
		return true
	}
	if providers, ok := doc["providers"].([]any); ok {
		for _, p := range providers {
			if m, ok := p.(map[string]any); ok && m["client_secret"] != nil {
				return true
			}
		}
	}
	if db, ok := doc["database"].(map[string]any); ok {
		if u, ok := db["url"].(string); ok && urlHasPassword(u) {
			return true
		}
	}
	return false
}

// urlHasPassword reports whether a database URL carries a password.
func urlHasPassword(u string) bool {
	return strings.Contains(postgres.RedactURL(u), ":xxxxx@")
}

func flatten(prefix string, m map[string]any, out map[string]string) error {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			if err := flatten(key, v, out); err != nil {
				return err
			}
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[key] = strings.Join(parts, ",")
		case nil:
		default:
			out[key] = fmt.Sprint(v)
		}
	}
	return nil
}

func (c *Config) addKeys(list, where string) error {
	for i, field := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		k, err := fernet.ParseKey(field)
		if err != nil {
			return fmt.Errorf("key #%d in %s: %w", i+1, where, err)
		}
		c.Keys.Keys = append(c.Keys.Keys, k)
	}
	return nil
}

// KeyFileEntry is one key in a JSON key file.
type KeyFileEntry struct {
	Key       string `json:"key"`
	CreatedAt string `json:"created_at,omitempty"`
	Note      string `json:"note,omitempty"`
}

// loadKeyFile reads the key file, primary first, refusing a file others can
// read: it holds every token's key. Two formats: one key per line (blank
// lines and # notes ignored), or JSON, a list of {key, created_at, note} or
// {"keys": [...]}.
func (c *Config) loadKeyFile(path string) error {
	const setting = "TOKENSTORE_KEY_FILE (key_file)"
	if err := checkPrivate(path, setting); err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	keys, err := parseKeyFile(raw)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", setting, path, err)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%s: %s holds no key (make one with `tokenstore keys generate`)", setting, path)
	}
	return c.addKeys(strings.Join(keys, ","), setting+" "+path)
}

func parseKeyFile(raw []byte) ([]string, error) {
	trimmed := strings.TrimSpace(string(raw))
	if strings.HasPrefix(trimmed, "[") || strings.HasPrefix(trimmed, "{") {
		var entries []KeyFileEntry
		if strings.HasPrefix(trimmed, "{") {
			var doc struct {
				Keys []KeyFileEntry `json:"keys"`
			}
			dec := json.NewDecoder(strings.NewReader(trimmed))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&doc); err != nil {
				return nil, errors.New(`not valid JSON: expected {"keys": [{"key": ..., "created_at": ..., "note": ...}]}`)
			}
			entries = doc.Keys
		} else {
			dec := json.NewDecoder(strings.NewReader(trimmed))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&entries); err != nil {
				return nil, errors.New(`not valid JSON: expected [{"key": ..., "created_at": ..., "note": ...}]`)
			}
		}
		keys := make([]string, 0, len(entries))
		for i, e := range entries {
			if e.Key == "" {
				return nil, fmt.Errorf("entry #%d has no key", i+1)
			}
			keys = append(keys, e.Key)
		}
		return keys, nil
	}
	var keys []string
	for line := range strings.Lines(string(raw)) {
		line, _, _ = strings.Cut(line, "#")
		if fields := strings.Fields(line); len(fields) == 1 {
			keys = append(keys, fields[0])
		} else if len(fields) > 1 {
			return nil, fmt.Errorf("a line holds %d words; put one key per line (notes after #)", len(fields))
		}
	}
	return keys, nil
}

// errNoKeys is what every command that needs the keys says without them.
var errNoKeys = errors.New("no encryption key: set TOKENSTORE_KEYS, TOKENSTORE_KEY_FILE or TOKENSTORE_JWT_SECRET(_FILE); " +
	"make a key with `tokenstore keys generate` (tokenstore never generates one outside --dev: " +
	"a key lost at restart makes every stored token unreadable)")

// Keyring builds the configured keyring, or says how to configure a key.
func (c *Config) Keyring() (*fernet.Keyring, error) {
	if len(c.Keys.Keys) == 0 {
		return nil, errNoKeys
	}
	return fernet.NewKeyringFromConfig(c.Keys)
}

// Validate checks what serve needs, naming the missing setting and how to
// provide it.
func (c *Config) Validate() error {
	if c.Database.URL == "" {
		return errors.New("TOKENSTORE_DATABASE_URL is not set: give the PostgreSQL URL, " +
			"postgres://user:password@host:5432/dbname")
	}
	if _, err := postgres.ParsePoolConfig(c.Database); err != nil {
		return err
	}
	if len(c.Keys.Keys) == 0 {
		return errNoKeys
	}
	if len(c.Callers) == 0 {
		return errors.New("no API callers: add a callers section to the config file or set TOKENSTORE_CALLERS; " +
			"make a credential with `tokenstore callers generate --name NAME`")
	}
	if c.HTTP.Addr == "" {
		return errors.New("TOKENSTORE_HTTP_ADDR is empty: give host:port")
	}
	lease := c.App.Refresh.Lease
	if lease <= 0 {
		lease = app.DefaultRefreshLease
	}
	if wait := c.App.Refresh.WaitTimeout; wait > 0 && c.HTTP.WriteTimeout > 0 && wait >= c.HTTP.WriteTimeout {
		return fmt.Errorf("TOKENSTORE_REFRESH_WAIT_TIMEOUT (refresh.wait_timeout) is %s but TOKENSTORE_HTTP_WRITE_TIMEOUT is %s: "+
			"a read waiting for a refresh would be cut off without an answer; keep the wait shorter", wait, c.HTTP.WriteTimeout)
	}
	for _, p := range c.OAuth.Providers {
		timeout := p.Timeout
		if timeout <= 0 {
			timeout = oauth.DefaultTimeout
		}
		if timeout+5*time.Second > lease {
			return fmt.Errorf("TOKENSTORE_REFRESH_LEASE (refresh.lease) is %s but provider %s may take %s: "+
				"the lease must exceed every provider timeout by at least 5s, or a slow refresh would be taken for an interrupted one",
				lease, p.Name, timeout)
		}
	}
	return nil
}

func parseDuration(v string, dst *time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not a duration such as 5s or 15m", v)
	}
	*dst = d
	return nil
}

func parseInt32(v string, lo, hi int64, dst *int32) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
	}
	*dst = int32(n)
	return nil
}

func parseInt(v string, lo, hi int, dst *int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("%q is not a whole number from %d to %d", v, lo, hi)
	}
	*dst = n
	return nil
}

func parseBool(v string, dst *bool) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%q is not true or false", v)
	}
	*dst = b
	return nil
}

func oneOf(v string, dst *string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	*dst = v
	return nil
}

// writeSecretFile creates path with mode 0600 (and its directory with 0700),
// failing if it exists: development secrets are made once, never replaced.
func writeSecretFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
