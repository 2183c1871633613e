package storage_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/repotest"
)

// An event exists if and only if its change committed: an outbox that
// refuses the event fails the write and leaves the row as it was, and a
// write that fails leaves no event.
func TestEventsCommitWithTheirChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo, pool := setup(t, postgres.Options{})
	gl := domain.ProviderGitLab
	if _, err := repo.PutAuthTokens(ctx, repotest.Sample("refused", gl, "1")); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.user_id = 'refused' THEN RAISE EXCEPTION 'outbox refuses'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_event BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_event();
		CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.user_id = 'row-refused' THEN RAISE EXCEPTION 'table refuses'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_row BEFORE INSERT OR UPDATE ON auth_tokens FOR EACH ROW EXECUTE FUNCTION refuse_row();`); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PutAuthTokens(ctx, repotest.Sample("refused", gl, "2")); err == nil {
		t.Error("PutAuthTokens succeeded though its event was refused")
	}
	if err := repo.DeleteAuthTokens(ctx, "refused", gl); err == nil {
		t.Error("DeleteAuthTokens succeeded though its event was refused")
	}
	if _, err := repo.PutOfflineToken(ctx, domain.SealedOfflineToken{User: "refused", KeyID: "k", Token: []byte("x")}); err == nil {
		t.Error("PutOfflineToken succeeded though its event was refused")
	}
	if _, err := repo.UpdateAuthTokens(ctx, "refused", gl, func(cur domain.SealedAuthTokens, _ time.Time) (*domain.SealedAuthTokens, []domain.AuditEvent, error) {
		cur.Refresh = domain.RefreshState{ReauthRequired: true, LastError: domain.CodeGrantRevoked}
		return &cur, nil, nil
	}); err == nil {
		t.Error("UpdateAuthTokens marked the tokens for re-authorization though its event was refused")
	}
	got, err := repo.GetAuthTokens(ctx, "refused", gl)
	if err != nil || string(got.AccessToken) != "sealed-access-1" || got.Refresh.ReauthRequired {
		t.Errorf("after the refused writes: %+v, %v; want the first tokens unchanged", got, err)
	}
	if _, err := repo.GetOfflineToken(ctx, "refused"); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("offline token after its refused PUT: %v", err)
	}
	if _, err := repo.PutAuthTokens(ctx, repotest.Sample("row-refused", gl, "1")); err == nil {
		t.Error("PutAuthTokens succeeded though the table refused the row")
	}
	events, _ := repotest.WaitEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 100, 1)
	if len(events) != 1 || events[0].User != "refused" || events[0].Kind != domain.EventTokensStored {
		t.Errorf("events: %+v; want only the first PUT's", events)
	}
}

// The feed never skips an event: writers commit in an order unrelated to
// the order their events were inserted in (raw transactions that insert an
// event, then wait a random while, beside the repository's writes), and a
// reader paging through the feed meanwhile must, at the end, have seen
// every event exactly once, in the order a fresh read gives. Ordering by
// the insert-time id alone fails this within a few rounds.
func TestEventFeedNeverSkips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo, pool := setup(t, postgres.Options{})
	const rounds, writers, perWriter = 5, 6, 15
	for round := range rounds {
		stop := make(chan struct{})
		var (
			mu   sync.Mutex // guards read
			read []domain.Event
		)
		readerDone := make(chan error)
		after := domain.EventCursor{}
		if round > 0 {
			_, after = repotest.ListAllEvents(t, repo, domain.EventFilter{}, domain.EventCursor{}, 1000)
		}
		start := after
		go func() {
			for {
				page, next, err := repo.ListEvents(ctx, domain.EventFilter{}, after, 7)
				if err != nil {
					readerDone <- err
					return
				}
				mu.Lock()
				read, after = append(read, page...), next
				mu.Unlock()
				if len(page) == 0 {
					select {
					case <-stop:
						readerDone <- nil
						return
					default:
					}
				}
			}
		}()
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					user := domain.UserID(fmt.Sprintf("r%d-w%d-%d", round, w, i))
					var err error
					if (w+i)%2 == 0 {
						err = slowEvent(ctx, pool, user)
					} else {
						_, err = repo.PutAuthTokens(ctx, repotest.Sample(user, domain.ProviderGitLab, "1"))
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		// Every writer has committed: the reader catches up once the feed
		// lists them all, then stops at its next empty page.
		all, _ := repotest.WaitEvents(t, repo, domain.EventFilter{}, start, 1000, writers*perWriter)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			n := len(read)
			mu.Unlock()
			if n >= len(all) {
				break
			}
		}
		close(stop)
		if err := <-readerDone; err != nil {
			t.Fatal(err)
		}
		if len(all) != writers*perWriter {
			t.Fatalf("round %d: the feed lists %d events, want %d", round, len(all), writers*perWriter)
		}
		got, want := cursors(read), cursors(all)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: the reader saw %d events, the feed holds %d: skipped %v",
				round, len(got), len(want), missing(want, got))
		}
	}
}

// slowEvent inserts an event in a transaction that stays open a random
// while, so transactions that inserted later commit first.
func slowEvent(ctx context.Context, pool *pgxpool.Pool, user domain.UserID) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit: a no-op
	if _, err := tx.Exec(ctx, `INSERT INTO events (kind, user_id, provider, reason) VALUES ('tokens.stored', $1, 'gitlab', '')`, string(user)); err != nil {
		return err
	}
	time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	return tx.Commit(ctx)
}

func cursors(events []domain.Event) []domain.EventCursor {
	out := make([]domain.EventCursor, len(events))
	for i, e := range events {
		out[i] = e.Cursor
	}
	return out
}

func missing(want, got []domain.EventCursor) []domain.EventCursor {
	var out []domain.EventCursor
	for _, c := range want {
		if !slices.Contains(got, c) {
			out = append(out, c)
		}
	}
	return out
}
