package webhook

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tokenstore/tokenstore/adapters/secretfile"
	"github.com/tokenstore/tokenstore/domain"
)

// DefaultTimeout bounds one delivery, connection to last byte of the
// answer's head, when an endpoint sets no timeout: the Standard Webhooks
// specification recommends "somewhere between 15 and 30s".
const DefaultTimeout = 15 * time.Second

// SecretPrefix starts every signing secret (Standard Webhooks, "Signature
// scheme": "base64 encoded, prefixed with whsec_").
const SecretPrefix = "whsec_"

// Bounds of a signing secret's decoded length, in bytes: the specification
// asks for "at least 24 bytes (192 bits, 512 maximum)"; 512 is read as bits,
// the larger reading refused nothing a generator makes.
const (
	minSecretBytes = 24
	maxSecretBytes = 64
)

// EndpointSettings is one entry of the webhooks setting as an operator
// writes it (YAML in a config file, JSON in TOKENSTORE_WEBHOOKS).
type EndpointSettings struct {
	// Name identifies the endpoint in logs, errors and the
	// deliveries' records: 1 to 64 characters a-z, 0-9, '-' and '_',
	// unique, not "revocation" (domain.RevocationTarget). Renaming an
	// endpoint starts a new one at the feed's end.
	Name string `json:"name"`
	// URL receives the POSTs: https, or http to a loopback host (127.0.0.0/8,
	// ::1, localhost); no user name or password, no fragment.
	URL string `json:"url"`
	// Events are the event kinds sent to it, at least one.
	Events []string `json:"events"`
	// SecretFile holds the signing secrets, whsec_<base64>, separated by
	// spaces or line breaks: every one signs each delivery (secret
	// rotation); the file must be private (adapters/secretfile).
	SecretFile string `json:"secret_file"`
	// Timeout bounds one delivery, such as 15s (default DefaultTimeout).
	Timeout string `json:"timeout"`
	// MaxAge is how long after the event (or its redelivery by an
	// operator) it is retried before it is marked failed, such as 72h
	// (default domain.DefaultRetryMaxAge).
	MaxAge string `json:"max_age"`
}

// SettingsHelp describes an EndpointSettings entry for a command's help
// text.
func SettingsHelp() string {
	return "{name, url (https, or http to a loopback host), events (event kinds), secret_file (whsec_ secrets, several during a rotation), " +
		"timeout (default " + DefaultTimeout.String() + "), max_age (how long after the event it is retried, default " + domain.DefaultRetryMaxAge.String() + ")}"
}

// Endpoint is one validated webhook receiver. Build it with NewEndpoints;
// its signing keys are not exported, and printing it (fmt, slog) shows its
// name and URL only.
type Endpoint struct {
	Name    string
	URL     string
	Events  []string
	Timeout time.Duration
	MaxAge  time.Duration
	// RetryFirst is the ceiling of the delay after the first failed
	// attempt, doubling at each failure up to domain.DefaultRetryCap
	// (domain.RetrySchedule); NewEndpoints sets domain.DefaultRetryFirst.
	// Not a setting: tests shorten it.
	RetryFirst time.Duration
	signers    []*standardwebhooks.Webhook
}

// Wants reports whether events of kind are sent to e.
func (e Endpoint) Wants(kind string) bool { return slices.Contains(e.Events, kind) }

// String is the endpoint's name and URL, never its keys.
func (e Endpoint) String() string { return e.Name + " (" + e.URL + ")" }

// GoString is String, for %#v.
func (e Endpoint) GoString() string { return e.String() }

// LogValue is the endpoint's name and URL, never its keys.
func (e Endpoint) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", e.Name), slog.String("url", e.URL))
}

// NewEndpoints validates the webhooks setting, reading each entry's secret
// file. kinds lists the event kinds an entry may ask for. Errors start with
// where (the setting: webhooks or TOKENSTORE_WEBHOOKS), the entry's index
// and name, then the member, as in TOKENSTORE_WEBHOOKS[0] (crm).url; they
// never quote a secret.
func NewEndpoints(entries []EndpointSettings, where string, kinds []string) ([]Endpoint, error) {
	var out []Endpoint
	seen := map[string]int{}
	for i, s := range entries {
		label := s.Name
		if !ValidName(label) {
			label = strconv.Quote(label)
		}
		at := fmt.Sprintf("%s[%d] (%s)", where, i, label)
		e, err := s.endpoint(at, kinds)
		if err != nil {
			return nil, err
		}
		if j, dup := seen[e.Name]; dup {
			return nil, fmt.Errorf("%s.name: %s[%d] has the same name: each endpoint name may appear once", at, where, j)
		}
		seen[e.Name] = i
		out = append(out, e)
	}
	return out, nil
}

func (s EndpointSettings) endpoint(at string, kinds []string) (Endpoint, error) {
	e := Endpoint{Name: s.Name, URL: s.URL, RetryFirst: domain.DefaultRetryFirst}
	if !ValidName(s.Name) {
		return Endpoint{}, fmt.Errorf("%s.name: must be 1 to 64 characters a-z, 0-9, '-' or '_'", at)
	}
	if s.Name == domain.RevocationTarget {
		return Endpoint{}, fmt.Errorf("%s.name: %q names upstream revocation's deliveries (tokenstore events list): choose another name", at, s.Name)
	}
	if err := checkURL(s.URL); err != nil {
		return Endpoint{}, fmt.Errorf("%s.url: %w", at, err)
	}
	if len(s.Events) == 0 {
		return Endpoint{}, fmt.Errorf("%s.events: must list at least one of %s", at, strings.Join(kinds, ", "))
	}
	for j, k := range s.Events {
		switch {
		case !slices.Contains(kinds, k):
			return Endpoint{}, fmt.Errorf("%s.events[%d]: %q is not an event kind: use %s", at, j, k, strings.Join(kinds, ", "))
		case slices.Contains(s.Events[:j], k):
			return Endpoint{}, fmt.Errorf("%s.events[%d]: %s is listed twice: keep one", at, j, k)
		}
	}
	e.Events = slices.Clone(s.Events)
	var err error
	if e.Timeout, err = positiveDuration(s.Timeout, DefaultTimeout); err != nil {
		return Endpoint{}, fmt.Errorf("%s.timeout: %w", at, err)
	}
	if e.MaxAge, err = positiveDuration(s.MaxAge, domain.DefaultRetryMaxAge); err != nil {
		return Endpoint{}, fmt.Errorf("%s.max_age: %w", at, err)
	}
	if s.SecretFile == "" {
		return Endpoint{}, fmt.Errorf("%s.secret_file: must name the file holding the signing secret (whsec_ followed by base64)", at)
	}
	text, err := secretfile.Read(s.SecretFile, at+".secret_file")
	if err != nil {
		return Endpoint{}, err
	}
	secrets := strings.Fields(text)
	if len(secrets) == 0 {
		return Endpoint{}, fmt.Errorf("%s.secret_file: %s holds no secret", at, s.SecretFile)
	}
	for j, secret := range secrets {
		if err := checkSecret(secret); err != nil {
			return Endpoint{}, fmt.Errorf("%s.secret_file: secret #%d in %s %w", at, j+1, s.SecretFile, err)
		}
		if slices.Contains(secrets[:j], secret) {
			return Endpoint{}, fmt.Errorf("%s.secret_file: secret #%d in %s repeats an earlier one", at, j+1, s.SecretFile)
		}
		w, err := standardwebhooks.NewWebhook(secret)
		if err != nil { // checkSecret decoded it already; never quote the library's error
			return Endpoint{}, fmt.Errorf("%s.secret_file: secret #%d in %s is not base64", at, j+1, s.SecretFile)
		}
		e.signers = append(e.signers, w)
	}
	return e, nil
}

// checkSecret refuses a signing secret that is not whsec_ followed by the
// standard base64 of 24 to 64 bytes. Its error completes "secret #N in
// FILE" and never quotes the secret.
func checkSecret(s string) error {
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return errors.New("does not start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(b64)
	defer clear(key)
	switch {
	case err != nil:
		return errors.New("is not " + SecretPrefix + " followed by standard base64 (A-Z, a-z, 0-9, +, /, = padding)")
	case len(key) < minSecretBytes || len(key) > maxSecretBytes:
		return fmt.Errorf("holds %d bytes: a signing secret is %d to %d random bytes (`openssl rand -base64 32`, prefixed with %s)",
			len(key), minSecretBytes, maxSecretBytes, SecretPrefix)
	}
	return nil
}

// ValidName reports whether s can name an endpoint: 1 to 64 characters
// a-z, 0-9, '-' or '_' (the deliveries' target names; domain.RevocationTarget
// is one too, which NewEndpoints refuses for an endpoint).
func ValidName(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-_") == ""
}

// checkURL refuses a receiver URL that is not https (plain http is allowed
// to a loopback host only: a local relay or a test), that carries a user
// name or password (they would be sent with every event, and logged with
// the URL), or a fragment (never sent, so it means nothing).
func checkURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("is not a valid URL")
	case u.Scheme != "https" && u.Scheme != "http" || u.Opaque != "":
		return fmt.Errorf("must be an absolute https URL, got scheme %q", u.Scheme)
	case u.Hostname() == "":
		return errors.New("must include a host")
	case u.User != nil:
		return errors.New("must not contain a user name or password: receivers verify the webhook-signature header")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("must not contain a fragment")
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return errors.New("must be https: plain http is allowed to a loopback host only (127.0.0.1, ::1, localhost)")
	}
	return nil
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// positiveDuration reads a duration such as 15s; empty is def.
func positiveDuration(v string, def time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(cmp.Or(v, def.String()))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 15s or 72h", v)
	}
	return d, nil
}
