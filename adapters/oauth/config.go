package oauth

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/adapters/secretfile"
	"github.com/tokenstore/tokenstore/domain"
)

// Kind says which provider software a configuration talks to. It decides
// the default token endpoint and how the client authenticates; everything
// else about the exchange is standard OAuth 2.0.
type Kind string

// Supported kinds.
const (
	KindGitHub      Kind = "github"       // github.com or GitHub Enterprise Server (BaseURL)
	KindGitLab      Kind = "gitlab"       // gitlab.com or self-hosted (BaseURL)
	KindBitbucket   Kind = "bitbucket"    // Bitbucket Cloud
	KindAzureDevOps Kind = "azure_devops" // Azure DevOps through Microsoft Entra ID
	KindKeycloak    Kind = "keycloak"     // Keycloak (BaseURL + Realm)
	KindOAuth2      Kind = "oauth2"       // any other OAuth 2.0 / OIDC provider (TokenURL)
)

var kinds = []Kind{KindGitHub, KindGitLab, KindBitbucket, KindAzureDevOps, KindKeycloak, KindOAuth2}

func (k Kind) known() bool {
	for _, x := range kinds {
		if k == x {
			return true
		}
	}
	return false
}

// AuthMethod says how the client authenticates at the token endpoint: the
// token_endpoint_auth_method of RFC 7591 §2, with the values RFC 6749 §2.3.1
// defines for a client secret.
type AuthMethod string

const (
	// AuthMethodAuto (or empty) uses what the kind is known to accept: HTTP
	// basic for Bitbucket, the request body for GitHub, GitLab, Entra and
	// Keycloak, and the body for any public client (no secret). For the
	// generic kind it tries HTTP basic (the one method RFC 6749 requires
	// servers to support) and, if the server refuses the client
	// (invalid_client or HTTP 401), the body, then remembers which worked.
	AuthMethodAuto AuthMethod = "auto"
	// AuthMethodClientSecretBasic sends the client credentials as HTTP basic
	// auth. "header" is accepted as an alias (the name before RFC terms).
	AuthMethodClientSecretBasic AuthMethod = "client_secret_basic"
	// AuthMethodClientSecretPost sends client_id and client_secret in the
	// form body. "params" is accepted as an alias.
	AuthMethodClientSecretPost AuthMethod = "client_secret_post"
)

// UnmarshalText reads a configured method, turning the aliases header and
// params into their RFC names. Other values are kept as given, for Validate
// to report with the provider's name.
func (m *AuthMethod) UnmarshalText(text []byte) error {
	*m = AuthMethod(text).canonical()
	return nil
}

func (m AuthMethod) canonical() AuthMethod {
	switch m {
	case "header":
		return AuthMethodClientSecretBasic
	case "params":
		return AuthMethodClientSecretPost
	}
	return m
}

// DefaultTimeout bounds one refresh when ProviderConfig.Timeout is zero: long
// enough for a slow provider, short enough that a caller waiting on a
// refresh (and the row lock the service may hold meanwhile) is not stuck.
const DefaultTimeout = 15 * time.Second

// DefaultAzureDevOpsScopes are sent on an azure_devops refresh when Scopes is
// empty: Entra requires a scope on refresh, and this is Azure DevOps'
// resource with the permissions the app registration grants, plus
// offline_access so that Entra returns a new refresh token.
var DefaultAzureDevOpsScopes = []string{"499b84ac-1321-427f-aa17-267ca6975798/.default", "offline_access"}

// Config is the refresher's configuration: one entry per provider name.
type Config struct {
	Providers []ProviderConfig
}

// NewFromConfig builds a Refresher from cfg with the default HTTP client
// and opts. No providers is valid: the Refresher then refreshes nothing and
// reports every provider as not Configured.
func NewFromConfig(cfg Config, opts ...Option) (*Refresher, error) {
	return New(cfg.Providers, opts...)
}

// Validate reports the first invalid or repeated provider entry, as New
// would.
func (c Config) Validate() error {
	_, err := New(c.Providers)
	return err
}

// Margins gives, by provider name, the refresh margins the entries set; nil
// when none does. The token service, not the refresher, uses them
// (app.Config.ProviderMargins).
func (c Config) Margins() map[domain.Provider]time.Duration {
	var out map[domain.Provider]time.Duration
	for _, p := range c.Providers {
		if p.RefreshMargin > 0 {
			if out == nil {
				out = map[domain.Provider]time.Duration{}
			}
			out[p.Name] = p.RefreshMargin
		}
	}
	return out
}

// Names lists the declared provider names, in the setting's order: every
// entry declares its name, refreshed or not (never_expires, refresh:
// false). Tokens are stored only for these (app.Config.Providers).
func (c Config) Names() []domain.Provider {
	var out []domain.Provider // nil for none, as the zero Config
	for _, p := range c.Providers {
		out = append(out, p.Name)
	}
	return out
}

// Timeouts gives, by provider name, the longest one refresh may take.
func (c Config) Timeouts() map[domain.Provider]time.Duration {
	out := make(map[domain.Provider]time.Duration, len(c.Providers))
	for _, p := range c.Providers {
		out[p.Name] = cmp.Or(p.Timeout, DefaultTimeout)
	}
	return out
}

// ProviderConfig declares one provider name and how its tokens are
// refreshed. Its json tags name the members of an entry in the providers
// setting (a config file's YAML list or TOKENSTORE_PROVIDERS' JSON);
// ProviderSettings, which embeds it, reads the members whose text differs
// (client_secret, timeout, refresh_margin). Its ClientSecret is a
// domain.Secret, so printing the configuration (fmt, JSON, slog) shows it
// redacted.
type ProviderConfig struct {
	// Name is the provider name tokens are stored under, e.g. "github" or
	// "gitlab-internal".
	Name domain.Provider `json:"name"`
	// Kind selects defaults; empty means Name, when Name is a Kind.
	Kind Kind `json:"kind"`

	ClientID string `json:"client_id"`
	// ClientSecret is optional for public clients, except github and
	// bitbucket. NewConfig reads it from where a ProviderSettings says.
	ClientSecret domain.Secret `json:"client_secret"`

	// TokenURL overrides the kind's token endpoint; required for oauth2.
	TokenURL string `json:"token_url"`
	// BaseURL is the server for github (Enterprise Server; default
	// https://github.com), gitlab (default https://gitlab.com) and keycloak
	// (required; include "/auth" for Keycloak before version 17).
	BaseURL string `json:"base_url"`
	// Realm is the Keycloak realm (required for keycloak).
	Realm string `json:"realm"`
	// Tenant is the Entra directory (tenant) ID or domain for azure_devops,
	// or "organizations" / "common" for a multi-tenant app. Required unless
	// TokenURL is set: a wrong authority fails every refresh with an obscure
	// AADSTS error, so it is never guessed.
	Tenant string `json:"tenant"`
	// Scopes are sent as the "scope" parameter of the refresh (joined with
	// spaces; an entry may itself hold several space-separated scopes).
	// azure_devops defaults to DefaultAzureDevOpsScopes; other kinds send no
	// scope unless set, which keeps the scopes originally granted.
	Scopes []string `json:"scopes"`
	// TokenEndpointAuthMethod: auto (default), client_secret_basic or
	// client_secret_post (aliases header and params). Bitbucket accepts only
	// client_secret_basic.
	TokenEndpointAuthMethod AuthMethod `json:"token_endpoint_auth_method"`
	// Timeout bounds one refresh, connection to last byte; 0 means
	// DefaultTimeout. NewConfig parses ProviderSettings.Timeout into it.
	Timeout time.Duration `json:"timeout"`
	// NeverExpires marks a provider whose tokens do not expire (GitHub OAuth
	// App tokens): it is known but never refreshed, so no client
	// credentials are needed.
	NeverExpires bool `json:"never_expires"`
	// StoreOnly declares a provider whose tokens tokenstore keeps but never
	// refreshes (no client credentials): an expired access token is answered
	// token_expired. Operators write it as refresh: false. NeverExpires
	// implies it.
	StoreOnly bool `json:"-"`
	// RefreshMargin overrides the service's refresh margin for this
	// provider, whose access tokens may live less than it (Keycloak's 5
	// minutes); 0 keeps the service's. The refresher does not use it.
	RefreshMargin time.Duration `json:"refresh_margin"`
	// RevokesPreviousAccessToken says the provider revokes the previous
	// access token when it refreshes, so tokenstore never hands out an
	// access token while a refresh of it is in flight or after a refresh
	// whose outcome is unknown, and reports expiries no later than its own
	// next refresh. nil takes the kind's default (RevokesByDefault).
	RevokesPreviousAccessToken *bool `json:"revokes_previous_access_token"`

	// RevokeOnDelete revokes the user's tokens at the provider after they
	// are deleted from tokenstore (Revoker). Off by default. Refused for
	// the kinds without a revocation API (bitbucket, azure_devops) and for
	// a provider declared with refresh: false (it has no credentials); a
	// never_expires provider (GitHub OAuth App) may set it with its
	// client_id and client_secret. See the README's revocation table.
	RevokeOnDelete bool `json:"revoke_on_delete"`
	// RevocationURL is the RFC 7009 revocation endpoint: required for
	// oauth2 with RevokeOnDelete; for gitlab and keycloak it overrides the
	// endpoint derived from BaseURL (and Realm). Used only with
	// RevokeOnDelete.
	RevocationURL string `json:"revocation_url"`
	// APIURL is GitHub's REST API root, where the grant is deleted: default
	// https://api.github.com, or BaseURL + "/api/v3" for GitHub Enterprise
	// Server. github only, and used only with RevokeOnDelete.
	APIURL string `json:"api_url"`
}

// RevokesByDefault says whether providers of kind k revoke the previous
// access token when they refresh, as their documentation says (README,
// "Providers that revoke on refresh"): GitHub ("that refresh token and the
// old user access token will no longer work") and GitLab ("invalidates the
// existing access_token and refresh_token") do; Entra ID (azure_devops) and
// Keycloak issue self-contained access tokens that stay valid until they
// expire. Bitbucket documents neither, and a generic oauth2 server may do
// either (RFC 6749 §6 and RFC 9700 §4.14 allow rotation and revocation), so
// they are assumed to: that only makes callers wait during a refresh,
// where the opposite assumption hands out dead tokens.
func RevokesByDefault(k Kind) bool {
	return k != KindAzureDevOps && k != KindKeycloak
}

// ProviderSettings is one entry of the providers setting as an operator
// writes it (YAML in a config file, JSON in TOKENSTORE_PROVIDERS): the
// ProviderConfig fields under their json tags, where the client secret comes
// from, auth_style (token_endpoint_auth_method's older name), refresh (false
// declares a store-only provider) and the durations as text, such as 15s.
type ProviderSettings struct {
	ProviderConfig   `json:",inline"`
	ClientSecret     string     `json:"client_secret"`
	ClientSecretFile string     `json:"client_secret_file"`
	ClientSecretEnv  string     `json:"client_secret_env"`
	AuthStyle        AuthMethod `json:"auth_style"`
	Timeout          string     `json:"timeout"`
	RefreshMargin    string     `json:"refresh_margin"`
	// Refresh false declares a store-only provider (ProviderConfig.StoreOnly);
	// absent or true, the entry says how to refresh.
	Refresh *bool `json:"refresh"`
}

// ProviderSettingsHelp describes a ProviderSettings entry for a command's
// help text, in lines indented by six spaces after the first.
func ProviderSettingsHelp() string {
	return "{name, kind (" + kindList() + "),\n" +
		"      client_id, client_secret | client_secret_file | client_secret_env, token_url, base_url, realm, tenant, scopes,\n" +
		"      token_endpoint_auth_method (auto, client_secret_basic or client_secret_post; the older auth_style, header and\n" +
		"      params are aliases), timeout (default " + DefaultTimeout.String() + "), never_expires,\n" +
		"      refresh_margin (this provider's margin, below its access-token lifetime),\n" +
		"      revokes_previous_access_token (default true, false for azure_devops and keycloak),\n" +
		"      revoke_on_delete (default false; not for bitbucket, azure_devops), revocation_url (oauth2: required with it),\n" +
		"      api_url (github: the REST API root, default https://api.github.com)};\n" +
		"      {name, refresh: false} declares a provider whose tokens are stored but never refreshed.\n" +
		"      Tokens are stored only for the providers listed here"
}

// NewConfig validates the providers setting into a Config, reading each
// client secret from where its entry says (getenv reads a variable). Errors
// start with where (the setting: providers or TOKENSTORE_PROVIDERS), the
// entry's index and name, then the field; they never quote a secret.
func NewConfig(entries []ProviderSettings, where string, getenv func(string) string) (Config, error) {
	var cfg Config
	for i, e := range entries {
		p, err := e.config(fmt.Sprintf("%s[%d] (%s)", where, i, e.Name), getenv)
		if err != nil {
			return Config{}, err
		}
		cfg.Providers = append(cfg.Providers, p)
	}
	return cfg, nil
}

func (s ProviderSettings) config(at string, getenv func(string) string) (ProviderConfig, error) {
	p, secret, err := s.ProviderConfig, s.ClientSecret, error(nil)
	p.StoreOnly = s.Refresh != nil && !*s.Refresh
	p.TokenEndpointAuthMethod = cmp.Or(p.TokenEndpointAuthMethod, s.AuthStyle)
	if p.Timeout, err = parseDuration(s.Timeout); err != nil {
		return ProviderConfig{}, fmt.Errorf("%s.timeout: %w", at, err)
	}
	if p.RefreshMargin, err = parseDuration(s.RefreshMargin); err != nil {
		return ProviderConfig{}, fmt.Errorf("%s.refresh_margin: %w", at, err)
	}
	switch file, env := s.ClientSecretFile, s.ClientSecretEnv; {
	case file != "" && (secret != "" || env != ""), secret != "" && env != "":
		return ProviderConfig{}, fmt.Errorf("%s: give the client secret one way: client_secret, client_secret_file or client_secret_env", at)
	case file != "":
		if secret, err = secretfile.Read(file, at+".client_secret_file"); err == nil && secret == "" {
			err = fmt.Errorf("%s.client_secret_file: %s is empty", at, file)
		}
	case env != "":
		if secret = getenv(env); secret == "" {
			err = fmt.Errorf("%s.client_secret_env: the variable %s is empty or unset", at, env)
		}
	}
	if err != nil {
		return ProviderConfig{}, err
	}
	p.ClientSecret = domain.NewSecret(secret)
	if err := p.Validate(); err != nil {
		return ProviderConfig{}, fmt.Errorf("%s: %w", at, err)
	}
	return p, nil
}

// parseDuration reads a duration setting such as 15s; empty is zero.
func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if v != "" && (err != nil || d < 0) {
		return 0, fmt.Errorf("%q is not a duration such as 5s or 15m", v)
	}
	return d, nil
}

// kind is Kind, or Name when Kind is empty and Name is a kind.
func (c ProviderConfig) kind() Kind {
	if c.Kind == "" && Kind(c.Name).known() {
		return Kind(c.Name)
	}
	return c.Kind
}

// Validate reports the first problem with c, naming the field as
// providers[NAME].field. It never prints the client secret.
func (c ProviderConfig) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a validated ProviderConfig with every default applied.
type resolved struct {
	name         domain.Provider
	kind         Kind
	clientID     string
	clientSecret domain.Secret
	tokenURL     string
	scope        string
	method       AuthMethod // client_secret_basic or client_secret_post
	probe        bool       // generic auto: fall back to the body on invalid_client
	timeout      time.Duration
	neverExpires bool
	revokes      bool // the provider revokes the previous access token on refresh
	// revokeOnDelete: revocationURL is the RFC 7009 endpoint, or for
	// github the grant to DELETE.
	revokeOnDelete bool
	revocationURL  string
}

// resolve validates c and applies the defaults, so that Validate and New
// can never disagree about what is valid.
func (c ProviderConfig) resolve() (resolved, error) {
	label := string(c.Name)
	_, nameErr := domain.ParseProvider(label)
	if nameErr != nil && label != "" {
		label = strconv.Quote(label) // an invalid name may hold anything, even a line break
	}
	fail := func(field, format string, args ...any) (resolved, error) {
		return resolved{}, fmt.Errorf("providers[%s].%s: %s", label, field, fmt.Sprintf(format, args...))
	}
	if err := nameErr; err != nil {
		var ve *domain.ValidationError
		if errors.As(err, &ve) {
			return fail("name", "%s", ve.Reason)
		}
		return fail("name", "%v", err)
	}
	kind := c.kind()
	switch {
	case kind == "" && c.StoreOnly:
		// A store-only provider needs no kind: it is never called.
	case kind == "":
		return fail("kind", "must not be empty: use one of %s, or declare a store-only provider with refresh: false", kindList())
	case !kind.known():
		return fail("kind", "%q is not supported: use one of %s", kind, kindList())
	}
	r := resolved{name: c.Name, kind: kind, neverExpires: c.NeverExpires || c.StoreOnly}
	if c.StoreOnly {
		if c.RevokeOnDelete {
			return fail("revoke_on_delete", "needs the provider's kind and client credentials, which refresh: false "+
				"declares none of: declare it with never_expires: true, kind, client_id and client_secret instead")
		}
		if field := c.refreshSetting(); field != "" {
			return fail(field, "is not used: refresh is false, so this provider is never refreshed")
		}
	}
	if r.neverExpires && !c.RevokeOnDelete {
		return r, nil // never refreshed nor revoked: nothing else is used
	}

	// Fields a kind ignores are errors: a Realm on a gitlab entry is a
	// configuration mistake the operator wants to hear about at start-up.
	if c.BaseURL != "" && kind != KindGitHub && kind != KindGitLab && kind != KindKeycloak {
		return fail("base_url", "is not used by kind %s; set token_url to override the endpoint", kind)
	}
	if c.Realm != "" && kind != KindKeycloak {
		return fail("realm", "is used only by kind keycloak")
	}
	if c.Tenant != "" && kind != KindAzureDevOps {
		return fail("tenant", "is used only by kind azure_devops")
	}

	if strings.TrimSpace(c.ClientID) == "" {
		return fail("client_id", "must not be empty")
	}
	r.clientID = c.ClientID
	r.clientSecret = c.ClientSecret
	if c.ClientSecret.IsZero() && (kind == KindGitHub || kind == KindBitbucket) {
		return fail("client_secret", "must not be empty: %s authenticates every refresh with the client secret", kind)
	}

	if c.TokenURL != "" {
		if err := checkURL(c.TokenURL); err != nil {
			return fail("token_url", "%v", err)
		}
		r.tokenURL = c.TokenURL
	}
	if c.BaseURL != "" {
		if err := checkURL(c.BaseURL); err != nil {
			return fail("base_url", "%v", err)
		}
	}
	base := strings.TrimRight(c.BaseURL, "/")
	switch kind {
	case KindGitHub:
		r.tokenURL = orDefault(r.tokenURL, orDefault(base, "https://github.com")+"/login/oauth/access_token")
	case KindGitLab:
		r.tokenURL = orDefault(r.tokenURL, orDefault(base, "https://gitlab.com")+"/oauth/token")
	case KindBitbucket:
		r.tokenURL = orDefault(r.tokenURL, "https://bitbucket.org/site/oauth2/access_token")
	case KindAzureDevOps:
		if r.tokenURL == "" {
			switch {
			case c.Tenant == "":
				return fail("tenant", "must not be empty: set the Entra directory (tenant) ID, "+
					`or "organizations" or "common" for a multi-tenant app (or set token_url)`)
			case !validTenant(c.Tenant):
				return fail("tenant", "%q is not a tenant ID or domain: use letters, digits, '.' and '-'", c.Tenant)
			}
			r.tokenURL = "https://login.microsoftonline.com/" + c.Tenant + "/oauth2/v2.0/token"
		}
	case KindKeycloak:
		if r.tokenURL == "" {
			if base == "" {
				return fail("base_url", "must not be empty: set the Keycloak server URL, e.g. https://keycloak.example.com")
			}
			if strings.TrimSpace(c.Realm) == "" {
				return fail("realm", "must not be empty")
			}
			r.tokenURL = base + "/realms/" + url.PathEscape(c.Realm) + "/protocol/openid-connect/token"
		}
	case KindOAuth2:
		if r.tokenURL == "" {
			return fail("token_url", "must not be empty for kind oauth2")
		}
	}

	scopes := c.Scopes
	if len(scopes) == 0 && kind == KindAzureDevOps {
		scopes = DefaultAzureDevOpsScopes
	}
	r.scope = strings.Join(strings.Fields(strings.Join(scopes, " ")), " ")

	switch method := c.TokenEndpointAuthMethod.canonical(); method {
	case "", AuthMethodAuto:
		switch {
		case kind == KindBitbucket:
			r.method = AuthMethodClientSecretBasic
		case kind == KindOAuth2 && !c.ClientSecret.IsZero():
			r.method, r.probe = AuthMethodClientSecretBasic, true
		default:
			// GitHub, GitLab and Entra document the body; Keycloak accepts
			// both; a public client has no secret to put in a header.
			r.method = AuthMethodClientSecretPost
		}
	case AuthMethodClientSecretBasic, AuthMethodClientSecretPost:
		if kind == KindBitbucket && method == AuthMethodClientSecretPost {
			return fail("token_endpoint_auth_method", "bitbucket accepts client credentials only as HTTP basic auth: use client_secret_basic or auto")
		}
		r.method = method
	default:
		return fail("token_endpoint_auth_method", "%q is not supported: use auto, client_secret_basic or client_secret_post", c.TokenEndpointAuthMethod)
	}

	if c.Timeout < 0 {
		return fail("timeout", "must not be negative")
	}
	r.timeout = cmp.Or(c.Timeout, DefaultTimeout)
	r.revokes = RevokesByDefault(kind)
	if c.RevokesPreviousAccessToken != nil {
		r.revokes = *c.RevokesPreviousAccessToken
	}
	if err := c.resolveRevocation(&r, base); err != nil {
		return fail(err.field, "%s", err.reason)
	}
	return r, nil
}

// settingError is a problem with one setting of a provider entry.
type settingError struct{ field, reason string }

// resolveRevocation sets r's revocation endpoint from c (base is BaseURL
// without a trailing slash), or says which setting is wrong. Settings only
// revocation uses are refused without revoke_on_delete, and on kinds that
// do not use them.
func (c ProviderConfig) resolveRevocation(r *resolved, base string) *settingError {
	kind := r.kind
	switch {
	case c.APIURL != "" && kind != KindGitHub:
		return &settingError{"api_url", "is used only by kind github"}
	case c.RevocationURL != "" && kind != KindOAuth2 && kind != KindGitLab && kind != KindKeycloak:
		return &settingError{"revocation_url", fmt.Sprintf("is not used by kind %s", kind)}
	case !c.RevokeOnDelete && c.APIURL != "":
		return &settingError{"api_url", "is not used: revoke_on_delete is false"}
	case !c.RevokeOnDelete && c.RevocationURL != "":
		return &settingError{"revocation_url", "is not used: revoke_on_delete is false"}
	case !c.RevokeOnDelete:
		return nil
	case !RevocationSupported(kind):
		return &settingError{"revoke_on_delete", fmt.Sprintf("%s has no API to revoke tokens (see the README's revocation table): remove the setting", kind)}
	}
	if c.APIURL != "" {
		if err := checkURL(c.APIURL); err != nil {
			return &settingError{"api_url", err.Error()}
		}
	}
	if c.RevocationURL != "" {
		if err := checkURL(c.RevocationURL); err != nil {
			return &settingError{"revocation_url", err.Error()}
		}
	}
	r.revokeOnDelete = true
	r.revocationURL = c.RevocationURL
	switch {
	case r.revocationURL != "":
	case kind == KindGitHub:
		api := strings.TrimRight(c.APIURL, "/")
		switch {
		case api == "" && base != "":
			api = base + "/api/v3" // GitHub Enterprise Server
		case api == "":
			api = "https://api.github.com"
		}
		r.revocationURL = api + "/applications/" + url.PathEscape(r.clientID) + "/grant"
	case kind == KindGitLab:
		r.revocationURL = orDefault(base, "https://gitlab.com") + "/oauth/revoke"
	case kind == KindKeycloak && base != "" && strings.TrimSpace(c.Realm) != "":
		r.revocationURL = base + "/realms/" + url.PathEscape(c.Realm) + "/protocol/openid-connect/revoke"
	case kind == KindKeycloak:
		return &settingError{"revocation_url", "must not be empty when token_url replaces base_url and realm"}
	default:
		return &settingError{"revocation_url", "must not be empty for kind oauth2 with revoke_on_delete: set the RFC 7009 revocation endpoint"}
	}
	return nil
}

// RevocationSupported reports whether providers of kind k can revoke tokens
// (README, "Upstream revocation"): RFC 7009 endpoints for oauth2 (when the
// server has one), gitlab and keycloak, and the grant deletion API for
// github. Bitbucket Cloud documents no revocation endpoint; Entra ID
// (azure_devops) has none for an application's tokens (only Microsoft
// Graph's revokeSignInSessions, which signs the user out of every
// application).
func RevocationSupported(k Kind) bool {
	return k != KindBitbucket && k != KindAzureDevOps
}

// refreshSetting names the first setting of c that only refreshing uses, or
// "" when none is set.
func (c ProviderConfig) refreshSetting() string {
	switch {
	case c.ClientID != "":
		return "client_id"
	case !c.ClientSecret.IsZero():
		return "client_secret"
	case c.TokenURL != "":
		return "token_url"
	case c.BaseURL != "":
		return "base_url"
	case c.Realm != "":
		return "realm"
	case c.Tenant != "":
		return "tenant"
	case len(c.Scopes) > 0:
		return "scopes"
	case c.TokenEndpointAuthMethod != "":
		return "token_endpoint_auth_method"
	case c.Timeout != 0:
		return "timeout"
	case c.RefreshMargin != 0:
		return "refresh_margin"
	case c.RevokesPreviousAccessToken != nil:
		return "revokes_previous_access_token"
	case c.RevocationURL != "":
		return "revocation_url"
	case c.APIURL != "":
		return "api_url"
	}
	return ""
}

// checkURL accepts absolute http(s) URLs without credentials or fragment.
// Plain http is allowed because in-cluster Keycloak is often reached that
// way; credentials in the URL are not, because URLs end up in error messages.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("is not a valid URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("must be an absolute http or https URL, got scheme %q", u.Scheme)
	case u.Host == "":
		return errors.New("must include a host")
	case u.User != nil:
		return errors.New("must not contain credentials: use client_id and client_secret")
	case u.Fragment != "":
		return errors.New("must not contain a fragment")
	}
	return nil
}

func validTenant(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return s != "" && s[0] != '.'
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func kindList() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}
