package domain_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tokenstore/tokenstore/domain"
)

// UpdateEvents is the specification of which unit-of-work changes are
// events.
func TestUpdateEvents(t *testing.T) {
	row := domain.SealedAuthTokens{AccessToken: []byte("a1")}
	with := func(f func(*domain.SealedAuthTokens)) domain.SealedAuthTokens {
		r := row
		f(&r)
		return r
	}
	reauth := func(code string) func(*domain.SealedAuthTokens) {
		return func(r *domain.SealedAuthTokens) {
			r.Refresh = domain.RefreshState{ReauthRequired: true, LastError: code}
		}
	}
	for _, tc := range []struct {
		name          string
		before, after domain.SealedAuthTokens
		want          []string
	}{
		{"nothing changed", row, row, nil},
		{"lease taken", row, with(func(r *domain.SealedAuthTokens) { r.Refresh.LeaseOwner = "w" }), nil},
		{"back-off", row, with(func(r *domain.SealedAuthTokens) { r.Refresh.LastError = domain.CodeProviderUnavailable }), nil},
		{"refreshed", row, with(func(r *domain.SealedAuthTokens) { r.AccessToken = []byte("a2") }), []string{"tokens.refreshed "}},
		{"grant revoked", row, with(reauth(domain.CodeGrantRevoked)), []string{"tokens.reauth_required invalid_grant"}},
		{"interrupted", row, with(reauth(domain.CodeRefreshInterrupted)), []string{"tokens.reauth_required refresh_interrupted"}},
		{"already needing reauth", with(reauth(domain.CodeGrantRevoked)), with(reauth(domain.CodeRefreshInterrupted)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range domain.UpdateEvents(tc.before, tc.after) {
				got = append(got, fmt.Sprintf("%s %s", e.Kind, e.Reason))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if domain.StoredEvent(true) != domain.EventTokensRecovered || domain.StoredEvent(false) != domain.EventTokensStored {
		t.Error("StoredEvent")
	}
}

func TestEventPolicy(t *testing.T) {
	for _, k := range domain.EventKinds() {
		if got, want := (domain.EventPolicy{}).Allows(k), k != domain.EventTokensRefreshed; got != want {
			t.Errorf("zero policy allows %s = %v", k, got)
		}
		if !(domain.EventPolicy{Refreshed: true}).Allows(k) || (domain.EventPolicy{Off: true, Refreshed: true}).Allows(k) {
			t.Errorf("policy for %s", k)
		}
	}
}

func TestParseEventCursor(t *testing.T) {
	for _, s := range []string{"ev1.0.0", "ev1.1.1", "ev1.0.5", "ev1.18446744073709551615.9223372036854775807"} {
		c, err := domain.ParseEventCursor(s)
		if err != nil || c.String() != s {
			t.Errorf("ParseEventCursor(%q) = %v, %v", s, c, err)
		}
	}
	if c, err := domain.ParseEventCursor("ev1.0.0"); err != nil || c != (domain.EventCursor{}) {
		t.Errorf(`ParseEventCursor("ev1.0.0") = %v, %v; want the start`, c, err)
	}
	for _, s := range []string{"", "x", "ev1.00.0", "ev1.0.00", "ev1.5.0", "ev1.", "ev1.1", "ev1.1.0", "ev1.01.1", "ev1.1.01", "ev1.+1.1", "ev1.1.-1", "ev1.1.1.", "ev1.1.1 ",
		"EV1.1.1", "ev2.1.1", "ev1.1.1.1", "ev1.18446744073709551616.1", "ev1.1.9223372036854775808", "ev1.١.1"} {
		if c, err := domain.ParseEventCursor(s); err == nil {
			t.Errorf("ParseEventCursor(%q) = %v, want an error", s, c)
		}
	}
}
