package cli

import (
	"bytes"
	"cmp"
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/adapters/oauth"
	"github.com/tokenstore/tokenstore/domain"
)

// decodeList decodes a list setting strictly (an unknown field is an
// error): a variable's JSON text, or the file's YAML list, which goes back
// to text because only a yaml.Decoder refuses unknown fields.
func decodeList(n *yaml.Node, where, shape string, list any) error {
	text := []byte(n.Value)
	if n.Kind != yaml.ScalarNode {
		text, _ = yaml.Marshal(n)
	}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(list); err != nil {
		return fmt.Errorf("%s: must be a list of %s: %w", where, shape, err)
	}
	return nil
}

type callerEntry struct {
	Name           string   `yaml:"name"`
	CredentialHash string   `yaml:"credential_hash"`
	Permissions    []string `yaml:"permissions"`
}

func decodeCallers(n *yaml.Node, where string) ([]httpapi.Caller, error) {
	var entries []callerEntry
	if err := decodeList(n, where, "{name, credential_hash, permissions}", &entries); err != nil {
		return nil, err
	}
	callers := make([]httpapi.Caller, 0, len(entries))
	for i, e := range entries {
		at := fmt.Sprintf("%s[%d]", where, i)
		if e.Name == "" {
			return nil, fmt.Errorf("%s.name: must not be empty", at)
		}
		h, err := httpapi.ParseCredentialHash(e.CredentialHash)
		if err != nil {
			return nil, fmt.Errorf("%s.credential_hash (caller %q): %w", at, e.Name, err)
		}
		if len(e.Permissions) == 0 {
			return nil, fmt.Errorf("%s.permissions (caller %q): grant at least one of %s", at, e.Name, permissionList())
		}
		caller := httpapi.Caller{Name: e.Name, CredentialHash: h}
		for _, p := range e.Permissions {
			perm, err := httpapi.ParsePermission(p)
			if err != nil {
				return nil, fmt.Errorf("%s.permissions (caller %q): %w", at, e.Name, err)
			}
			caller.Permissions = append(caller.Permissions, perm)
		}
		callers = append(callers, caller)
	}
	return callers, nil
}

func permissionList() string {
	return strings.Join(permNames(), ", ")
}

// providerEntry configures refreshing one provider's tokens; its fields are
// oauth.ProviderConfig's, named as the settings are. The client secret comes
// inline, from a file, or from an environment variable.
type providerEntry struct {
	Name                    string           `yaml:"name"`
	Kind                    oauth.Kind       `yaml:"kind"`
	ClientID                string           `yaml:"client_id"`
	ClientSecret            string           `yaml:"client_secret"`
	ClientSecretFile        string           `yaml:"client_secret_file"`
	ClientSecretEnv         string           `yaml:"client_secret_env"`
	TokenURL                string           `yaml:"token_url"`
	BaseURL                 string           `yaml:"base_url"`
	Realm                   string           `yaml:"realm"`
	Tenant                  string           `yaml:"tenant"`
	Scopes                  []string         `yaml:"scopes"`
	TokenEndpointAuthMethod oauth.AuthMethod `yaml:"token_endpoint_auth_method"`
	AuthStyle               oauth.AuthMethod `yaml:"auth_style"` // the name before RFC 7591's, kept as an alias
	Timeout                 string           `yaml:"timeout"`
	NeverExpires            bool             `yaml:"never_expires"`
	RefreshMargin           string           `yaml:"refresh_margin"` // overrides refresh.margin
}

// decodeProviders reads the providers setting into the refresher's
// configuration and the per-provider refresh margins.
func decodeProviders(n *yaml.Node, where string, getenv func(string) string) (oauth.Config, map[domain.Provider]time.Duration, error) {
	var entries []providerEntry
	if err := decodeList(n, where, "provider settings", &entries); err != nil {
		return oauth.Config{}, nil, err
	}
	var cfg oauth.Config
	var margins map[domain.Provider]time.Duration
	for i, e := range entries {
		at := fmt.Sprintf("%s[%d] (%s)", where, i, e.Name)
		name, err := domain.ParseProvider(e.Name)
		if err != nil {
			return oauth.Config{}, nil, fmt.Errorf("%s.name: %w", at, err)
		}
		if e.AuthStyle != "" && e.TokenEndpointAuthMethod != "" {
			return oauth.Config{}, nil, fmt.Errorf("%s: auth_style is the old name of token_endpoint_auth_method: give one", at)
		}
		p := oauth.ProviderConfig{
			Name: name, Kind: e.Kind, ClientID: e.ClientID, TokenURL: e.TokenURL, BaseURL: e.BaseURL,
			Realm: e.Realm, Tenant: e.Tenant, Scopes: e.Scopes, NeverExpires: e.NeverExpires,
			TokenEndpointAuthMethod: cmp.Or(e.TokenEndpointAuthMethod, e.AuthStyle),
		}
		if p.Timeout, err = duration(e.Timeout, at+".timeout"); err != nil {
			return oauth.Config{}, nil, err
		}
		if e.RefreshMargin != "" {
			if margins == nil {
				margins = map[domain.Provider]time.Duration{}
			}
			if margins[name], err = duration(e.RefreshMargin, at+".refresh_margin"); err != nil {
				return oauth.Config{}, nil, err
			}
		}
		if p.ClientSecret, err = clientSecret(e, at, getenv); err != nil {
			return oauth.Config{}, nil, err
		}
		cfg.Providers = append(cfg.Providers, p)
	}
	if err := cfg.Validate(); err != nil {
		return oauth.Config{}, nil, fmt.Errorf("%s: %w", where, err)
	}
	return cfg, margins, nil
}

// clientSecret reads the one client secret source an entry gives, if any.
func clientSecret(e providerEntry, at string, getenv func(string) string) (domain.Secret, error) {
	given := 0
	for _, v := range []string{e.ClientSecret, e.ClientSecretFile, e.ClientSecretEnv} {
		given += min(len(v), 1)
	}
	switch {
	case given > 1:
		return domain.Secret{}, fmt.Errorf("%s: give the client secret one way: client_secret, client_secret_file or client_secret_env", at)
	case e.ClientSecretFile != "":
		secret, err := readTrimmed(e.ClientSecretFile)
		if err != nil {
			return domain.Secret{}, fmt.Errorf("%s.client_secret_file: %w", at, err)
		}
		return domain.NewSecret(secret), nil
	case e.ClientSecretEnv != "":
		secret := getenv(e.ClientSecretEnv)
		if secret == "" {
			return domain.Secret{}, fmt.Errorf("%s.client_secret_env: the variable %s is empty or unset", at, e.ClientSecretEnv)
		}
		return domain.NewSecret(secret), nil
	}
	return domain.NewSecret(e.ClientSecret), nil
}
