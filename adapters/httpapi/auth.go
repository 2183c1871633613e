package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tokenstore/tokenstore/domain"
)

// Permission is one thing a caller may do.
type Permission string

// The permissions a caller can be granted.
const (
	PermTokensRead    Permission = "tokens:read"    // read access tokens, list providers
	PermTokensWrite   Permission = "tokens:write"   // store provider tokens
	PermTokensDelete  Permission = "tokens:delete"  // delete provider tokens
	PermOfflineRead   Permission = "offline:read"   // read offline tokens
	PermOfflineWrite  Permission = "offline:write"  // store offline tokens
	PermOfflineDelete Permission = "offline:delete" // delete offline tokens
	PermEventsRead    Permission = "events:read"    // read the event feed (within the caller's scope)
)

// AllPermissions lists every permission, for documentation and the
// development caller.
var AllPermissions = []Permission{
	PermTokensRead, PermTokensWrite, PermTokensDelete,
	PermOfflineRead, PermOfflineWrite, PermOfflineDelete,
	PermEventsRead,
}

// ParsePermission validates a permission name from configuration.
func ParsePermission(s string) (Permission, error) {
	p := Permission(s)
	if slices.Contains(AllPermissions, p) {
		return p, nil
	}
	names := make([]string, len(AllPermissions))
	for i, p := range AllPermissions {
		names[i] = string(p)
	}
	return "", fmt.Errorf("unknown permission %q: use one of %s", s, strings.Join(names, ", "))
}

// CredentialHashPrefix starts every credential hash in configuration.
const CredentialHashPrefix = "sha256:"

// Caller is a service allowed to use the API.
type Caller struct {
	// Name identifies the caller in logs.
	Name string
	// CredentialHash is SHA-256 of the caller's bearer credential. Only the
	// hash is configured: a leaked configuration file grants nothing.
	// Credentials are 256-bit random strings, so a fast hash is enough.
	CredentialHash [sha256.Size]byte
	Permissions    []Permission
	// Scope limits the users and providers the caller may touch.
	Scope Scope
	// ClientCertIdentity, when set, is the identity the client certificate
	// must carry: the caller presents both that certificate and its
	// credential.
	ClientCertIdentity CertIdentity
}

// Can reports whether the caller holds p.
func (c *Caller) Can(p Permission) bool { return slices.Contains(c.Permissions, p) }

// Scope limits the users and providers a caller may touch, whatever its
// permissions: a worker that reads one provider's tokens, a service that
// serves one tenant. The zero Scope limits nothing.
type Scope struct {
	// Providers the caller may touch on the routes that name a provider;
	// empty: every provider. Offline tokens belong to no provider: the
	// offline:* permissions and the user scope govern them.
	Providers []domain.Provider
	// UserPrefix starts the id of every user the caller may touch, as in
	// "tenant-a/"; "": every user. Ids are compared byte for byte, as they
	// are stored.
	UserPrefix string
}

// AllowsUser reports whether the scope admits the user id u.
func (s Scope) AllowsUser(u string) bool { return strings.HasPrefix(u, s.UserPrefix) }

// AllowsProvider reports whether the scope admits provider p.
func (s Scope) AllowsProvider(p string) bool {
	return len(s.Providers) == 0 || slices.Contains(s.Providers, domain.Provider(p))
}

// authorize decides whether caller may make a request that needs perm
// ("": none) and names, in its path, the values in target: the user and
// provider the route's Params declare, only those it has, as sent. It returns nil
// or the problem to answer: 403 forbidden without perm, then 403
// out_of_scope when a named user or provider lies outside the caller's
// scope, field naming it. It is the one place a request is authorized, and
// it runs before the handler: a refused request reads and writes nothing.
func authorize(caller *Caller, perm Permission, target map[ScopeTarget]string) error {
	if perm == "" {
		return nil
	}
	if caller == nil || !caller.Can(perm) {
		return newProblem(http.StatusForbidden, CodeForbidden,
			fmt.Sprintf("caller %q lacks the %s permission", callerName(caller), perm))
	}
	if u, ok := target[ScopeUser]; ok && !caller.Scope.AllowsUser(u) {
		return newProblem(http.StatusForbidden, CodeOutOfScope,
			fmt.Sprintf("caller %q may touch only users whose id starts with %q", caller.Name, caller.Scope.UserPrefix)).withField("user")
	}
	if p, ok := target[ScopeProvider]; ok && !caller.Scope.AllowsProvider(p) {
		names := make([]string, len(caller.Scope.Providers))
		for i, p := range caller.Scope.Providers {
			names[i] = string(p)
		}
		return newProblem(http.StatusForbidden, CodeOutOfScope,
			fmt.Sprintf("caller %q may touch only the providers %s", caller.Name, strings.Join(names, ", "))).withField("provider")
	}
	return nil
}

// ParseCredentialHash parses "sha256:<64 hex digits>".
func ParseCredentialHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(s, CredentialHashPrefix)
	if !ok {
		return h, fmt.Errorf("credential hash must start with %q (make one with `tokenstore callers generate`)", CredentialHashPrefix)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != sha256.Size {
		return h, errors.New("credential hash must be sha256: followed by 64 hex digits")
	}
	copy(h[:], b)
	return h, nil
}

// NewCredential returns a fresh random caller credential and the hash to put
// in the configuration.
func NewCredential() (credential, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("generate credential: %w", err)
	}
	credential = "tsc_" + base64.RawURLEncoding.EncodeToString(b[:])
	return credential, HashCredential(credential), nil
}

// HashCredential returns the configuration form of credential's hash.
func HashCredential(credential string) string {
	sum := sha256.Sum256([]byte(credential))
	return CredentialHashPrefix + hex.EncodeToString(sum[:])
}

// Authenticator finds the caller a bearer credential belongs to.
type Authenticator struct {
	callers []Caller
}

// NewAuthenticator checks the callers (names unique and non-empty, hashes
// unique) and returns an Authenticator over them.
func NewAuthenticator(callers []Caller) (*Authenticator, error) {
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	for i, c := range callers {
		if c.Name == "" {
			return nil, fmt.Errorf("callers[%d]: name must not be empty", i)
		}
		if names[c.Name] {
			return nil, fmt.Errorf("callers[%d]: name %q is used twice", i, c.Name)
		}
		if other, dup := hashes[c.CredentialHash]; dup {
			return nil, fmt.Errorf("callers[%d] (%s): same credential as %s; give each caller its own", i, c.Name, other)
		}
		names[c.Name], hashes[c.CredentialHash] = true, c.Name
	}
	return &Authenticator{callers: slices.Clone(callers)}, nil
}

// Authenticate returns the caller whose credential hashes to the presented
// one, or nil. Every configured hash is compared, in constant time, so the
// time taken says nothing about which caller (or how much of a hash) matched.
func (a *Authenticator) Authenticate(credential string) *Caller {
	sum := sha256.Sum256([]byte(credential))
	var found *Caller
	for i := range a.callers {
		if subtle.ConstantTimeCompare(sum[:], a.callers[i].CredentialHash[:]) == 1 {
			found = &a.callers[i]
		}
	}
	return found
}
