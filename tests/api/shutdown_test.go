package api_test

// Graceful shutdown: Stop drains in-flight requests.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
	"github.com/tokenstore/tokenstore/domain"
)

// hangLimit bounds waits for things that must happen eventually; reaching it
// means a hang, not slowness.
const hangLimit = 60 * time.Second

func TestStopDrainsInFlightRequest(t *testing.T) {
	t.Parallel()
	inst := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangLimit)
	defer cancel()
	user, provider := "drain-user", "gitlab"
	path := tokensPath(user, provider)
	wantStatus(t, inst.do("PUT", path, callerAll, map[string]any{"access_token": "old-access"}), http.StatusOK)

	// Hold the row lock so the next PUT's upsert waits inside the handler.
	tx, err := inst.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	var lockerPID int32
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&lockerPID); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM auth_tokens WHERE user_id = $1 AND provider = $2 FOR UPDATE", user, provider); err != nil {
		t.Fatal(err)
	}

	newAccess, newRefresh := uniq("drained-access-"), uniq("drained-refresh-")
	putDone := make(chan exchange, 1)
	go func() {
		putDone <- inst.sendAsync(ctx, "PUT", path, callerAll,
			map[string]any{"access_token": newAccess, "refresh_token": newRefresh, "expires_in": 3600})
	}()

	// The PUT is in flight once its session waits for our lock.
	eventually(t, "the PUT to wait on the row lock", func() (bool, error) {
		select {
		case x := <-putDone:
			putDone <- x
			return false, errors.New("the PUT finished while the row was locked")
		default:
		}
		var waiting int
		err := inst.pool.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'
			  AND $1::int = ANY(pg_blocking_pids(pid))`, lockerPID).Scan(&waiting)
		return waiting > 0, err
	})

	stopDone := make(chan error, 1)
	go func() { stopDone <- inst.app.Stop(ctx) }()

	// Stop has begun once the listener is closed: new connections fail.
	addr := strings.TrimPrefix(inst.base, "http://")
	eventually(t, "Stop to close the listener", func() (bool, error) {
		select {
		case err := <-stopDone:
			return false, errors.New("Stop returned while a request was in flight (err: " + errString(err) + ")")
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return true, nil
		}
		_ = c.Close()
		return false, nil
	})
	select {
	case err := <-stopDone:
		t.Fatalf("Stop returned before the in-flight request finished (err: %v)", err)
	default:
	}

	// Release the lock: the PUT completes, then Stop returns.
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var x exchange
	select {
	case x = <-putDone:
	case <-time.After(hangLimit):
		t.Fatal("the in-flight PUT never finished after the lock was released")
	}
	r := checkExchange(t, x)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("in-flight PUT during shutdown = %d %s, want 200", r.StatusCode, r.body)
	}
	select {
	case err := <-stopDone:
		if err != nil {
			t.Fatalf("Stop = %v, want nil", err)
		}
	case <-time.After(hangLimit):
		t.Fatal("Stop never returned after the in-flight request finished")
	}

	// The drained PUT's values are what is stored.
	var keyID string
	var accessCol, refreshCol []byte
	if err := inst.pool.QueryRow(ctx, "SELECT key_id, access_token, refresh_token FROM auth_tokens WHERE user_id = $1", user).
		Scan(&keyID, &accessCol, &refreshCol); err != nil {
		t.Fatal(err)
	}
	if a, rt := inst.decryptColumn(t, app.AccessTokenPlace(domain.UserID(user), "gitlab"), keyID, accessCol),
		inst.decryptColumn(t, app.RefreshTokenPlace(domain.UserID(user), "gitlab"), keyID, refreshCol); a != newAccess || rt != newRefresh {
		t.Errorf("stored tokens %q, %q; want the drained PUT's %q, %q", a, rt, newAccess, newRefresh)
	}

	// Stopping again (setup's cleanup does too) is harmless.
	if err := inst.app.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the server still accepts connections after Stop")
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestServerStopTwiceReturns: a second httpapi.Server.Stop returns at once
// (a regression test: it once waited for a result the first Stop had
// already taken). Through fx this is unreachable, since fx.App.Stop is a
// no-op once stopped, but Server is exported.
func TestServerStopTwiceReturns(t *testing.T) {
	t.Parallel()
	auth, err := httpapi.NewAuthenticator(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpapi.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	srv := httpapi.NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, auth, nil)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatalf("first Stop = %v", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done <- srv.Stop(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("second Stop = %v, want nil", err)
		}
	case <-time.After(hangLimit / 3):
		t.Fatal("second Server.Stop never returned, even past its context's deadline: " +
			"it waits on the done channel the first Stop already drained")
	}
}
