package cli

import (
	"bytes"
	"cmp"
	"fmt"
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

func decodeCallers(n *yaml.Node, where string) ([]httpapi.Caller, error) {
	var entries []httpapi.CallerConfig
	if err := decodeList(n, where, "{name, credential_hash, permissions}", &entries); err != nil {
		return nil, err
	}
	callers := make([]httpapi.Caller, len(entries))
	for i, e := range entries {
		var err error
		if callers[i], err = e.Caller(); err != nil {
			return nil, fmt.Errorf("%s[%d].%w", where, i, err)
		}
	}
	return callers, nil
}

// providerEntry is one entry of the providers setting: oauth.ProviderConfig,
// whose tags are the setting names, and what the loader reads for it.
type providerEntry struct {
	oauth.ProviderConfig `yaml:",inline"`
	ClientSecret         string           `yaml:"client_secret"`
	ClientSecretFile     string           `yaml:"client_secret_file"`
	ClientSecretEnv      string           `yaml:"client_secret_env"`
	AuthStyle            oauth.AuthMethod `yaml:"auth_style"` // token_endpoint_auth_method's older name
	Timeout              string           `yaml:"timeout"`
	RefreshMargin        string           `yaml:"refresh_margin"` // this provider's refresh.margin
}

// decodeProviders reads the providers setting: the refresher's configuration
// and the providers' own refresh margins.
func decodeProviders(n *yaml.Node, where string, getenv func(string) string) (oauth.Config, map[domain.Provider]time.Duration, error) {
	var entries []providerEntry
	if err := decodeList(n, where, "provider settings", &entries); err != nil {
		return oauth.Config{}, nil, err
	}
	cfg, margins := oauth.Config{}, map[domain.Provider]time.Duration(nil)
	for i, e := range entries {
		at := fmt.Sprintf("%s[%d] (%s)", where, i, e.Name)
		p, secret, err := e.ProviderConfig, e.ClientSecret, error(nil)
		p.TokenEndpointAuthMethod = cmp.Or(p.TokenEndpointAuthMethod, e.AuthStyle)
		if p.Timeout, err = duration(e.Timeout); err != nil {
			return oauth.Config{}, nil, fmt.Errorf("%s.timeout: %w", at, err)
		}
		if e.RefreshMargin != "" {
			if margins == nil {
				margins = map[domain.Provider]time.Duration{}
			}
			if margins[p.Name], err = duration(e.RefreshMargin); err != nil {
				return oauth.Config{}, nil, fmt.Errorf("%s.refresh_margin: %w", at, err)
			}
		}
		switch {
		case e.ClientSecretFile != "" && (secret != "" || e.ClientSecretEnv != ""), secret != "" && e.ClientSecretEnv != "":
			return oauth.Config{}, nil, fmt.Errorf("%s: give the client secret one way: client_secret, client_secret_file or client_secret_env", at)
		case e.ClientSecretFile != "":
			if secret, err = readTrimmed(e.ClientSecretFile); err != nil {
				return oauth.Config{}, nil, fmt.Errorf("%s.client_secret_file: %w", at, err)
			}
		case e.ClientSecretEnv != "":
			if secret = getenv(e.ClientSecretEnv); secret == "" {
				return oauth.Config{}, nil, fmt.Errorf("%s.client_secret_env: the variable %s is empty or unset", at, e.ClientSecretEnv)
			}
		}
		p.ClientSecret = domain.NewSecret(secret)
		if err := p.Validate(); err != nil {
			return oauth.Config{}, nil, fmt.Errorf("%s: %w", at, err)
		}
		cfg.Providers = append(cfg.Providers, p)
	}
	return cfg, margins, nil
}
