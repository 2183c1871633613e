package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"testing"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// staticSource is a ports.ImportSource over fixed batches; err, if set, is
// yielded after the auth token batches.
type staticSource struct {
	auth    [][]ports.ImportedAuthTokens
	offline [][]ports.ImportedOfflineToken
	err     error
}

func (s staticSource) AuthTokenBatches(context.Context, int) iter.Seq2[[]ports.ImportedAuthTokens, error] {
	return func(yield func([]ports.ImportedAuthTokens, error) bool) {
		for _, b := range s.auth {
			if !yield(b, nil) {
				return
			}
		}
		if s.err != nil {
			yield(nil, s.err)
		}
	}
}

func (s staticSource) OfflineTokenBatches(context.Context, int) iter.Seq2[[]ports.ImportedOfflineToken, error] {
	return func(yield func([]ports.ImportedOfflineToken, error) bool) {
		for _, b := range s.offline {
			if !yield(b, nil) {
				return
			}
		}
	}
}

func authRecord(id, user, provider, access, refresh string) ports.ImportedAuthTokens {
	return ports.ImportedAuthTokens{SourceID: id, User: user, Provider: provider,
		AccessToken: domain.NewSecret(access), RefreshToken: domain.NewSecret(refresh)}
}

// declared are the providers the importers of these tests store tokens for.
var declared = []domain.Provider{"github", "gitlab"}

// mixedSource holds one record of every kind the importer tells apart.
func mixedSource() staticSource {
	return staticSource{
		auth: [][]ports.ImportedAuthTokens{
			{
				authRecord("1", "alice", "github", "a-alice", "r-alice"),
				authRecord("2", "bob", "gitlab", "a-bob", ""),
				{SourceID: "3", User: "carol", Provider: "github", Err: fmt.Errorf("%w: no", ports.ErrWrongSecret)},
			},
			{
				{SourceID: "4", User: "dave", Provider: "github", Err: fmt.Errorf("%w: no", ports.ErrBadCiphertext)},
				{SourceID: "5", User: "erin", Provider: "github", Err: errors.New("expiry out of range")},
				authRecord("6", "", "github", "a", ""),
				authRecord("7", "frank", "Not A Provider!", "a", ""),
				authRecord("8", "grace", "github", "", "r"),
				authRecord("9", "ivan", "gitlub", "a-ivan", ""), // a valid name nobody declared
			},
		},
		offline: [][]ports.ImportedOfflineToken{{
			{SourceID: "alice", User: "alice", Token: domain.NewSecret("o-alice")},
			{SourceID: "heidi", User: "heidi"},
		}},
	}
}

func TestImportChecksSealsAndCountsEveryRow(t *testing.T) {
	t.Parallel()
	store, ring := newMemStore(), newFakeKeyring("k1")
	var log bytes.Buffer
	im := NewImporter(slog.New(slog.NewJSONHandler(&log, nil)), declared, ring, store, nil)
	sum, err := im.Import(context.Background(), mixedSource(), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := ImportSummary{
		AuthTokens:    ImportCounts{Imported: 2, Failed: 7},
		OfflineTokens: ImportCounts{Imported: 1, Failed: 1},
	}
	if sum.AuthTokens != wantCounts.AuthTokens || sum.OfflineTokens != wantCounts.OfflineTokens {
		t.Errorf("counts: auth %+v offline %+v, want %+v %+v", sum.AuthTokens, sum.OfflineTokens, wantCounts.AuthTokens, wantCounts.OfflineTokens)
	}
	var got []string
	for _, f := range sum.Failures {
		got = append(got, fmt.Sprintf("%s/%s %s", f.Table, f.SourceID, f.Reason))
	}
	want := []string{
		"auth_tokens/3 wrong secret", "auth_tokens/4 bad ciphertext", "auth_tokens/5 unreadable row",
		"auth_tokens/6 invalid user id", "auth_tokens/7 invalid provider name", "auth_tokens/8 invalid tokens",
		"auth_tokens/9 undeclared provider", "offline_tokens/heidi invalid tokens",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("failures:\n got %q\nwant %q", got, want)
	}

	alice, err := store.GetAuthTokens(context.Background(), "alice", "github")
	if err != nil {
		t.Fatal(err)
	}
	tokens, _, err := unsealAuthTokens(ring, EnvelopeBinary, alice)
	if err != nil || tokens.AccessToken.Reveal() != "a-alice" || tokens.RefreshToken.Reveal() != "r-alice" {
		t.Errorf("alice's imported tokens do not open in their places: %v", err)
	}
	offline, err := store.GetOfflineToken(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Unseal(ring, OfflineTokenPlace("alice"), domain.Ciphertext{KeyID: offline.KeyID, Data: offline.Token}); err != nil || got.Reveal() != "o-alice" {
		t.Errorf("alice's offline token: %v", err)
	}
	// The undeclared provider's row says which are declared, and is not stored.
	if f := sum.Failures[6]; !strings.Contains(f.Detail, `"gitlub" is not a declared provider (declared: github, gitlab)`) {
		t.Errorf("undeclared provider's detail = %q; want it to name the declared providers", f.Detail)
	}
	if _, err := store.GetAuthTokens(context.Background(), "ivan", "gitlub"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the undeclared provider's row was stored: %v", err)
	}
	for _, secret := range []string{"a-alice", "r-alice", "a-bob", "o-alice", "a-ivan"} {
		if strings.Contains(log.String(), secret) {
			t.Errorf("the log holds token material %q", secret)
		}
	}

	// A second run changes nothing: every row is present already.
	again, err := im.Import(context.Background(), mixedSource(), ImportOptions{})
	if err != nil || again.Total().Imported != 0 || again.Total().AlreadyPresent != 3 {
		t.Errorf("second run: %+v, %v; want 3 already present", again.Total(), err)
	}
}

func TestImportDryRunWritesNothing(t *testing.T) {
	t.Parallel()
	store, ring := newMemStore(), newFakeKeyring("k1")
	if err := store.putAuth(ring, domain.AuthTokens{User: "alice", Provider: "github", AccessToken: domain.NewSecret("newer")}); err != nil {
		t.Fatal(err)
	}
	im := NewImporter(nil, declared, ring, store, nil)
	sum, err := im.Import(context.Background(), mixedSource(), ImportOptions{DryRun: true, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.DryRun || sum.AuthTokens != (ImportCounts{Imported: 1, AlreadyPresent: 1, Failed: 7}) ||
		sum.OfflineTokens != (ImportCounts{Imported: 1, Failed: 1}) {
		t.Errorf("dry run summary %+v", sum)
	}
	if len(store.auth) != 1 || len(store.offline) != 0 {
		t.Errorf("a dry run wrote: %d auth rows, %d offline rows", len(store.auth), len(store.offline))
	}
}

func TestImportStopsOnSourceOrBatchSizeErrors(t *testing.T) {
	t.Parallel()
	im := NewImporter(nil, declared, newFakeKeyring("k1"), newMemStore(), nil)
	src := mixedSource()
	src.err = errors.New("connection reset")
	sum, err := im.Import(context.Background(), src, ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "import: read auth_tokens: connection reset") {
		t.Errorf("source failure: %v", err)
	}
	if sum.AuthTokens.Imported != 2 || sum.OfflineTokens.Imported != 0 {
		t.Errorf("summary so far %+v: want the batches read before the failure", sum)
	}
	if _, err := im.Import(context.Background(), mixedSource(), ImportOptions{BatchSize: MaxImportBatchSize + 1}); err == nil {
		t.Error("a batch size above the limit was accepted")
	}
	store := newMemStore()
	broken := NewImporter(nil, declared, brokenCrypter{newFakeKeyring("k1")}, store, nil)
	if _, err := broken.Import(context.Background(), mixedSource(), ImportOptions{}); err == nil ||
		!strings.Contains(err.Error(), `import: auth_tokens row "1": seal access token: keyring gone`) {
		t.Errorf("sealing failure: %v, want it to end the import naming the row", err)
	}
	if len(store.auth) != 0 {
		t.Errorf("%d rows written although sealing failed", len(store.auth))
	}
}

// brokenCrypter cannot seal anything.
type brokenCrypter struct{ *fakeKeyring }

func (brokenCrypter) Seal([]byte) (domain.Ciphertext, error) {
	return domain.Ciphertext{}, errors.New("keyring gone")
}
