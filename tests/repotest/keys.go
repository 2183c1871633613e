package repotest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// valuesByKey is CountValuesByKey as a map.
func valuesByKey(t *testing.T, repo Repository) map[domain.KeyID]int64 {
	t.Helper()
	usage, err := repo.CountValuesByKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[domain.KeyID]int64{}
	for i, u := range usage {
		if i > 0 && usage[i-1].KeyID >= u.KeyID {
			t.Errorf("CountValuesByKey not sorted by key id: %v", usage)
		}
		out[u.KeyID] = u.Values
	}
	return out
}

// checkInventory fails t unless CountValuesByKey counts want, and
// KeyIDsInUse and CountValuesOfKeys agree with it.
func checkInventory(t *testing.T, repo Repository, when string, want map[domain.KeyID]int64) {
	t.Helper()
	ctx := context.Background()
	if got := valuesByKey(t, repo); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: CountValuesByKey = %v, want %v", when, got, want)
	}
	var ids []domain.KeyID
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	inUse, err := repo.KeyIDsInUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inUse, ids) {
		t.Errorf("%s: KeyIDsInUse = %v, want %v", when, inUse, ids)
	}
	usage, err := repo.CountValuesOfKeys(ctx, append(slices.Clone(ids), "never-used"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[domain.KeyID]int64{}
	for _, u := range usage {
		got[u.KeyID] = u.Values
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: CountValuesOfKeys = %v, want %v", when, got, want)
	}
}

// revoked claims every due revocation and records it revoked (the tokens
// forgotten), as the delivery worker does.
func revoked(t *testing.T, repo Repository) {
	t.Helper()
	ctx := context.Background()
	claimed, err := repo.ClaimDeliveries(ctx, domain.RevocationTarget, "worker", time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range claimed {
		if ok, err := repo.FinishDelivery(ctx, d, domain.DeliveryOutcome{State: domain.DeliveryDelivered, ForgetTokens: true}); err != nil || !ok {
			t.Fatalf("FinishDelivery(%s) = %v, %v", d.Event.WebhookID(), ok, err)
		}
	}
}

// testKeptTokensCounted: the tokens a delete keeps for upstream revocation
// are stored values of their key, one or two per event, until revoked;
// the readiness queries (KeyIDsInUse, CountValuesOfKeys) see them too,
// even when no table of tokens uses their key any more.
func testKeptTokensCounted(t *testing.T, repo Repository) {
	ctx := context.Background()
	gl, gh := domain.ProviderGitLab, domain.ProviderGitHub
	put(t, repo, Sample("ann", gl, "a"))
	put(t, repo, Sample("bob", gh, "b"))
	noRefresh := Sample("cat", gl, "c")
	noRefresh.RefreshToken, noRefresh.RefreshExpiry = nil, domain.Never()
	put(t, repo, noRefresh)
	put(t, repo, Sample("dan", gl, "d"))
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "ann", KeyID: "key-a", Token: []byte("sealed-offline")}); err != nil {
		t.Fatal(err)
	}
	checkInventory(t, repo, "stored", map[domain.KeyID]int64{"key-a": 3, "key-b": 2, "key-c": 1, "key-d": 2})

	for _, d := range []struct {
		user domain.UserID
		p    domain.Provider
	}{{"ann", gl}, {"bob", gh}, {"cat", gl}} {
		if err := repo.DeleteAuthTokensRevoking(ctx, d.user, d.p); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.DeleteAuthTokens(ctx, "dan", gl); err != nil { // no revocation: nothing kept
		t.Fatal(err)
	}
	checkInventory(t, repo, "deleted, revocations pending", map[domain.KeyID]int64{"key-a": 3, "key-b": 2, "key-c": 1})

	if err := repo.DeleteOfflineToken(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	checkInventory(t, repo, "only kept tokens left", map[domain.KeyID]int64{"key-a": 2, "key-b": 2, "key-c": 1})

	revoked(t, repo)
	checkInventory(t, repo, "revoked", map[domain.KeyID]int64{})
}

// testReencryptKeptTokens: kept tokens are read by key in event order
// with the user and provider of their event, and a rewrite applies only
// while the event still holds the ciphertexts read (not after a concurrent
// rewrite, nor once the worker revoked and forgot them), with the batch's
// audit event counting the events rewritten; the revocation then claims
// the new ciphertexts.
func testReencryptKeptTokens(t *testing.T, repo Repository) {
	ctx := context.Background()
	gl := domain.ProviderGitLab
	deleted := []domain.UserID{"u0", "u1", "u2", "u3"}
	for i, u := range deleted {
		tok := Sample(u, gl, "old")
		tok.AccessToken = []byte("sealed-access-" + string(u))
		if i == 1 {
			tok.RefreshToken, tok.RefreshExpiry = nil, domain.Never()
		} else {
			tok.RefreshToken = []byte("sealed-refresh-" + string(u))
		}
		put(t, repo, tok)
		if err := repo.DeleteAuthTokensRevoking(ctx, u, gl); err != nil {
			t.Fatal(err)
		}
	}
	var all []domain.KeptTokens
	var after int64
	for {
		page, err := repo.KeptTokensByKey(ctx, "key-old", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Event
	}
	if len(all) != len(deleted) {
		t.Fatalf("KeptTokensByKey in pages of 3: %d events, want %d", len(all), len(deleted))
	}
	for i, k := range all {
		u := deleted[i]
		if k.User != u || k.Provider != gl || k.Tokens.KeyID != "key-old" || string(k.Tokens.AccessToken) != "sealed-access-"+string(u) ||
			(i == 1) != (k.Tokens.RefreshToken == nil) || (i != 1 && string(k.Tokens.RefreshToken) != "sealed-refresh-"+string(u)) {
			t.Errorf("kept tokens %d: %+v, want %s's ciphertexts as stored", i, k, u)
		}
		if fmt.Sprint(k.Read) != fmt.Sprint(k.Tokens) {
			t.Errorf("kept tokens %d: Read %+v differs from Tokens %+v", i, k.Read, k.Tokens)
		}
		if i > 0 && all[i-1].Event >= k.Event {
			t.Errorf("events out of order: %d then %d", all[i-1].Event, k.Event)
		}
	}
	if other, err := repo.KeptTokensByKey(ctx, "key-other", 0, 10); err != nil || len(other) != 0 {
		t.Errorf("KeptTokensByKey(another key) = %v, %v; want none", other, err)
	}

	resealed := func(k domain.KeptTokens) domain.KeptTokens {
		k.Tokens = domain.SealedRevocation{KeyID: "key-new", AccessToken: []byte("new-access-" + string(k.User))}
		if k.Read.RefreshToken != nil {
			k.Tokens.RefreshToken = []byte("new-refresh-" + string(k.User))
		}
		return k
	}
	// u2's tokens are rewritten by another run first; u3's are revoked
	// and forgotten (the worker) before the batch stores.
	if ok, err := repo.StoreReencryptedKeptTokens(ctx, []domain.KeptTokens{resealed(all[2])}); err != nil || !slices.Equal(ok, []bool{true}) {
		t.Fatalf("StoreReencryptedKeptTokens(u2) = %v, %v", ok, err)
	}
	claimed, err := repo.ClaimDeliveries(ctx, domain.RevocationTarget, "worker", time.Minute, 100)
	if err != nil || len(claimed) != len(deleted) {
		t.Fatalf("ClaimDeliveries = %d, %v; want %d", len(claimed), err, len(deleted))
	}
	if ok, err := repo.FinishDelivery(ctx, claimed[3], domain.DeliveryOutcome{State: domain.DeliveryDelivered, ForgetTokens: true}); err != nil || !ok {
		t.Fatalf("FinishDelivery(u3) = %v, %v", ok, err)
	}
	batch := []domain.KeptTokens{resealed(all[0]), resealed(all[1]), resealed(all[2]), resealed(all[3])}
	audit := domain.AuditEvent{Instance: "cli-1", Action: domain.AuditReencryptBatch, Status: 200}
	ok, err := repo.StoreReencryptedKeptTokens(ctx, batch, audit)
	if err != nil || !slices.Equal(ok, []bool{true, true, false, false}) {
		t.Fatalf("StoreReencryptedKeptTokens = %v, %v; want u0 and u1 written, not u2 (rewritten since) nor u3 (forgotten)", ok, err)
	}
	action := domain.AuditReencryptBatch
	events, _, err := repo.ListAuditEvents(ctx, domain.AuditFilter{Action: &action}, ports.AuditCursor{}, 10)
	if err != nil || len(events) != 1 || events[0].Count != 2 || events[0].Instance != "cli-1" {
		t.Errorf("reencrypt_batch events = %+v, %v; want one counting 2 events", events, err)
	}
	checkInventory(t, repo, "re-encrypted", map[domain.KeyID]int64{"key-new": 5})
	if old, err := repo.KeptTokensByKey(ctx, "key-old", 0, 10); err != nil || len(old) != 0 {
		t.Errorf("kept tokens still under key-old: %+v, %v", old, err)
	}

	// The revocations still pending are attempted again (their lease
	// lapses): they carry the new ciphertexts.
	for _, d := range claimed[:3] {
		if ok, err := repo.FinishDelivery(ctx, d, domain.DeliveryOutcome{State: domain.DeliveryPending, NextAttemptAt: time.Now().Add(-time.Hour)}); err != nil || !ok {
			t.Fatalf("FinishDelivery(%s, pending) = %v, %v", d.Event.User, ok, err)
		}
	}
	again, err := repo.ClaimDeliveries(ctx, domain.RevocationTarget, "worker", time.Minute, 100)
	if err != nil || len(again) != 3 {
		t.Fatalf("ClaimDeliveries again = %d, %v; want 3", len(again), err)
	}
	for i, d := range again {
		want := resealed(all[i]).Tokens
		if d.Tokens == nil || fmt.Sprint(*d.Tokens) != fmt.Sprint(want) {
			t.Errorf("revocation of %s claims %+v, want the re-encrypted %+v", d.Event.User, d.Tokens, want)
		}
	}
}

// testReencryptRows: auth tokens and offline tokens are read by key in id
// and user order, and a rewrite applies only to a row unchanged since it
// was read (version, and for an offline token its creation) that no
// refresh holds.
func testReencryptRows(t *testing.T, repo Repository) {
	ctx := context.Background()
	gl := domain.ProviderGitLab
	for _, u := range []domain.UserID{"r0", "r1", "r2", "r3"} {
		put(t, repo, Sample(u, gl, "old"))
		if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: u, KeyID: "key-old", Token: []byte("sealed-offline-" + string(u))}); err != nil {
			t.Fatal(err)
		}
	}
	put(t, repo, Sample("other", gl, "other"))
	var rows []domain.SealedAuthTokens
	for after := int64(0); ; {
		page, err := repo.AuthTokensByKey(ctx, "key-old", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		rows = append(rows, page...)
		after = page[len(page)-1].ID
	}
	var order []domain.UserID
	for i, r := range rows {
		order = append(order, r.User)
		if i > 0 && rows[i-1].ID >= r.ID {
			t.Errorf("AuthTokensByKey out of id order: %d then %d", rows[i-1].ID, r.ID)
		}
	}
	if !slices.Equal(order, []domain.UserID{"r0", "r1", "r2", "r3"}) {
		t.Fatalf("AuthTokensByKey in pages of 3: %v", order)
	}
	offline, err := repo.OfflineTokensByKey(ctx, "key-old", "r0", 2)
	if err != nil || len(offline) != 2 || offline[0].User != "r1" || offline[1].User != "r2" {
		t.Fatalf("OfflineTokensByKey(after r0, 2) = %+v, %v; want r1, r2", offline, err)
	}
	// r1 is written again, r2 is being refreshed, since they were read.
	put(t, repo, Sample("r1", gl, "old"))
	setRefresh(t, repo, "r2", gl, domain.RefreshState{LeaseOwner: "w", LeaseUntil: time.Now().Add(time.Hour)})
	rows[2].Version = get(t, repo, "r2", gl).Version // the lease, not the version, holds it back
	for i := range rows {
		rows[i].KeyID, rows[i].AccessToken, rows[i].RefreshToken = "key-new", []byte("new-access"), []byte("new-refresh")
	}
	ok, err := repo.StoreReencryptedAuthTokens(ctx, rows)
	if err != nil || !slices.Equal(ok, []bool{true, false, false, true}) {
		t.Fatalf("StoreReencryptedAuthTokens = %v, %v; want r1 (changed) and r2 (leased) left", ok, err)
	}
	got := get(t, repo, "r0", gl)
	if got.KeyID != "key-new" || string(got.AccessToken) != "new-access" || string(got.RefreshToken) != "new-refresh" || got.Version != rows[0].Version+1 {
		t.Errorf("r0 after the rewrite: %+v (version read %d)", got, rows[0].Version)
	}
	if got := get(t, repo, "r1", gl); got.KeyID != "key-old" {
		t.Errorf("r1, changed since read, was rewritten: %+v", got)
	}

	// r2's offline token is deleted and stored anew (version 1 again).
	if err := repo.DeleteOfflineToken(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "r2", KeyID: "key-old", Token: []byte("sealed-offline-again")}); err != nil {
		t.Fatal(err)
	}
	for i := range offline {
		offline[i].KeyID, offline[i].Token = "key-new", []byte("new-offline")
	}
	ok, err = repo.StoreReencryptedOfflineTokens(ctx, offline)
	if err != nil || !slices.Equal(ok, []bool{true, false}) {
		t.Fatalf("StoreReencryptedOfflineTokens = %v, %v; want r2 (stored anew) left", ok, err)
	}
	if got, err := repo.GetOfflineToken(ctx, "r2"); err != nil || string(got.Token) != "sealed-offline-again" {
		t.Errorf("r2's new offline token after the rewrite: %+v, %v", got, err)
	}
	checkInventory(t, repo, "rewritten", map[domain.KeyID]int64{"key-new": 5, "key-old": 7, "key-other": 2})
}
