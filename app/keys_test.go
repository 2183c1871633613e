package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
)

// reencryptFixture stores rows under key "old" and returns a store, the old
// keyring, and the new one ("new" primary, "old" older).
func reencryptFixture(t *testing.T, users int) (*memStore, *fakeKeyring, *fakeKeyring) {
	t.Helper()
	store, oldRing := newMemStore(), newFakeKeyring("old")
	for i := range users {
		u := domain.UserID(fmt.Sprintf("user-%02d", i))
		refresh := ""
		if i%2 == 0 {
			refresh = "refresh-" + string(u)
		}
		if err := store.putAuth(oldRing, domain.AuthTokens{User: u, Provider: "gitlab",
			AccessToken: domain.NewSecret("access-" + string(u)), RefreshToken: domain.NewSecret(refresh),
			AccessExpiry: domain.At(time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))}); err != nil {
			t.Fatal(err)
		}
		if err := store.putOffline(oldRing, domain.OfflineToken{User: u, Token: domain.NewSecret("offline-" + string(u))}); err != nil {
			t.Fatal(err)
		}
	}
	return store, oldRing, newFakeKeyring("new", "old")
}

// values is what reencryptFixture stores for n users: n access tokens,
// every other one with a refresh token, n offline tokens.
func values(n int) int64 { return int64(n + (n+1)/2 + n) }

func TestReencryptionRunMovesEveryValueToThePrimary(t *testing.T) {
	t.Parallel()
	const users = 25
	store, _, ring := reencryptFixture(t, users)
	before := store.auth[3]
	var calls int
	var last [2]int64
	report, err := NewReencryption(nil, ring, store, nil).Run(context.Background(), ReencryptOptions{BatchSize: 4, Progress: func(done, total int64) {
		calls++
		last = [2]int64{done, total}
	}})
	if err != nil || len(report.Failed) != 0 {
		t.Fatalf("Run: %v, failed %v", err, report.Failed)
	}
	if report.Primary != "new" || report.Reencrypted != values(users) {
		t.Errorf("report: primary %s, re-encrypted %d; want new, %d", report.Primary, report.Reencrypted, values(users))
	}
	if calls < 2 || last != [2]int64{values(users), values(users)} {
		t.Errorf("progress: %d calls, last %v; want several, ending at %d of %d", calls, last, values(users), values(users))
	}
	want := []KeyStatus{{ID: "new", Primary: true, InKeyring: true, Values: values(users)}, {ID: "old", InKeyring: true}}
	if fmt.Sprint(report.After) != fmt.Sprint(want) {
		t.Errorf("After = %v, want %v", report.After, want)
	}

	// Every value opens under the new ring, in its place; the other
	// columns are as they were.
	for _, row := range store.auth {
		tokens, _, err := unsealAuthTokens(newFakeKeyring("new"), EnvelopeBinary, row)
		if err != nil || tokens.AccessToken.Reveal() != "access-"+string(row.User) {
			t.Fatalf("auth row of %s after Run: %v", row.User, err)
		}
	}
	for u, row := range store.offline {
		got, err := Unseal(newFakeKeyring("new"), OfflineTokenPlace(u), domain.Ciphertext{KeyID: row.KeyID, Data: row.Token})
		if err != nil || got.Reveal() != "offline-"+string(u) {
			t.Fatalf("offline token of %s after Run: %v", u, err)
		}
	}
	after := store.auth[3]
	if after.ID != before.ID || after.Version != before.Version+1 || !after.AccessExpiry.Equal(before.AccessExpiry) || after.CreatedAt != before.CreatedAt {
		t.Errorf("row changed beyond its ciphertexts: before %+v, after %+v", before, after)
	}

	again, err := NewReencryption(nil, ring, store, nil).Run(context.Background(), ReencryptOptions{})
	if err != nil || again.Reencrypted != 0 || len(again.Failed) != 0 {
		t.Errorf("second Run: re-encrypted %d, failed %v, %v; want nothing to do", again.Reencrypted, again.Failed, err)
	}
}

func TestReencryptionRunNamesWhatItCannotReencrypt(t *testing.T) {
	t.Parallel()
	store, _, ring := reencryptFixture(t, 6)
	// user-01's access token moved into user-02's row; user-03's offline
	// token is not JSON; values under a key nobody has; user-04 stays busy.
	store.auth[2].AccessToken = store.auth[1].AccessToken
	o := store.offline["user-03"]
	o.Token = []byte("garbage")
	store.offline["user-03"] = o
	if err := store.putOffline(newFakeKeyring("lost"), domain.OfflineToken{User: "zed", Token: domain.NewSecret("z")}); err != nil {
		t.Fatal(err)
	}
	store.busy[rowKey("user-04", "gitlab")] = true

	report, err := NewReencryption(nil, ring, store, nil).Run(context.Background(), ReencryptOptions{BatchSize: 2, Passes: 1})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range report.Failed {
		got = append(got, f.String())
	}
	wantPrefixes := []string{
		"1 rows kept changing or stayed under a refresh lease; run `tokenstore keys rotate` again",
		"1 values are sealed by key lost, which is not in the keyring",
		`auth_tokens user "user-02" provider gitlab: auth_tokens.access_token of user "user-02", provider gitlab:`,
		`offline_tokens user "user-03": offline_tokens.token of user "user-03":`,
	}
	if len(got) != len(wantPrefixes) {
		t.Fatalf("Failed = %q, want %d entries", got, len(wantPrefixes))
	}
	for i, w := range wantPrefixes {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("Failed[%d] = %q, want it to start with %q", i, got[i], w)
		}
	}
	if !strings.Contains(got[2], ErrMisplaced.Error()) {
		t.Errorf("the moved token's failure %q does not say it was moved", got[2])
	}
	// Every other value moved: 6 users' values less the three failed rows
	// (user-02 and user-04: two values each, user-03's offline token: one).
	if want := values(6) - 5; report.Reencrypted != want {
		t.Errorf("re-encrypted %d, want %d", report.Reencrypted, want)
	}
}

func TestReencryptionRunStopsWhenCanceled(t *testing.T) {
	t.Parallel()
	store, _, ring := reencryptFixture(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	report, err := NewReencryption(nil, ring, store, nil).Run(ctx, ReencryptOptions{BatchSize: 3, Progress: func(done, _ int64) {
		if done > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if report.Reencrypted == 0 || report.Reencrypted >= values(10) || len(report.After) != 2 {
		t.Errorf("report after cancel: re-encrypted %d of %d, After %v", report.Reencrypted, values(10), report.After)
	}
	resumed, err := NewReencryption(nil, ring, store, nil).Run(context.Background(), ReencryptOptions{})
	if err != nil || report.Reencrypted+resumed.Reencrypted != values(10) {
		t.Errorf("resumed: %d + %d values, %v; want %d in all", report.Reencrypted, resumed.Reencrypted, err, values(10))
	}
}

func TestReencryptionStatusAndCheckRetire(t *testing.T) {
	t.Parallel()
	store, _, _ := reencryptFixture(t, 2)
	if err := store.putOffline(newFakeKeyring("lost"), domain.OfflineToken{User: "zed", Token: domain.NewSecret("z")}); err != nil {
		t.Fatal(err)
	}
	k := NewReencryption(nil, newFakeKeyring("new", "old", "spare"), store, nil)
	status, err := k.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []KeyStatus{
		{ID: "new", Primary: true, InKeyring: true},
		{ID: "old", InKeyring: true, Values: values(2)},
		{ID: "spare", InKeyring: true},
		{ID: "lost", Values: 1},
	}
	if fmt.Sprint(status) != fmt.Sprint(want) {
		t.Errorf("Status = %v, want %v", status, want)
	}
	for key, wantErr := range map[domain.KeyID]string{
		"new":   "is the primary key",
		"old":   "5 stored values are still sealed by key old",
		"spare": "",
	} {
		err := k.CheckRetire(context.Background(), key)
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("CheckRetire(%s) = %v, want %q", key, err, wantErr)
		}
	}
}

// keptFixture is reencryptFixture plus n deleted users' tokens kept for
// upstream revocation under "old" (every other one with a refresh token),
// and the event ids keeping them.
func keptFixture(t *testing.T, users, n int) (*memStore, *fakeKeyring, []int64) {
	t.Helper()
	store, oldRing, ring := reencryptFixture(t, users)
	var events []int64
	for i := range n {
		u := domain.UserID(fmt.Sprintf("gone-%02d", i))
		refresh := ""
		if i%2 == 0 {
			refresh = "refresh-" + string(u)
		}
		id, err := store.putKept(oldRing, domain.AuthTokens{User: u, Provider: "gitlab",
			AccessToken: domain.NewSecret("access-" + string(u)), RefreshToken: domain.NewSecret(refresh)})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, id)
	}
	return store, ring, events
}

// keptValues is what keptFixture keeps for n deleted users.
func keptValues(n int) int64 { return int64(n + (n+1)/2) }

// TestReencryptionRunMovesKeptTokens: tokens kept for upstream revocation
// are counted under their key, re-encrypted with the rest (so the old key
// can be retired while revocations are pending), and still open at the
// places of the auth_tokens row they came from, where the delivery worker
// opens them.
func TestReencryptionRunMovesKeptTokens(t *testing.T) {
	t.Parallel()
	const users, gone = 4, 7
	store, ring, _ := keptFixture(t, users, gone)
	k := NewReencryption(nil, ring, store, nil)
	if err := k.CheckRetire(context.Background(), "old"); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("%d stored values are still sealed by key old", values(users)+keptValues(gone))) {
		t.Fatalf("CheckRetire(old) before rotating = %v, want the kept tokens counted", err)
	}
	report, err := k.Run(context.Background(), ReencryptOptions{BatchSize: 3})
	if err != nil || len(report.Failed) != 0 {
		t.Fatalf("Run: %v, failed %v", err, report.Failed)
	}
	if want := values(users) + keptValues(gone); report.Reencrypted != want {
		t.Errorf("re-encrypted %d values, want %d", report.Reencrypted, want)
	}
	want := []KeyStatus{{ID: "new", Primary: true, InKeyring: true, Values: values(users) + keptValues(gone)}, {ID: "old", InKeyring: true}}
	if fmt.Sprint(report.After) != fmt.Sprint(want) {
		t.Errorf("After = %v, want %v", report.After, want)
	}
	newOnly := newFakeKeyring("new")
	for i, row := range store.kept {
		access, err := Unseal(newOnly, AccessTokenPlace(row.User, row.Provider), domain.Ciphertext{KeyID: row.Tokens.KeyID, Data: row.Tokens.AccessToken})
		if err != nil || access.Reveal() != "access-"+string(row.User) {
			t.Fatalf("kept access token of %s after Run: %v", row.User, err)
		}
		if (row.Tokens.RefreshToken != nil) != (i%2 == 0) {
			t.Fatalf("kept refresh token of %s: present %v after Run", row.User, row.Tokens.RefreshToken != nil)
		}
		if row.Tokens.RefreshToken != nil {
			refresh, err := Unseal(newOnly, RefreshTokenPlace(row.User, row.Provider), domain.Ciphertext{KeyID: row.Tokens.KeyID, Data: row.Tokens.RefreshToken})
			if err != nil || refresh.Reveal() != "refresh-"+string(row.User) {
				t.Fatalf("kept refresh token of %s after Run: %v", row.User, err)
			}
		}
	}
	if err := k.CheckRetire(context.Background(), "old"); err != nil {
		t.Errorf("CheckRetire(old) after rotating: %v", err)
	}
}

// TestReencryptionNeverRestoresForgottenTokens: tokens the delivery worker
// revokes and forgets while a batch is re-encrypted stay forgotten, and the
// run ends without a failure.
func TestReencryptionNeverRestoresForgottenTokens(t *testing.T) {
	t.Parallel()
	store, ring, events := keptFixture(t, 0, 3)
	store.onKeptStore = func() {
		store.forgetKept(events[1])
		store.onKeptStore = nil
	}
	report, err := NewReencryption(nil, ring, store, nil).Run(context.Background(), ReencryptOptions{})
	if err != nil || len(report.Failed) != 0 {
		t.Fatalf("Run: %v, failed %v", err, report.Failed)
	}
	if report.Reencrypted != 4 { // events[0] and events[2], each with a refresh token
		t.Errorf("re-encrypted %d values, want 4", report.Reencrypted)
	}
	var left []int64
	for _, r := range store.kept {
		left = append(left, r.Event)
		if r.Tokens.KeyID != "new" {
			t.Errorf("event %d's tokens under %s after Run", r.Event, r.Tokens.KeyID)
		}
	}
	if want := []int64{events[0], events[2]}; fmt.Sprint(left) != fmt.Sprint(want) {
		t.Errorf("events keeping tokens after Run: %v, want %v (the forgotten one not restored)", left, want)
	}
}

// TestReencryptionNamesKeptTokensItCannotReencrypt: a kept token moved into
// another event is named by the event's id, user and provider; the other
// events' tokens move.
func TestReencryptionNamesKeptTokensItCannotReencrypt(t *testing.T) {
	t.Parallel()
	store, ring, events := keptFixture(t, 0, 3)
	store.kept[2].Tokens.AccessToken = store.kept[0].Tokens.AccessToken
	report, err := NewReencryption(nil, ring, store, nil).Run(context.Background(), ReencryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantPrefix := fmt.Sprintf(`events id %d user "gone-02" provider gitlab: auth_tokens.access_token of user "gone-02", provider gitlab:`, events[2])
	if len(report.Failed) != 1 || !strings.HasPrefix(report.Failed[0].String(), wantPrefix) ||
		!strings.Contains(report.Failed[0].String(), ErrMisplaced.Error()) {
		t.Fatalf("Failed = %v, want one entry starting %q", report.Failed, wantPrefix)
	}
	if report.Reencrypted != 3 { // events[0] (2 values) and events[1] (1)
		t.Errorf("re-encrypted %d values, want 3", report.Reencrypted)
	}
	if store.kept[2].Tokens.KeyID != "old" {
		t.Errorf("the misplaced event's tokens were rewritten")
	}
}

// envelopeFixture stores, all under the primary key "new": jsonUsers
// users' values and kept tokens in the JSON envelope, binaryUsers users'
// in the binary one; and oldUsers users' values in the JSON envelope
// under the older key "old".
func envelopeFixture(t *testing.T, jsonUsers, binaryUsers, oldUsers int) (*memStore, *fakeKeyring) {
	t.Helper()
	store, ring := newMemStore(), newFakeKeyring("new", "old")
	put := func(c *fakeKeyring, f EnvelopeFormat, prefix string, n int) {
		store.envelope = f
		for i := range n {
			u := domain.UserID(fmt.Sprintf("%s-%02d", prefix, i))
			tokens := domain.AuthTokens{User: u, Provider: "gitlab", AccessToken: domain.NewSecret("access-" + string(u))}
			if i%2 == 0 {
				tokens.RefreshToken = domain.NewSecret("refresh-" + string(u))
			}
			if err := store.putAuth(c, tokens); err != nil {
				t.Fatal(err)
			}
			if err := store.putOffline(c, domain.OfflineToken{User: u, Token: domain.NewSecret("offline-" + string(u))}); err != nil {
				t.Fatal(err)
			}
			tokens.User = "gone-" + u
			if _, err := store.putKept(c, tokens); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(ring, EnvelopeJSON, "json", jsonUsers)
	put(ring, EnvelopeBinary, "binary", binaryUsers)
	put(newFakeKeyring("old"), EnvelopeJSON, "old", oldUsers)
	return store, ring
}

// storedFormats counts the stored values (kept tokens included) by the
// envelope format they are in, checking each still opens at its place.
func storedFormats(t *testing.T, store *memStore, ring *fakeKeyring) map[EnvelopeFormat]int64 {
	t.Helper()
	out := map[EnvelopeFormat]int64{}
	count := func(place Place, keyID domain.KeyID, data []byte) {
		if data == nil {
			return
		}
		_, f, err := unseal(ring, place, domain.Ciphertext{KeyID: keyID, Data: data})
		if err != nil {
			t.Fatalf("%s: %v", place, err)
		}
		out[f]++
	}
	for _, r := range store.auth {
		count(AccessTokenPlace(r.User, r.Provider), r.KeyID, r.AccessToken)
		count(RefreshTokenPlace(r.User, r.Provider), r.KeyID, r.RefreshToken)
	}
	for u, r := range store.offline {
		count(OfflineTokenPlace(u), r.KeyID, r.Token)
	}
	for _, r := range store.kept {
		count(AccessTokenPlace(r.User, r.Provider), r.Tokens.KeyID, r.Tokens.AccessToken)
		count(RefreshTokenPlace(r.User, r.Provider), r.Tokens.KeyID, r.Tokens.RefreshToken)
	}
	return out
}

// perUser is the values envelopeFixture stores for n users: access tokens,
// every other one with a refresh token, offline tokens, and as many kept.
func perUser(n int) int64 { return 2*int64(n+(n+1)/2) + int64(n) }

// TestReencryptionEnvelopes: a plain run rewrites the older key's values
// (in the binary envelope, whatever they were in) and leaves the primary's
// alone; with Envelopes it also rewrites the primary's values that are in
// the JSON envelope, touching no row already binary; a second run has
// nothing to do; and Envelope json turns everything back into JSON (for a
// return to a release before the binary envelope).
func TestReencryptionEnvelopes(t *testing.T) {
	t.Parallel()
	const jsonUsers, binaryUsers, oldUsers = 5, 4, 3
	store, ring := envelopeFixture(t, jsonUsers, binaryUsers, oldUsers)
	k := NewReencryption(nil, ring, store, nil)
	ctx := context.Background()

	plain, err := k.Run(ctx, ReencryptOptions{BatchSize: 3})
	if err != nil || len(plain.Failed) != 0 {
		t.Fatalf("Run: %v, failed %v", err, plain.Failed)
	}
	if plain.Reencrypted != perUser(oldUsers) || plain.Reformatted != perUser(oldUsers) || plain.Unchanged != 0 {
		t.Errorf("plain run: re-encrypted %d, reformatted %d, unchanged %d; want %d, %d, 0",
			plain.Reencrypted, plain.Reformatted, plain.Unchanged, perUser(oldUsers), perUser(oldUsers))
	}
	if got := storedFormats(t, store, ring); got[EnvelopeJSON] != perUser(jsonUsers) {
		t.Errorf("after a plain run: formats %v, want the primary's %d JSON values left", got, perUser(jsonUsers))
	}

	versions := map[domain.UserID]int64{}
	for _, r := range store.auth {
		versions[r.User] = r.Version
	}
	var last [2]int64
	all := perUser(jsonUsers) + perUser(binaryUsers) + perUser(oldUsers)
	report, err := k.Run(ctx, ReencryptOptions{BatchSize: 3, Envelopes: true, Progress: func(done, total int64) { last = [2]int64{done, total} }})
	if err != nil || len(report.Failed) != 0 {
		t.Fatalf("Run with Envelopes: %v, failed %v", err, report.Failed)
	}
	if report.Reencrypted != perUser(jsonUsers) || report.Reformatted != perUser(jsonUsers) || report.Unchanged != all-perUser(jsonUsers) {
		t.Errorf("with Envelopes: re-encrypted %d, reformatted %d, unchanged %d; want %d, %d, %d",
			report.Reencrypted, report.Reformatted, report.Unchanged, perUser(jsonUsers), perUser(jsonUsers), all-perUser(jsonUsers))
	}
	if last != [2]int64{all, all} {
		t.Errorf("progress ended at %v, want %d of %d", last, all, all)
	}
	if got := storedFormats(t, store, ring); got[EnvelopeJSON] != 0 || got[EnvelopeBinary] != all {
		t.Errorf("after Envelopes: formats %v, want all %d binary", got, all)
	}
	for _, r := range store.auth {
		rewritten := strings.HasPrefix(string(r.User), "json-")
		if (r.Version != versions[r.User]) != rewritten {
			t.Errorf("row of %s: version %d, was %d; want a new version only for rows in the JSON envelope", r.User, r.Version, versions[r.User])
		}
	}

	again, err := k.Run(ctx, ReencryptOptions{Envelopes: true})
	if err != nil || again.Reencrypted != 0 || again.Unchanged != all {
		t.Errorf("second run with Envelopes: re-encrypted %d, unchanged %d, %v; want 0, %d", again.Reencrypted, again.Unchanged, err, all)
	}

	back, err := k.Run(ctx, ReencryptOptions{Envelopes: true, Envelope: EnvelopeJSON})
	if err != nil || back.Reencrypted != all || back.Reformatted != all {
		t.Errorf("with Envelope json: re-encrypted %d, reformatted %d, %v; want %d", back.Reencrypted, back.Reformatted, err, all)
	}
	if got := storedFormats(t, store, ring); got[EnvelopeJSON] != all {
		t.Errorf("after Envelope json: formats %v, want all %d JSON", got, all)
	}
}

// TestReencryptionEnvelopesRetriesOnlyBusyRows: a later pass reads again
// only the primary key's rows that were busy, so values left unchanged are
// counted once, and a busy row in the JSON envelope is named and rewritten
// by the next run.
func TestReencryptionEnvelopesRetriesOnlyBusyRows(t *testing.T) {
	t.Parallel()
	const jsonUsers, binaryUsers = 3, 4
	store, ring := envelopeFixture(t, jsonUsers, binaryUsers, 0)
	store.busy[rowKey("json-00", "gitlab")] = true // access and refresh token
	k := NewReencryption(nil, ring, store, nil)
	report, err := k.Run(context.Background(), ReencryptOptions{BatchSize: 2, Passes: 2, Envelopes: true})
	if err != nil {
		t.Fatal(err)
	}
	if report.Reencrypted != perUser(jsonUsers)-2 || report.Unchanged != perUser(binaryUsers) {
		t.Errorf("re-encrypted %d, unchanged %d; want %d, %d", report.Reencrypted, report.Unchanged, perUser(jsonUsers)-2, perUser(binaryUsers))
	}
	if len(report.Failed) != 1 || !strings.Contains(report.Failed[0].String(), "1 rows kept changing") {
		t.Errorf("Failed = %v, want the busy row named", report.Failed)
	}
	delete(store.busy, rowKey("json-00", "gitlab"))
	again, err := k.Run(context.Background(), ReencryptOptions{Envelopes: true})
	if err != nil || again.Reencrypted != 2 || again.Reformatted != 2 || len(again.Failed) != 0 {
		t.Errorf("next run: re-encrypted %d, reformatted %d, failed %v, %v; want the busy row's 2 values", again.Reencrypted, again.Reformatted, again.Failed, err)
	}
	if got := storedFormats(t, store, ring); got[EnvelopeJSON] != 0 {
		t.Errorf("formats %v, want no JSON envelope left", got)
	}
}
