package readcache_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/readcache"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/memrepo"
)

// TestServableIsJudgedAsTheWholeRow walks the refresh rule's decision
// space (rows with and without a refresh token, expiries on both sides of
// the margin and of its lifetime cap, leases live and lapsed,
// re-authorization, back-offs, an unknown outcome, instants the compact
// form cannot hold) and checks that the servable part the cache answers,
// read from the database (a miss) and from memory (a hit), gets the same
// step and reported expiry as the whole row, for every margin,
// refreshability, revoking provider and clock: a kept row is served
// exactly when the whole row would be. It also checks which rows are kept
// (none under a lease or with an instant past 2262) and that the access
// token's ciphertext comes back byte for byte, raw-kept or not.
func TestServableIsJudgedAsTheWholeRow(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	const margin = 15 * time.Minute
	at := func(d time.Duration) domain.Expiry { return domain.At(now.Add(d)) }
	far := time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC) // past what int64 nanoseconds hold

	accessExpiries := []domain.Expiry{domain.Never(), at(-time.Second), at(0), at(time.Nanosecond),
		at(margin - time.Nanosecond), at(margin), at(margin + time.Nanosecond), at(2 * time.Hour), domain.At(far)}
	type refresh struct {
		token  []byte
		expiry domain.Expiry
	}
	refreshes := []refresh{{nil, domain.Never()}, {[]byte("r"), domain.Never()}, {[]byte("r"), at(-time.Second)},
		{[]byte("r"), at(0)}, {[]byte("r"), at(time.Hour)}}
	obtained := []time.Time{{}, now.Add(-10 * time.Minute), now.Add(-2 * time.Hour)}
	states := map[string]domain.RefreshState{
		"none":            {},
		"reauth":          {ReauthRequired: true, LastError: domain.CodeGrantRevoked},
		"back-off":        {LastError: domain.CodeProviderUnavailable, NextAttemptAt: now.Add(time.Minute), AmbiguousRetries: 2},
		"back-off ended":  {LastError: domain.CodeProviderUnavailable, NextAttemptAt: now.Add(-time.Minute)},
		"back-off at now": {LastError: domain.CodeProviderUnavailable, NextAttemptAt: now},
		"outcome unknown": {LastError: domain.CodeProviderOutcomeUnknown, NextAttemptAt: now.Add(time.Minute)},
		"unknown, ended":  {LastError: domain.CodeProviderOutcomeUnknown, NextAttemptAt: now.Add(-time.Minute)},
		"lease live":      {LeaseOwner: "other/1", LeaseUntil: now.Add(30 * time.Second)},
		"lease at now":    {LeaseOwner: "other/1", LeaseUntil: now},
		"lease lapsed":    {LeaseOwner: "other/1", LeaseUntil: now.Add(-time.Second)},
		"lease time only": {LeaseUntil: now.Add(30 * time.Second)}, // no owner: no lease
		"back-off far":    {LastError: domain.CodeProviderUnavailable, NextAttemptAt: far},
	}
	fernetLike := []byte(base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0x80, 0, 0, 0, 0, 0x69, 0xfe, 0x11}, 19))) // padded, as a Fernet token may be
	accesses := [][]byte{
		fernetLike,            // canonical URL-safe base64: kept raw
		[]byte("not base64!"), // kept as is
		[]byte("gAAA\nAAAA"),  // decodes (newlines are skipped), but not canonically: kept as is
		[]byte("gAAAAA=="),    // padded: canonical, raw
		[]byte("gAAAAB=="),    // non-zero padding bits: kept as is
		[]byte("gAAAAB=A"),    // bad padding: kept as is
	}
	judged := []time.Time{now.Add(-time.Nanosecond), now, now.Add(time.Nanosecond), now.Add(time.Minute),
		now.Add(14*time.Minute + 59*time.Second), now.Add(margin), now.Add(time.Hour), now.Add(3 * time.Hour)}

	mem := memrepo.New()
	c := readcache.New(mem, &barrier{}, readcache.Options{})
	n, kept := 0, 0
	for _, ae := range accessExpiries {
		for _, rf := range refreshes {
			for _, ob := range obtained {
				for name, st := range states {
					n++
					user := domain.UserID(fmt.Sprintf("user-%d", n))
					row := domain.SealedAuthTokens{User: user, Provider: "github", KeyID: "k1",
						AccessToken: accesses[n%len(accesses)], RefreshToken: rf.token,
						AccessExpiry: ae, RefreshExpiry: rf.expiry, AccessObtainedAt: ob, Refresh: st}
					stored, err := mem.PutAuthTokens(t.Context(), row)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := mem.UpdateAuthTokens(t.Context(), user, "github",
						func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
							cur.Refresh = st
							return &cur, nil, nil
						}); err != nil {
						t.Fatal(err)
					}
					whole, err := mem.GetAuthTokens(t.Context(), user, "github")
					if err != nil {
						t.Fatal(err)
					}
					if whole.Refresh != st || whole.Version < stored.Version {
						t.Fatalf("the repository did not store the refresh state: %+v", whole.Refresh)
					}
					before := c.Stats().Hits
					miss, err := c.ServableAuthTokens(t.Context(), user, "github")
					if err != nil {
						t.Fatal(err)
					}
					hit, err := c.ServableAuthTokens(t.Context(), user, "github")
					if err != nil {
						t.Fatal(err)
					}
					wantKept := st.LeaseOwner == "" && !st.NextAttemptAt.Equal(far) && !ae.Equal(domain.At(far))
					if got := c.Stats().Hits > before; got != wantKept {
						t.Fatalf("%s: kept %v, want %v (access expiry %s)", name, got, wantKept, ae)
					}
					if wantKept {
						kept++
					}
					for which, s := range map[string]domain.ServableAuthTokens{"miss": miss, "hit": hit} {
						where := fmt.Sprintf("row %d (%s, access expiry %s, refresh %v, obtained %s), %s", n, name, ae, rf, ob, which)
						if s.User != whole.User || s.Provider != whole.Provider || s.KeyID != whole.KeyID || s.Version != whole.Version ||
							!bytes.Equal(s.AccessToken, whole.AccessToken) {
							t.Fatalf("%s: %+v is not the row's (%+v)", where, s, whole)
						}
						sameJudgement(t, where, whole, s, judged)
					}
				}
			}
		}
	}
	if kept == 0 || kept == n {
		t.Fatalf("%d of %d rows kept: the walk must cover both", kept, n)
	}
}

// sameJudgement fails unless s gets the step and reported expiry whole
// gets, at each of times, for every configuration the service may judge
// with (margins capped by lifetime as the service caps them).
func sameJudgement(t *testing.T, where string, whole domain.SealedAuthTokens, s domain.ServableAuthTokens, times []time.Time) {
	t.Helper()
	for _, configured := range []time.Duration{0, 15 * time.Minute} {
		wm := domain.EffectiveMargin(configured, 0.5, whole.AccessObtainedAt, whole.AccessExpiry)
		sm := domain.EffectiveMargin(configured, 0.5, s.AccessObtainedAt, s.AccessExpiry)
		for _, refreshable := range []bool{false, true} {
			for _, revokes := range []bool{false, true} {
				wv, sv := whole.RefreshView(wm, refreshable), s.RefreshView(sm, refreshable)
				wv.RevokesPreviousAccessToken, sv.RevokesPreviousAccessToken = revokes, revokes
				for _, db := range times {
					for _, ahead := range []time.Duration{0, time.Second} { // the service's clock ahead of the database's
						w, g := wv.TwoClocks(db, db.Add(ahead)), sv.TwoClocks(db, db.Add(ahead))
						if ws, gs := domain.NextRefreshStep(w, db), domain.NextRefreshStep(g, db); ws != gs {
							t.Fatalf("%s: margin %s, refreshable %v, revokes %v, at %s (+%s): step %s, the whole row's %s",
								where, configured, refreshable, revokes, db, ahead, gs, ws)
						}
					}
				}
				if we, ge := wv.ReportedExpiry(), sv.ReportedExpiry(); !we.Equal(ge) {
					t.Fatalf("%s: reported expiry %s, the whole row's %s", where, ge, we)
				}
			}
		}
	}
}

// TestOfflineTokenKeptExactly: an offline token answered from memory is
// the stored one, field for field, its ciphertext byte for byte (kept raw
// or as is), and one with an instant the compact form cannot hold is not
// kept.
func TestOfflineTokenKeptExactly(t *testing.T) {
	t.Parallel()
	c, cnt, mem, _ := setup(t)
	for i, token := range [][]byte{[]byte(base64.URLEncoding.EncodeToString([]byte("sealed offline token"))), []byte("plain")} {
		user := domain.UserID(fmt.Sprintf("u%d", i))
		var stored domain.SealedOfflineToken
		for range 2 { // stored again: updated later than created
			var err error
			if stored, err = mem.PutOfflineToken(t.Context(), domain.SealedOfflineToken{User: user, KeyID: "k1", Token: token}); err != nil {
				t.Fatal(err)
			}
		}
		if stored.CreatedAt.Equal(stored.UpdatedAt) {
			t.Fatal("the repository stamped the same creation and update time")
		}
		before := cnt.reads.Load()
		for range 2 { // a miss, then a hit
			got, err := c.GetOfflineToken(t.Context(), user)
			if err != nil {
				t.Fatal(err)
			}
			if got.User != user || got.KeyID != stored.KeyID || !bytes.Equal(got.Token, token) || got.Version != stored.Version ||
				!got.CreatedAt.Equal(stored.CreatedAt) || !got.UpdatedAt.Equal(stored.UpdatedAt) {
				t.Fatalf("answered %+v, stored %+v", got, stored)
			}
		}
		if n := cnt.reads.Load() - before; n != 1 {
			t.Fatalf("%d reads of the offline token reached the database, want 1 (then kept)", n)
		}
	}
	// memrepo stamps the database's clock; a token whose stamps lie past
	// 2262 is answered but not kept.
	far := domain.SealedOfflineToken{User: "far", KeyID: "k1", Token: []byte("t"), Version: 1,
		CreatedAt: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)}
	src := &fixedOffline{counting: cnt, row: far}
	fc := readcache.New(src, &barrier{}, readcache.Options{})
	for range 2 {
		if got, err := fc.GetOfflineToken(t.Context(), "far"); err != nil || !got.CreatedAt.Equal(far.CreatedAt) {
			t.Fatalf("got %+v, %v", got, err)
		}
	}
	if s := fc.Stats(); s.Hits != 0 || s.Misses != 2 {
		t.Fatalf("a token past 2262 was kept: %+v", s)
	}
}

// fixedOffline answers one offline token, whatever the user.
type fixedOffline struct {
	*counting
	row domain.SealedOfflineToken
}

func (f *fixedOffline) GetOfflineToken(context.Context, domain.UserID) (domain.SealedOfflineToken, error) {
	return f.row, nil
}
