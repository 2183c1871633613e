package httpapi

import (
	"errors"
	"fmt"
	"strings"
	"time"
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
	// ClientCertIdentity is a URI SAN or DNS SAN (ParseCertIdentity); ""
	// requires no client certificate.
	ClientCertIdentity string `yaml:"client_cert_identity"`
}

// Caller validates the entry into a Caller. An error starts with the field
// it is about: name, credential_hash, permissions or client_cert_identity.
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
	if c.ClientCertIdentity != "" {
		if caller.ClientCertIdentity, err = ParseCertIdentity(c.ClientCertIdentity); err != nil {
			return Caller{}, fmt.Errorf("client_cert_identity (caller %q): %w", c.Name, err)
		}
	}
	return caller, nil
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
