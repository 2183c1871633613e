package app

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// Defaults that zero values in RefreshConfig and WorkerConfig stand for,
// exported so the configuration's help text states them from one place.
const (
	DefaultRefreshLease              = 45 * time.Second
	DefaultRefreshWaitTimeout        = 20 * time.Second
	DefaultRefreshPollInterval       = 100 * time.Millisecond
	DefaultRefreshRetryAfter         = 10 * time.Second
	DefaultRefreshRejectedRetryAfter = 5 * time.Minute
	DefaultWorkerInterval            = time.Minute
	DefaultWorkerBatch               = 50
	DefaultWorkerConcurrency         = 4
	// MaxWorkerBatch bounds WorkerConfig.Batch: one scan claims its batch
	// in one query.
	MaxWorkerBatch = 10000
)

// leaseSlack is how much longer than the slowest provider call a refresh
// lease must be: the store after the call needs time too.
const leaseSlack = 5 * time.Second

// Validate checks the envelope format, the lifetime fraction, and the refresh lease against the longest each provider call
// may take (providerTimeouts, by provider): a lease that ends first would
// make a slow but successful refresh look interrupted, and its user would
// have to reconnect.
func (c Config) Validate(providerTimeouts map[domain.Provider]time.Duration) error {
	if !slices.Contains(EnvelopeFormats(), string(c.Envelope.OrDefault())) {
		return fmt.Errorf("TOKENSTORE_ENVELOPE (envelope) is %q: want one of %s", string(c.Envelope), strings.Join(EnvelopeFormats(), ", "))
	}
	if f := c.LifetimeFraction; f != 0 && !(f > 0 && f < 1) {
		return fmt.Errorf("TOKENSTORE_REFRESH_LIFETIME_FRACTION (refresh.lifetime_fraction) is %v: "+
			"it must be a fraction between 0 and 1, exclusive, such as %v", f, domain.DefaultLifetimeFraction)
	}
	lease := c.Refresh.Lease
	if lease <= 0 {
		lease = DefaultRefreshLease
	}
	for _, p := range slices.Sorted(maps.Keys(providerTimeouts)) {
		if timeout := providerTimeouts[p]; timeout+leaseSlack > lease {
			return fmt.Errorf("TOKENSTORE_REFRESH_LEASE (refresh.lease) is %s but provider %s may take %s: "+
				"the lease must exceed every provider timeout by at least %s, or a slow refresh would be taken for an interrupted one",
				lease, p, timeout, leaseSlack)
		}
	}
	return nil
}

// validateDeclared validates t and checks that its provider is declared.
// The path's fields come first, as a request names them: an invalid user,
// then an invalid or undeclared provider, then the tokens.
func validateDeclared(t domain.AuthTokens, declared []domain.Provider) error {
	err := t.Validate()
	var ve *domain.ValidationError
	if errors.As(err, &ve) && (ve.Field == "user" || ve.Field == "provider") {
		return err
	}
	return cmp.Or(checkDeclared(t.Provider, declared), err)
}

// checkDeclared refuses a provider name the configuration does not declare,
// saying which are and how to declare one.
func checkDeclared(p domain.Provider, declared []domain.Provider) error {
	if slices.Contains(declared, p) {
		return nil
	}
	how := "declare it in the providers setting (an entry with refresh: false stores its tokens without refreshing them)"
	if len(declared) == 0 {
		return &domain.ValidationError{Field: "provider", Reason: fmt.Sprintf("%q is not declared, and no provider is: %s", p, how)}
	}
	names := make([]string, len(declared))
	for i, d := range declared {
		names[i] = string(d)
	}
	return &domain.ValidationError{Field: "provider", Reason: fmt.Sprintf("%q is not a declared provider (declared: %s); check the name, or %s",
		p, strings.Join(names, ", "), how)}
}
