package app_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// dbClock is a ports.DatabaseClock: the system clock plus offset, answering
// after delays[i] for the i-th read (then at once).
type dbClock struct {
	offset time.Duration
	err    error

	mu     sync.Mutex
	delays []time.Duration
	reads  int
}

func (d *dbClock) DatabaseNow(context.Context) (time.Time, error) {
	d.mu.Lock()
	var delay time.Duration
	if d.reads < len(d.delays) {
		delay = d.delays[d.reads]
	}
	d.reads++
	d.mu.Unlock()
	if d.err != nil {
		return time.Time{}, d.err
	}
	time.Sleep(delay / 2)
	now := time.Now().Add(d.offset)
	time.Sleep(delay / 2)
	return now, nil
}

// skewed is a fixture whose service clock is the system clock plus ahead;
// the in-memory repository keeps the system clock: the database's.
func skewed(t *testing.T, ahead time.Duration, cfg app.Config) *fixture {
	cfg.Now = func() time.Time { return time.Now().Add(ahead) }
	return newFixture(t, cfg)
}

// measure runs a SkewMonitor of f's service against the repository's clock
// (the system clock) once, and returns what it logged.
func (f *fixture) measure(ahead time.Duration) string {
	f.t.Helper()
	var log bytes.Buffer
	m := app.NewSkewMonitor(f.svc.Clock(), &dbClock{offset: 0}, slog.New(slog.NewTextHandler(&log, nil)))
	if err := m.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	if err := m.Stop(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	if skew, ok := f.svc.Clock().Skew(); !ok || (skew+ahead).Abs() > 100*time.Millisecond {
		f.t.Fatalf("measured skew %v (measured %v), want about %v", skew, ok, -ahead)
	}
	return log.String()
}

// TestSkewMonitorMeasures: the skew is the database's clock minus the
// service's, from the exchange with the shortest round trip; a skew above
// a second is logged as a warning.
func TestSkewMonitorMeasures(t *testing.T) {
	t.Parallel()
	for _, offset := range []time.Duration{-3 * time.Minute, 0, 3 * time.Minute} {
		f := newFixture(t, app.Config{})
		db := &dbClock{offset: offset, delays: []time.Duration{80 * time.Millisecond, 40 * time.Millisecond}}
		var log bytes.Buffer
		m := app.NewSkewMonitor(f.svc.Clock(), db, slog.New(slog.NewTextHandler(&log, nil)))
		skew, uncertainty, err := m.Measure(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if (skew-offset).Abs() > 20*time.Millisecond || uncertainty > 20*time.Millisecond {
			t.Errorf("offset %v: measured %v ± %v; want the quick third exchange's estimate", offset, skew, uncertainty)
		}
		if got, ok := f.svc.Clock().Skew(); !ok || got != skew {
			t.Errorf("offset %v: the clock holds %v (%v), want %v", offset, got, ok, skew)
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := m.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if warned := strings.Contains(log.String(), "level=WARN"); warned != (offset != 0) {
			t.Errorf("offset %v: warned %v; log: %s", offset, warned, log.String())
		}
	}
}

// TestSkewMonitorFailureKeepsServing: a measurement that fails is logged,
// does not fail start-up, and leaves the service's clock alone in use.
func TestSkewMonitorFailureKeepsServing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, app.Config{})
	var log bytes.Buffer
	m := app.NewSkewMonitor(f.svc.Clock(), &dbClock{err: errors.New("database down")}, slog.New(slog.NewTextHandler(&log, nil)))
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	_ = m.Stop(context.Background())
	if _, ok := f.svc.Clock().Skew(); ok {
		t.Error("a skew is reported although none was measured")
	}
	if !strings.Contains(log.String(), "could not measure the database's clock") {
		t.Errorf("no warning; log: %s", log.String())
	}
}

// TestDatabaseClockBehind is the case: with the database's clock 3
// minutes behind the service's, GET returned a token whose expiry was
// already 31 s past by the service's clock (the re-check under the lock
// judged it by the database's alone). Now it is refreshed, and listed as
// expired.
func TestDatabaseClockBehind(t *testing.T) {
	t.Parallel()
	const ahead = 3 * time.Minute
	f := skewed(t, ahead, app.Config{RefreshMargin: 10 * time.Second})
	f.measure(ahead)
	f.put("alice", gitlab, ahead-31*time.Second, "r") // valid by the database's clock
	list, err := f.svc.ListProviders(context.Background(), "alice")
	if err != nil || len(list) != 1 || list[0].State != domain.StateExpired {
		t.Errorf("listing %+v, %v; want expired (by the service's clock)", list, err)
	}
	got, err := f.svc.GetAccessToken(context.Background(), "alice", gitlab)
	if err != nil || got.Token.Reveal() != "access-1" {
		t.Fatalf("GetAccessToken = %q, %v; want a refreshed token", got.Token.Reveal(), err)
	}
	if got.Expiry.Expired(time.Now().Add(ahead)) {
		t.Errorf("handed out a token expired by the service's clock: %v", got.Expiry)
	}
	f.wantCalls(1)
	// Unmeasured (the measurement failed): the re-check still judges by both.
	g := skewed(t, ahead, app.Config{RefreshMargin: 10 * time.Second})
	g.put("bob", gitlab, ahead-31*time.Second, "r")
	if got, err := g.get("bob", gitlab); err != nil || got != "access-1" {
		t.Fatalf("unmeasured: GetAccessToken = %q, %v; want a refreshed token", got, err)
	}
}

// TestDatabaseClockAhead: with the service's clock 3 minutes behind the
// database's, the read without a lock judged a token valid that the
// database's clock says expired 31 s ago, and served it. With the measured
// skew it estimates the database's clock and refreshes.
func TestDatabaseClockAhead(t *testing.T) {
	t.Parallel()
	const ahead = -3 * time.Minute
	f := skewed(t, ahead, app.Config{RefreshMargin: 10 * time.Second})
	f.measure(ahead)
	f.put("alice", gitlab, -31*time.Second, "r")
	if got, err := f.get("alice", gitlab); err != nil || got != "access-1" {
		t.Fatalf("GetAccessToken = %q, %v; want a refreshed token", got, err)
	}
	f.wantCalls(1)
}

// TestLeasesStayOnTheDatabaseClock: a service clock 3 minutes ahead must
// not take another instance's live lease for a lapsed one (which would
// force the user to reconnect): the caller waits for it instead.
func TestLeasesStayOnTheDatabaseClock(t *testing.T) {
	t.Parallel()
	const ahead = 3 * time.Minute
	f := skewed(t, ahead, app.Config{RefreshMargin: 10 * time.Second, Refresh: app.RefreshConfig{WaitTimeout: 100 * time.Millisecond}})
	f.measure(ahead)
	f.put("alice", gitlab, time.Minute, "r") // expired by the service's clock only
	f.setRefresh("alice", gitlab, domain.RefreshState{LeaseOwner: "other/1", LeaseUntil: time.Now().Add(30 * time.Second)})
	_, err := f.get("alice", gitlab)
	wantErr(t, err, domain.ErrUnavailable)
	if row := f.row("alice", gitlab); row.Refresh.ReauthRequired || row.Refresh.LeaseOwner != "other/1" {
		t.Errorf("refresh state %+v; want the other instance's lease untouched", row.Refresh)
	}
	f.wantCalls(0)
}

// TestBackOffOnTheDatabaseClock: a back-off is judged by the database's
// clock (the re-check under the lock, the worker's claim), so it must end
// on it: set by a service clock 3 minutes ahead, a 10 s back-off lasted
// 3m10s (and, 3 minutes behind, none at all). Retry-After still counts on
// the service's clock.
func TestBackOffOnTheDatabaseClock(t *testing.T) {
	t.Parallel()
	for _, ahead := range []time.Duration{3 * time.Minute, -3 * time.Minute} {
		f := skewed(t, ahead, app.Config{Refresh: app.RefreshConfig{RetryAfter: 10 * time.Second}})
		f.measure(ahead)
		f.provider.setAnswer(failing(domain.ErrProviderUnavailable))
		f.put("alice", gitlab, -4*time.Minute, "r") // expired by both clocks
		_, err := f.get("alice", gitlab)
		var retry *domain.RetryAtError
		if !errors.As(err, &retry) {
			t.Fatalf("ahead %v: %v, want a back-off", ahead, err)
		}
		if d := retry.At.Sub(time.Now().Add(ahead)); d < 9*time.Second || d > 11*time.Second {
			t.Errorf("ahead %v: Retry-After instant %v from the service's clock, want 10s", ahead, d)
		}
		if d := time.Until(f.row("alice", gitlab).Refresh.NextAttemptAt); d < 9*time.Second || d > 11*time.Second {
			t.Errorf("ahead %v: the back-off ends %v from the database's clock, want 10s", ahead, d)
		}
		// In back-off: answered without the provider, with the same instant.
		if _, err := f.get("alice", gitlab); !errors.As(err, &retry) || retry.At.Sub(time.Now().Add(ahead)) > 11*time.Second {
			t.Errorf("ahead %v: second read %v", ahead, err)
		}
		f.wantCalls(1)
	}
}

// TestReportedExpiryOnTheServiceClock: for a provider that revokes the
// previous access token, the expiry handed out is tokenstore's own next
// refresh. With the database's clock 3 minutes ahead, the rule reaches that
// refresh 3 minutes earlier on the service's clock, so the reported expiry
// is 3 minutes earlier too; with the database's clock behind, it stays.
func TestReportedExpiryOnTheServiceClock(t *testing.T) {
	t.Parallel()
	const margin = 10 * time.Second
	for _, ahead := range []time.Duration{-3 * time.Minute, 3 * time.Minute} {
		f := skewed(t, ahead, app.Config{RefreshMargin: margin})
		f.provider.revokes = true
		f.measure(ahead)
		f.put("alice", gitlab, time.Hour, "r")
		expiry, _ := f.row("alice", gitlab).AccessExpiry.Time()
		tok, err := f.svc.GetAccessToken(context.Background(), "alice", gitlab)
		if err != nil {
			t.Fatalf("ahead %v: GetAccessToken: %v", ahead, err)
		}
		want := expiry.Add(-margin) // the next refresh, on the database's clock
		if ahead < 0 {
			want = want.Add(ahead) // the database is -ahead ahead: earlier on the service's clock
		}
		if got, _ := tok.Expiry.Time(); (got.Sub(want)).Abs() > 200*time.Millisecond {
			t.Errorf("ahead %v: reported expiry %v, want about %v", ahead, got, want)
		}
	}
}
