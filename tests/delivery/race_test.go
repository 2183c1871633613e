package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/tokenstore/tokenstore/domain"
)

// TestRacingPutAndDeleteKeepFeedOrder: a PUT and a DELETE of the same
// tokens, sent at the same moment, take effect in some order, and the
// feed (so every webhook receiver) must tell that order: the last event
// of each user's tokens says whether they are stored. A DELETE used to
// take its transaction id before it waited on the row lock of a PUT that
// took its id later, so the feed, ordered by transaction id, listed the
// delete first although it took effect last (tokens.stored last, the
// tokens gone), in about 2% of such races.
func TestRacingPutAndDeleteKeepFeedOrder(t *testing.T) {
	t.Parallel()
	s := newSuite(t)
	c := s.start(setup{})
	svc := c.run.Instances[0].Service
	ctx := context.Background()
	const races, workers = 600, 4

	putAuth := func(user string) error {
		tok := "at-race-" + randHex(8)
		s.secrets.add(tok)
		_, err := svc.PutAuthTokens(ctx, domain.AuthTokens{User: domain.UserID(user), Provider: domain.ProviderGitLab, AccessToken: domain.NewSecret(tok)})
		return err
	}
	putOffline := func(user string) error {
		tok := "offline-race-" + randHex(8)
		s.secrets.add(tok)
		_, err := svc.PutOfflineToken(ctx, domain.OfflineToken{User: domain.UserID(user), Token: domain.NewSecret(tok)})
		return err
	}
	kinds := []struct {
		name   string
		put    func(user string) error
		delete func(user string) error
		table  string
	}{
		{"auth tokens", putAuth, func(user string) error {
			return svc.DeleteAuthTokens(ctx, domain.UserID(user), domain.ProviderGitLab)
		}, "auth_tokens"},
		{"offline token", putOffline, func(user string) error { return svc.DeleteOfflineToken(ctx, domain.UserID(user)) }, "offline_tokens"},
	}
	for k, kind := range kinds {
		var wg sync.WaitGroup
		errs := make(chan error, races)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < races; i += workers {
					user := fmt.Sprintf("race%d-%d", k, i)
					if err := kind.put(user); err != nil {
						errs <- err
						return
					}
					start := make(chan struct{})
					var race sync.WaitGroup
					race.Go(func() {
						<-start
						if err := kind.put(user); err != nil {
							errs <- err
						}
					})
					race.Go(func() {
						<-start
						// The PUT may have been first: then there is nothing to delete.
						if err := kind.delete(user); err != nil && !errors.Is(err, domain.ErrNotFound) {
							errs <- err
						}
					})
					close(start)
					race.Wait()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("%s: %v", kind.name, err)
		}
	}

	last := map[string]string{} // user → the kind of its last event in the feed
	for _, e := range c.feedAll(t) {
		last[e.User] = e.Kind
	}
	stored := map[string]bool{}
	for _, kind := range kinds {
		rows, err := c.run.DB.Query(ctx, `SELECT user_id FROM `+kind.table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var user string
			if err := rows.Scan(&user); err != nil {
				t.Fatal(err)
			}
			stored[user] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	wrong := 0
	for k := range kinds {
		for i := range races {
			user := fmt.Sprintf("race%d-%d", k, i)
			deleted := last[user] == string(domain.EventTokensDeleted) || last[user] == string(domain.EventOfflineTokenDeleted)
			if deleted == stored[user] {
				wrong++
				if wrong <= 5 {
					state := "gone"
					if stored[user] {
						state = "stored"
					}
					t.Errorf("%s: the feed's last event is %s, and the tokens are %s", user, last[user], state)
				}
			}
		}
	}
	if wrong > 0 {
		t.Errorf("in %d of %d races the feed's last event contradicts the stored state", wrong, len(kinds)*races)
	}
}
