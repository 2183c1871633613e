package httpapi

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// Validate checks what the server needs before it can listen. refreshWait
// is the longest a read may wait for a refresh (app.RefreshConfig's
// WaitTimeout): the write timeout must leave room for it, or the answer is
// cut off. Zero timeouts mean no limit, as in net/http.
func (c Config) Validate(refreshWait time.Duration) error {
	switch {
	case c.Addr == "":
		return errors.New("TOKENSTORE_HTTP_ADDR is empty: give host:port")
	case refreshWait > 0 && c.WriteTimeout > 0 && refreshWait >= c.WriteTimeout:
		return fmt.Errorf("TOKENSTORE_REFRESH_WAIT_TIMEOUT (refresh.wait_timeout) is %s but TOKENSTORE_HTTP_WRITE_TIMEOUT is %s: "+
			"a read waiting for a refresh would be cut off without an answer; keep the wait shorter", refreshWait, c.WriteTimeout)
	}
	return c.validateTransport()
}

// CallerConfig is one entry of the callers setting as written in the
// configuration; its yaml tags are the setting names.
type CallerConfig struct {
	Name           string   `yaml:"name"`
	CredentialHash string   `yaml:"credential_hash"`
	Permissions    []string `yaml:"permissions"`
	// Providers and UserPrefix are the caller's Scope; left out, every
	// provider and every user.
	Providers  []string `yaml:"providers"`
	UserPrefix string   `yaml:"user_prefix"`
	// ClientCertIdentity is a URI SAN or DNS SAN (ParseCertIdentity); ""
	// requires no client certificate.
	ClientCertIdentity string `yaml:"client_cert_identity"`
}

// Caller validates the entry into a Caller. An error starts with the field
// it is about: name, credential_hash, permissions, providers, user_prefix
// or client_cert_identity. Whether the providers are declared is
// ValidateScopes' part.
func (c CallerConfig) Caller() (Caller, error) {
	if c.Name == "" {
		return Caller{}, errors.New("name: must not be empty")
	}
	h, err := ParseCredentialHash(c.CredentialHash)
	if err != nil {
		return Caller{}, fmt.Errorf("credential_hash (caller %q): %w", c.Name, err)
	}
	caller := Caller{Name: c.Name, CredentialHash: h}
	if len(c.Permissions) == 0 {
		return Caller{}, fmt.Errorf("permissions (caller %q): grant at least one of %s", c.Name, strings.Join(PermissionNames(), ", "))
	}
	for _, p := range c.Permissions {
		perm, err := ParsePermission(p)
		if err != nil {
			return Caller{}, fmt.Errorf("permissions (caller %q): %w", c.Name, err)
		}
		caller.Permissions = append(caller.Permissions, perm)
	}
	if caller.Scope, err = c.scope(); err != nil {
		return Caller{}, err
	}
	if c.ClientCertIdentity != "" {
		if caller.ClientCertIdentity, err = ParseCertIdentity(c.ClientCertIdentity); err != nil {
			return Caller{}, fmt.Errorf("client_cert_identity (caller %q): %w", c.Name, err)
		}
	}
	return caller, nil
}

// scope validates the entry's scope. An empty list of providers is refused
// rather than read as "every provider" or "none": leaving the member out
// says the first, and a caller with no provider needs no tokens:*
// permission.
func (c CallerConfig) scope() (Scope, error) {
	var s Scope
	if c.Providers != nil && len(c.Providers) == 0 {
		return s, fmt.Errorf("providers (caller %q): list at least one provider, or leave providers out to allow every provider", c.Name)
	}
	for _, name := range c.Providers {
		p, err := domain.ParseProvider(name)
		if err != nil {
			return s, fmt.Errorf("providers (caller %q): %s", c.Name, reason(err))
		}
		if slices.Contains(s.Providers, p) {
			return s, fmt.Errorf("providers (caller %q): %q is listed twice: keep one", c.Name, p)
		}
		s.Providers = append(s.Providers, p)
	}
	if c.UserPrefix != "" {
		// A prefix follows the rules of a user id: one that breaks them
		// admits no user, or only ids no request can carry.
		if _, err := domain.ParseUserID(c.UserPrefix); err != nil {
			return s, fmt.Errorf("user_prefix (caller %q): %s; leave it out to allow every user", c.Name, reason(err))
		}
		s.UserPrefix = c.UserPrefix
	}
	return s, nil
}

// reason is a validation error's reason without its field's name.
func reason(err error) string {
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return err.Error()
}

// ValidateScopes refuses a caller whose scope names a provider that is not
// declared (the providers setting): a misspelt name would otherwise shut
// the caller out in silence. The error names the caller.
func ValidateScopes(callers []Caller, declared []domain.Provider) error {
	for _, c := range callers {
		for _, p := range c.Scope.Providers {
			if !slices.Contains(declared, p) {
				names := make([]string, len(declared))
				for i, d := range declared {
					names[i] = string(d)
				}
				return fmt.Errorf("callers (TOKENSTORE_CALLERS): caller %q may touch provider %q, which is not declared (declared: %s); "+
					"declare it in providers (TOKENSTORE_PROVIDERS) or fix the name", c.Name, p, cmp.Or(strings.Join(names, ", "), "none"))
			}
		}
	}
	return nil
}

// NewCallers validates the callers setting. Errors start with where (the
// setting: callers or TOKENSTORE_CALLERS), the entry's index and the field.
func NewCallers(entries []CallerConfig, where string) ([]Caller, error) {
	callers := make([]Caller, len(entries))
	for i, e := range entries {
		var err error
		if callers[i], err = e.Caller(); err != nil {
			return nil, fmt.Errorf("%s[%d].%w", where, i, err)
		}
	}
	return callers, nil
}

// PermissionNames lists every permission's name, in AllPermissions' order.
func PermissionNames() []string {
	names := make([]string, len(AllPermissions))
	for i, p := range AllPermissions {
		names[i] = string(p)
	}
	return names
}
