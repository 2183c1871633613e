package app

// The audit events of the jobs that write many rows: one per re-encryption
// batch and per import batch, with the rows it wrote as Count, committed
// in the batch's own transaction (fail-closed: a batch the audit trail
// cannot record writes nothing).

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/tokenstore/tokenstore/domain"
)

func failClosed(instance string) *Auditor {
	return NewAuditor(AuditConfig{Mode: AuditFailClosed, Instance: instance}, nil, nil)
}

// batches lists the store's events as "action count status caller instance".
func (m *memStore) batches() []string {
	var out []string
	for _, e := range m.events {
		out = append(out, fmt.Sprintf("%s %d %d %q %s %q %q", e.Action, e.Count, e.Status, e.Code, e.Instance, e.User, e.Provider))
	}
	return out
}

func TestReencryptionRecordsEachBatch(t *testing.T) {
	t.Parallel()
	store, _, ring := reencryptFixture(t, 10)
	if _, err := NewReencryption(nil, ring, store, failClosed("cli-1")).Run(context.Background(), ReencryptOptions{BatchSize: 4}); err != nil {
		t.Fatal(err)
	}
	// 10 auth rows in batches of 4, then 10 offline tokens: the last page
	// of each table is short, and an empty page ends the walk unrecorded.
	want := fmt.Sprint([]string{
		`reencrypt_batch 4 200 "" cli-1 "" ""`, `reencrypt_batch 4 200 "" cli-1 "" ""`, `reencrypt_batch 2 200 "" cli-1 "" ""`,
		`reencrypt_batch 4 200 "" cli-1 "" ""`, `reencrypt_batch 4 200 "" cli-1 "" ""`, `reencrypt_batch 2 200 "" cli-1 "" ""`,
	})
	if got := fmt.Sprint(store.batches()); got != want {
		t.Errorf("batch events\n got %s\nwant %s", got, want)
	}
}

// The tokens events keep for revocation are re-encrypted in batches of
// their own, recorded like the others.
func TestReencryptionRecordsKeptTokensBatches(t *testing.T) {
	t.Parallel()
	store, ring, _ := keptFixture(t, 0, 5)
	if _, err := NewReencryption(nil, ring, store, failClosed("cli-1")).Run(context.Background(), ReencryptOptions{BatchSize: 3}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]string{`reencrypt_batch 3 200 "" cli-1 "" ""`, `reencrypt_batch 2 200 "" cli-1 "" ""`})
	if got := fmt.Sprint(store.batches()); got != want {
		t.Errorf("batch events\n got %s\nwant %s", got, want)
	}
}

func TestReencryptionBatchFailsClosed(t *testing.T) {
	t.Parallel()
	store, _, ring := reencryptFixture(t, 3)
	store.auditDown = errors.New("audit store down")
	_, err := NewReencryption(nil, ring, store, failClosed("cli-1")).Run(context.Background(), ReencryptOptions{})
	if !errors.Is(err, domain.ErrAuditUnavailable) {
		t.Fatalf("Run with the audit store down = %v, want the audit store's failure", err)
	}
	for _, r := range store.auth {
		if r.KeyID != "old" {
			t.Errorf("user %s re-encrypted although its batch could not be recorded", r.User)
		}
	}
}

func TestImportRecordsEachBatch(t *testing.T) {
	t.Parallel()
	store, ring := newMemStore(), newFakeKeyring("k1")
	if err := store.putAuth(ring, domain.AuthTokens{User: "alice", Provider: "github", AccessToken: domain.NewSecret("newer")}); err != nil {
		t.Fatal(err)
	}
	im := NewImporter(nil, declared, ring, store, failClosed("cli-2"))
	if _, err := im.Import(context.Background(), mixedSource(), ImportOptions{BatchSize: 2}); err != nil {
		t.Fatal(err)
	}
	var imported int64
	for _, e := range store.events {
		if e.Action != domain.AuditImportBatch || e.Instance != "cli-2" || e.Status != 200 {
			t.Errorf("event %+v", e)
		}
		imported += e.Count
	}
	if imported != 2 {
		t.Errorf("batch events count %d rows imported, want 2: %v", imported, store.batches())
	}
	// A dry run writes nothing and records nothing.
	before := len(store.events)
	dry := NewImporter(nil, declared, ring, newMemStore(), failClosed("cli-2"))
	if _, err := dry.Import(context.Background(), mixedSource(), ImportOptions{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if len(store.events) != before {
		t.Error("a dry run recorded batch events")
	}
}

func TestImportBatchFailsClosed(t *testing.T) {
	t.Parallel()
	store, ring := newMemStore(), newFakeKeyring("k1")
	store.auditDown = errors.New("audit store down")
	_, err := NewImporter(nil, declared, ring, store, failClosed("cli-2")).Import(context.Background(), mixedSource(), ImportOptions{})
	if !errors.Is(err, domain.ErrAuditUnavailable) {
		t.Fatalf("Import with the audit store down = %v, want the audit store's failure", err)
	}
	if len(store.auth) != 0 || len(store.offline) != 0 {
		t.Errorf("rows imported although their batch could not be recorded")
	}
}
