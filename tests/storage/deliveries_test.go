package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/postgres"
	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/tests/repotest"
)

// CountDeliveries counts the deliveries not delivered per target and
// state, with their oldest event's age: the delivery gauges' query.
func TestCountDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo, _ := setup(t, postgres.Options{})
	gl := domain.ProviderGitLab
	if err := repo.RegisterEventTarget(ctx, "crm", "https://crm.example/h"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []domain.UserID{"ann", "bob", "cid"} {
		if _, err := repo.PutAuthTokens(ctx, repotest.Sample(u, gl, "1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.DeleteAuthTokensRevoking(ctx, "cid", gl); err != nil {
		t.Fatal(err)
	}
	var claimed []domain.Delivery
	deadline := time.Now().Add(30 * time.Second)
	for len(claimed) < 3 && time.Now().Before(deadline) {
		if _, err := repo.FanOutEvents(ctx, "crm", []domain.EventKind{domain.EventTokensStored}, 100); err != nil {
			t.Fatal(err)
		}
		ds, err := repo.ClaimDeliveries(ctx, "crm", "i", time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		claimed = append(claimed, ds...)
	}
	if len(claimed) != 3 {
		t.Fatalf("claimed %d deliveries, want 3", len(claimed))
	}
	if _, err := repo.FinishDelivery(ctx, claimed[0], domain.DeliveryOutcome{State: domain.DeliveryDelivered}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.FinishDelivery(ctx, claimed[1], domain.DeliveryOutcome{State: domain.DeliveryFailed, Error: "answered HTTP 500"}); err != nil {
		t.Fatal(err)
	}
	got, err := repo.CountDeliveries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.DeliveryCount{{Target: "crm", State: domain.DeliveryFailed, Count: 1}, {Target: "crm", State: domain.DeliveryPending, Count: 1},
		{Target: domain.RevocationTarget, State: domain.DeliveryPending, Count: 1}}
	if len(got) != len(want) {
		t.Fatalf("CountDeliveries = %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		if g.Target != want[i].Target || g.State != want[i].State || g.Count != want[i].Count || g.Oldest < 0 || g.Oldest > time.Minute {
			t.Errorf("group %d = %+v, want %+v aged under a minute", i, g, want[i])
		}
	}
}
