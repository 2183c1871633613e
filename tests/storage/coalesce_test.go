package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
	"github.com/tokenstore/tokenstore/tests/repotest"
	"github.com/tokenstore/tokenstore/tests/testdb"
)

// Tests of PutAuthTokens' group commit (adapters/postgres coalesce.go).
// Batches are made deterministic without timing: every batch slot is taken
// by a PUT blocked on a row lock this test holds (holdPutSlots), the PUTs
// under test queue behind them (PutStats().Waiting says when), and freeing
// the slots sends the queue as one batch.

// coalesceSetup is a repository on a fresh database with a pool large
// enough for the blocked PUTs, the batch and the test's own transactions.
func coalesceSetup(t *testing.T) (*postgres.Repository, *pgxpool.Pool) {
	t.Helper()
	pool := testdb.Pool(t, testdb.NewDSN(t), func(c *pgxpool.Config) { c.MaxConns = postgres.DefaultMaxConns })
	return postgres.New(pool, postgres.Options{}), pool
}

// putResult is one PutAuthTokens' answer.
type putResult struct {
	row domain.SealedAuthTokens
	err error
}

// putAsync starts PutAuthTokens(tok, audit...) and returns where its answer
// will be.
func putAsync(ctx context.Context, repo *postgres.Repository, tok domain.SealedAuthTokens, audit ...domain.AuditEvent) <-chan putResult {
	done := make(chan putResult, 1)
	go func() {
		row, err := repo.PutAuthTokens(ctx, tok, audit...)
		done <- putResult{row, err}
	}()
	return done
}

// waitFor polls cond until it holds (30 s at most: then the test fails).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after 30s for %s", what)
		}
	}
}

// queue starts the PUTs one after the other, each once the previous one
// waits in the queue (so they queue in this order), and returns their
// answers.
func queue(t *testing.T, repo *postgres.Repository, puts ...domain.SealedAuthTokens) []<-chan putResult {
	t.Helper()
	out := make([]<-chan putResult, len(puts))
	base := repo.PutStats().Waiting
	for i, tok := range puts {
		out[i] = putAsync(context.Background(), repo, tok, putEvent(tok))
		waitFor(t, fmt.Sprintf("PUT %d to queue", i), func() bool { return repo.PutStats().Waiting == base+i+1 })
	}
	return out
}

// putEvent is the audit event of a PUT of tok.
func putEvent(tok domain.SealedAuthTokens) domain.AuditEvent {
	return domain.AuditEvent{Instance: "i-1", Caller: "test", Action: domain.AuditPutTokens, User: tok.User,
		Provider: tok.Provider, Status: 200, RequestID: "req-" + string(tok.User)}
}

// holdPutSlots takes every batch slot of repo with a PUT that waits for a
// row this test locks, and returns the function that frees them (and
// checks that those PUTs succeeded).
func holdPutSlots(t *testing.T, repo *postgres.Repository, pool *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := context.Background()
	var users []string
	for i := range postgres.PutBatchesInFlight {
		user := domain.UserID(fmt.Sprintf("zz-slot-%d", i))
		users = append(users, string(user))
		if _, err := repo.PutAuthTokens(ctx, repotest.Sample(user, domain.ProviderGitLab, "0")); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM auth_tokens WHERE user_id = ANY($1) FOR UPDATE`, users); err != nil {
		t.Fatal(err)
	}
	var blocked []<-chan putResult
	for i, user := range users {
		blocked = append(blocked, putAsync(ctx, repo, repotest.Sample(domain.UserID(user), domain.ProviderGitLab, "1")))
		waitForLockWaiters(t, pool, i+1)
	}
	if w := repo.PutStats().Waiting; w != 0 {
		t.Fatalf("%d PUTs queued while the slots were being taken", w)
	}
	return func() {
		t.Helper()
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		for _, done := range blocked {
			if r := <-done; r.err != nil {
				t.Fatalf("slot PUT: %v", r.err)
			}
		}
	}
}

// A batch with a row the database refuses: the statement fails, each PUT
// is retried alone, and only the bad row's caller gets an error, its own;
// the good rows are stored with their events and audit events.
func TestCoalescedPutBadRowFailsAlone(t *testing.T) {
	t.Parallel()
	repo, pool := coalesceSetup(t)
	gl := domain.ProviderGitLab
	bad := repotest.Sample("bad", gl, "1")
	bad.RefreshToken = nil // a refresh expiry without a refresh token: auth_tokens_refresh_expiry_check
	good1, good2 := repotest.Sample("good-1", gl, "1"), repotest.Sample("good-2", gl, "1")
	good2.RefreshToken, good2.RefreshExpiry = nil, domain.Never() // NULL in the batch's arrays
	release := holdPutSlots(t, repo, pool)
	before := repo.PutStats()
	answers := queue(t, repo, good1, bad, good2)
	release()
	results := []putResult{<-answers[0], <-answers[1], <-answers[2]}
	after := repo.PutStats()
	if after.Batches != before.Batches+1 || after.BatchedPuts != before.BatchedPuts+3 {
		t.Fatalf("stats before %+v, after %+v: want one batch of the 3 PUTs", before, after)
	}
	if after.Alone != before.Alone+3 {
		t.Errorf("stats before %+v, after %+v: want the 3 PUTs retried alone after the batch failed", before, after)
	}
	if !errors.Is(results[1].err, domain.ErrInvalid) {
		t.Errorf("bad PUT = %v, want ErrInvalid", results[1].err)
	}
	if _, err := repo.GetAuthTokens(context.Background(), "bad", gl); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the bad row: %v, want ErrNotFound", err)
	}
	for i, want := range []domain.SealedAuthTokens{good1, good2} {
		r := results[2*i]
		if r.err != nil {
			t.Fatalf("%s: %v", want.User, r.err)
		}
		got := get(t, repo, want.User, gl)
		repotest.AssertSameTokens(t, got, want)
		if r.row.Version != 1 || got.Version != 1 || !r.row.UpdatedAt.Equal(got.UpdatedAt) {
			t.Errorf("%s: answered version %d at %v, stored %d at %v", want.User, r.row.Version, r.row.UpdatedAt, got.Version, got.UpdatedAt)
		}
	}
	assertOutboxUsers(t, repo, []domain.UserID{"good-1", "good-2"})
	assertAuditUsers(t, repo, []domain.UserID{"good-1", "good-2"})
}

// A batch that writes every row: one statement stores them, their events
// and their audit events; each caller gets its own row's version and
// times, and a PUT of a row that needed re-authorization leaves
// tokens.recovered, as alone.
func TestCoalescedPutWritesEachRow(t *testing.T) {
	t.Parallel()
	repo, pool := coalesceSetup(t)
	ctx := context.Background()
	gl := domain.ProviderGitLab
	put(t, repo, repotest.Sample("old", gl, "1"))
	reauth := put(t, repo, repotest.Sample("reauth", gl, "1"))
	// old in the middle of a refresh, after failures: the PUT resets it all.
	soon := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	old, err := repo.UpdateAuthTokens(ctx, "old", gl, func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
		cur.Refresh = domain.RefreshState{LeaseOwner: "worker", LeaseUntil: soon, LastError: domain.CodeProviderOutcomeUnknown,
			NextAttemptAt: soon, AmbiguousRetries: 2}
		return &cur, nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.UpdateAuthTokens(ctx, "reauth", gl, func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
		cur.Refresh = domain.RefreshState{ReauthRequired: true, LastError: domain.CodeGrantRevoked}
		return &cur, nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	release := holdPutSlots(t, repo, pool)
	before := repo.PutStats()
	puts := []domain.SealedAuthTokens{repotest.Sample("old", gl, "2"), repotest.Sample("new", gl, "2"), repotest.Sample("reauth", gl, "2")}
	answers := queue(t, repo, puts...)
	release()
	if after := repo.PutStats(); after.Batches != before.Batches+1 || after.Alone != before.Alone {
		t.Fatalf("stats before %+v, after %+v: want one batch, nothing alone", before, after)
	}
	wantVersion := map[domain.UserID]int64{"old": old.Version + 1, "new": 1, "reauth": reauth.Version + 2}
	for i, tok := range puts {
		r := <-answers[i]
		if r.err != nil {
			t.Fatalf("%s: %v", tok.User, r.err)
		}
		got := get(t, repo, tok.User, gl)
		repotest.AssertSameTokens(t, got, tok)
		if got.Refresh != (domain.RefreshState{}) {
			t.Errorf("%s: refresh state %+v, want a clean one", tok.User, got.Refresh)
		}
		if r.row.Version != wantVersion[tok.User] || got.Version != r.row.Version ||
			!r.row.CreatedAt.Equal(got.CreatedAt) || !r.row.UpdatedAt.Equal(got.UpdatedAt) {
			t.Errorf("%s: answered %d %v %v, stored %d %v %v, want version %d", tok.User,
				r.row.Version, r.row.CreatedAt, r.row.UpdatedAt, got.Version, got.CreatedAt, got.UpdatedAt, wantVersion[tok.User])
		}
		if tok.User == "old" && (!got.CreatedAt.Equal(old.CreatedAt) || !got.UpdatedAt.After(old.UpdatedAt)) {
			t.Errorf("old: created %v updated %v, first stored %v %v", got.CreatedAt, got.UpdatedAt, old.CreatedAt, old.UpdatedAt)
		}
	}
	// old's and reauth's first PUTs, reauth's re-authorization, two for
	// each slot, and this batch's three.
	events, _ := repotest.WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 1000, 6+2*postgres.PutBatchesInFlight)
	kinds := map[domain.UserID]domain.EventKind{} // each row's last event
	for _, e := range events {
		kinds[e.User] = e.Kind
	}
	want := map[domain.UserID]domain.EventKind{"old": domain.EventTokensStored, "new": domain.EventTokensStored, "reauth": domain.EventTokensRecovered}
	for u, k := range want {
		if kinds[u] != k {
			t.Errorf("%s: event %q, want %q (all: %+v)", u, kinds[u], k, events)
		}
	}
	assertAuditUsers(t, repo, []domain.UserID{"new", "old", "reauth"})
}

// Two PUTs of one row never share a batch: the second waits for the first
// and takes effect after it, as if the two ran one after the other; also
// when the first's batch fails and it is written alone.
func TestCoalescedPutsOfOneRowInArrivalOrder(t *testing.T) {
	t.Parallel()
	gl := domain.ProviderGitLab
	bad := repotest.Sample("bad", gl, "1")
	bad.KeyID = "" // auth_tokens_key_id_check
	for _, tc := range []struct {
		name  string
		fails bool // a bad row fails the first batch
	}{{"batch written", false}, {"batch failed", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo, pool := coalesceSetup(t)
			release := holdPutSlots(t, repo, pool)
			first, second, other := repotest.Sample("x", gl, "1"), repotest.Sample("x", gl, "2"), repotest.Sample("y", gl, "1")
			puts := []domain.SealedAuthTokens{first, second, other}
			if tc.fails {
				puts = append(puts, bad)
			}
			answers := queue(t, repo, puts...)
			release()
			var versions []int64
			for i, done := range answers {
				r := <-done
				if i == 3 {
					if !errors.Is(r.err, domain.ErrInvalid) {
						t.Errorf("bad row: %v, want ErrInvalid", r.err)
					}
					continue
				}
				if r.err != nil {
					t.Fatal(r.err)
				}
				versions = append(versions, r.row.Version)
			}
			if !slices.Equal(versions, []int64{1, 2, 1}) {
				t.Errorf("versions answered %v, want [1 2 1]: the first PUT of x, then the second", versions)
			}
			repotest.AssertSameTokens(t, get(t, repo, "x", gl), second)
		})
	}
}

// A caller whose context ends while it waits for a batch leaves the queue
// with its context's error (canceled: context.Canceled; past its deadline:
// domain.ErrStorageUnavailable, 503, as a PUT that waited for a connection
// as long), and nothing of it is written.
func TestCoalescedPutGivenUpWhileQueued(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, domain.ErrStorageUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo, pool := coalesceSetup(t)
			release := holdPutSlots(t, repo, pool)
			ctx, cancel := tc.ctx()
			defer cancel()
			done := putAsync(ctx, repo, repotest.Sample("gone", domain.ProviderGitLab, "1"))
			if tc.want == context.Canceled {
				waitFor(t, "the PUT to queue", func() bool { return repo.PutStats().Waiting == 1 })
				cancel()
			}
			if r := <-done; !errors.Is(r.err, tc.want) {
				t.Errorf("given up while queued: %v, want %v", r.err, tc.want)
			}
			if w := repo.PutStats().Waiting; w != 0 {
				t.Errorf("%d PUTs still queued", w)
			}
			release()
			if _, err := repo.GetAuthTokens(context.Background(), "gone", domain.ProviderGitLab); !errors.Is(err, domain.ErrNotFound) {
				t.Errorf("a PUT given up in the queue was stored: %v", err)
			}
		})
	}
}

// Fail-closed audit in a batch: a PUT whose audit event the audit store
// refuses fails with domain.ErrAuditUnavailable and is not stored; the
// others in its batch are stored with their events.
func TestCoalescedPutRefusedAuditFailsAlone(t *testing.T) {
	t.Parallel()
	repo, pool := coalesceSetup(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.user_id = 'refused' THEN RAISE EXCEPTION 'audit store refuses'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit();`); err != nil {
		t.Fatal(err)
	}
	gl := domain.ProviderGitLab
	release := holdPutSlots(t, repo, pool)
	answers := queue(t, repo, repotest.Sample("kept", gl, "1"), repotest.Sample("refused", gl, "1"))
	release()
	if r := <-answers[0]; r.err != nil {
		t.Errorf("PUT beside a refused audit event: %v", r.err)
	}
	if r := <-answers[1]; !errors.Is(r.err, domain.ErrAuditUnavailable) || !errors.Is(r.err, domain.ErrStorageUnavailable) {
		t.Errorf("PUT whose audit event was refused: %v, want ErrAuditUnavailable and ErrStorageUnavailable", r.err)
	}
	if _, err := repo.GetAuthTokens(ctx, "refused", gl); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("the PUT whose audit event was refused was stored: %v", err)
	}
	get(t, repo, "kept", gl)
	assertOutboxUsers(t, repo, []domain.UserID{"kept"})
	assertAuditUsers(t, repo, []domain.UserID{"kept"})
}

// The database gone in the middle of a batch: every caller of the batch
// gets domain.ErrStorageUnavailable (503), as each would have alone, and
// none is retried alone.
func TestCoalescedPutOutageFailsTheBatch(t *testing.T) {
	t.Parallel()
	repo, pool := coalesceSetup(t)
	ctx := context.Background()
	gl := domain.ProviderGitLab
	put(t, repo, repotest.Sample("b-held", gl, "0"))
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // the test's end
	if _, err := holder.Exec(ctx, `SELECT 1 FROM auth_tokens WHERE user_id = 'b-held' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	release := holdPutSlots(t, repo, pool)
	before := repo.PutStats()
	answers := queue(t, repo, repotest.Sample("a-free", gl, "1"), repotest.Sample("b-held", gl, "1"))
	release()
	waitForLockWaiters(t, pool, 1) // the batch, waiting for b-held
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%UpsertAuthTokensBatch%'`); err != nil {
		t.Fatal(err)
	}
	for i, done := range answers {
		if r := <-done; !errors.Is(r.err, domain.ErrStorageUnavailable) {
			t.Errorf("PUT %d of a batch whose connection died: %v, want ErrStorageUnavailable", i, r.err)
		}
	}
	if after := repo.PutStats(); after.Alone != before.Alone {
		t.Errorf("stats before %+v, after %+v: PUTs retried alone after an outage", before, after)
	}
}

// The events feed lists a row's events in the order they took effect,
// also when a batch meets a row another writer changed after the batch's
// snapshot: the batch takes its transaction id at its first lock, before it
// reaches that row, so it must leave the row to a statement of its own
// (with a later id) instead of writing it. The batch of rows a, b, c locks
// a, waits for b (held by an older transaction), and meanwhile a newer
// transaction updates, deletes or inserts c and commits.
func TestCoalescedPutLeavesARowChangedAfterItsSnapshot(t *testing.T) {
	t.Parallel()
	gl := domain.ProviderGitLab
	for _, tc := range []struct {
		name     string
		existing bool               // c exists before
		before   []domain.EventKind // c's events before
		change   string             // what the newer transaction does to c
		kind     domain.EventKind
		version  int64 // c's version once the PUT is done
		ourKind  domain.EventKind
	}{
		{"updated", true, []domain.EventKind{domain.EventTokensStored}, `UPDATE auth_tokens SET reauth_required = true WHERE user_id = 'c'`, domain.EventTokensReauthRequired, 3, domain.EventTokensRecovered},
		{"deleted", true, []domain.EventKind{domain.EventTokensStored}, `DELETE FROM auth_tokens WHERE user_id = 'c'`, domain.EventTokensDeleted, 1, domain.EventTokensStored},
		{"inserted", false, nil, `INSERT INTO auth_tokens (user_id, provider, key_id, access_token) VALUES ('c', 'gitlab', 'k', 'x')`, domain.EventTokensStored, 2, domain.EventTokensStored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo, pool := coalesceSetup(t)
			ctx := context.Background()
			put(t, repo, repotest.Sample("a", gl, "0"))
			put(t, repo, repotest.Sample("b", gl, "0"))
			if tc.existing {
				put(t, repo, repotest.Sample("c", gl, "0"))
			}
			older, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer older.Rollback(ctx) //nolint:errcheck // rolled back below
			if _, err := older.Exec(ctx, `SELECT 1 FROM auth_tokens WHERE user_id = 'b' FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			release := holdPutSlots(t, repo, pool)
			before := repo.PutStats()
			answers := queue(t, repo, repotest.Sample("a", gl, "1"), repotest.Sample("b", gl, "1"), repotest.Sample("c", gl, "1"))
			release()
			waitForLockWaiters(t, pool, 1) // the batch holds a and waits for b
			newer, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := newer.Exec(ctx, tc.change); err != nil {
				t.Fatal(err)
			}
			if _, err := newer.Exec(ctx, `INSERT INTO events (kind, user_id, provider, reason) VALUES ($1, 'c', 'gitlab', '')`, string(tc.kind)); err != nil {
				t.Fatal(err)
			}
			if err := newer.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := older.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			for i, done := range answers {
				if r := <-done; r.err != nil {
					t.Fatalf("PUT %d: %v", i, r.err)
				} else if i == 2 && r.row.Version != tc.version {
					t.Errorf("c answered version %d, want %d", r.row.Version, tc.version)
				}
			}
			after := repo.PutStats()
			if after.Batches != before.Batches+1 || after.Alone != before.Alone+1 {
				t.Errorf("stats before %+v, after %+v: want one batch, and c written alone", before, after)
			}
			repotest.AssertSameTokens(t, get(t, repo, "c", gl), repotest.Sample("c", gl, "1"))
			want := append(tc.before, tc.kind, tc.ourKind)
			events, _ := repotest.WaitEvents(t, repo, domain.EventFilter{UserPrefix: "c"}, domain.EventCursor{}, 100, len(want))
			var kinds []domain.EventKind
			for i, e := range events {
				kinds = append(kinds, e.Kind)
				if i > 0 && e.OccurredAt.Before(events[i-1].OccurredAt) {
					t.Errorf("c's events in feed order: %+v: an event listed before an earlier one", events)
				}
			}
			if !slices.Equal(kinds, want) {
				t.Errorf("c's events in feed order: %v; want %v (the newer transaction's %s before this PUT's %s)", kinds, want, tc.kind, tc.ourKind)
			}
		})
	}
}

// Every acknowledged write is readable: 32 writers, many PUTs each, over
// few rows (so batches and conflicts are the rule), the first ones forced
// into one batch; afterwards each row's versions answered are 1..n without
// a gap or a repeat, and the row holds the values of the PUT answered n.
func TestCoalescedPutsAreReadable(t *testing.T) {
	t.Parallel()
	repo, pool := coalesceSetup(t)
	gl := domain.ProviderGitLab
	const writers, each, rows = 32, 15, 24
	release := holdPutSlots(t, repo, pool)
	var (
		mu       sync.Mutex
		answered = map[domain.UserID]map[int64]string{} // row → version → tag
		wg       sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				user := domain.UserID(fmt.Sprintf("u%02d", (w*7+i)%rows))
				tag := fmt.Sprintf("%d-%d", w, i)
				tok := repotest.Sample(user, gl, tag)
				stored, err := repo.PutAuthTokens(context.Background(), tok, putEvent(tok))
				if err != nil {
					t.Errorf("PUT %s: %v", tag, err)
					return
				}
				mu.Lock()
				if answered[user] == nil {
					answered[user] = map[int64]string{}
				}
				if prev, dup := answered[user][stored.Version]; dup {
					t.Errorf("%s: version %d answered to %s and %s", user, stored.Version, prev, tag)
				}
				answered[user][stored.Version] = tag
				mu.Unlock()
			}
		})
	}
	waitFor(t, "the first PUTs to queue", func() bool { return repo.PutStats().Waiting == writers })
	release()
	wg.Wait()
	total := 0
	for user, versions := range answered {
		got := get(t, repo, user, gl)
		n := int64(len(versions))
		total += len(versions)
		if got.Version != n {
			t.Errorf("%s: %d PUTs answered, stored version %d", user, n, got.Version)
		}
		for v := int64(1); v <= n; v++ {
			if _, ok := versions[v]; !ok {
				t.Errorf("%s: no PUT answered version %d", user, v)
			}
		}
		repotest.AssertSameTokens(t, got, repotest.Sample(user, gl, versions[n]))
	}
	if total != writers*each {
		t.Errorf("%d PUTs answered, want %d", total, writers*each)
	}
	stats := repo.PutStats()
	if stats.Batches == 0 {
		t.Errorf("no batch: %+v", stats)
	}
	t.Logf("group commit: %+v (%.1f PUTs per batch)", stats, float64(stats.BatchedPuts)/float64(max(stats.Batches, 1)))
}

// assertOutboxUsers fails t unless the events feed holds exactly one event
// for each of users (sorted) among the rows not made by holdPutSlots.
func assertOutboxUsers(t *testing.T, repo *postgres.Repository, users []domain.UserID) {
	t.Helper()
	// holdPutSlots' rows have two events each; the feed lists a transaction
	// once every older one in the cluster has ended, so wait for them all.
	events, _ := repotest.WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 1000, len(users)+2*postgres.PutBatchesInFlight)
	var all []domain.UserID
	for _, e := range events {
		all = append(all, e.User)
	}
	wantUsers(t, "outbox events", all, users)
}

// assertAuditUsers fails t unless the audit trail holds exactly one event
// for each of users among the rows not made by holdPutSlots.
func assertAuditUsers(t *testing.T, repo *postgres.Repository, users []domain.UserID) {
	t.Helper()
	events, _, err := repo.ListAuditEvents(context.Background(), domain.AuditFilter{}, ports.AuditCursor{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var all []domain.UserID
	for _, e := range events {
		all = append(all, e.User)
	}
	wantUsers(t, "audit events", all, users)
}

// wantUsers fails t unless all, less holdPutSlots' users, is users
// (sorted), one each; what names what all's users come from.
func wantUsers(t *testing.T, what string, all, users []domain.UserID) {
	t.Helper()
	got := slices.DeleteFunc(all, isSlot)
	slices.Sort(got)
	if !slices.Equal(got, users) {
		t.Errorf("%s for %v, want %v", what, got, users)
	}
}

func isSlot(u domain.UserID) bool { return strings.HasPrefix(string(u), "zz-slot-") }

func put(t *testing.T, repo *postgres.Repository, tok domain.SealedAuthTokens) domain.SealedAuthTokens {
	t.Helper()
	stored, err := repo.PutAuthTokens(context.Background(), tok)
	if err != nil {
		t.Fatalf("PutAuthTokens(%s): %v", tok.User, err)
	}
	return stored
}

func get(t *testing.T, repo *postgres.Repository, u domain.UserID, p domain.Provider) domain.SealedAuthTokens {
	t.Helper()
	got, err := repo.GetAuthTokens(context.Background(), u, p)
	if err != nil {
		t.Fatalf("GetAuthTokens(%s): %v", u, err)
	}
	return got
}

// The batch statement's arrays, NULL elements among them (no refresh
// token, expiries that never come, no obtained time), in each of pgx's
// query modes: simple_protocol sends them as text, the others in binary.
func TestCoalescedPutInEveryQueryExecMode(t *testing.T) {
	t.Parallel()
	dsn := testdb.NewDSN(t)
	gl := domain.ProviderGitLab
	for _, mode := range postgres.QueryExecModes {
		t.Run(mode, func(t *testing.T) {
			pool, err := postgres.NewPool(postgres.Config{URL: dsn, QueryExecMode: mode})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			repo := postgres.New(pool, postgres.Options{})
			bare := repotest.Sample(domain.UserID(mode+"-bare"), gl, "1")
			bare.RefreshToken, bare.RefreshExpiry, bare.AccessExpiry = nil, domain.Never(), domain.Never()
			full := repotest.Sample(domain.UserID(mode+"-full"), gl, "1")
			full.AccessObtainedAt = time.Now().UTC().Truncate(time.Microsecond)
			release := holdPutSlots(t, repo, pool)
			before := repo.PutStats()
			answers := queue(t, repo, bare, full)
			release()
			for _, done := range answers {
				if r := <-done; r.err != nil {
					t.Fatal(r.err)
				}
			}
			if after := repo.PutStats(); after.Batches != before.Batches+1 || after.Alone != before.Alone {
				t.Errorf("stats before %+v, after %+v: want the two PUTs written by one batch", before, after)
			}
			for _, want := range []domain.SealedAuthTokens{bare, full} {
				got := get(t, repo, want.User, gl)
				repotest.AssertSameTokens(t, got, want)
				if !got.AccessObtainedAt.Equal(want.AccessObtainedAt) {
					t.Errorf("%s: obtained at %v, want %v", want.User, got.AccessObtainedAt, want.AccessObtainedAt)
				}
			}
		})
	}
}
