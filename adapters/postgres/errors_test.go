package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/tokenstore/tokenstore/domain"
)

// safeToRetry is how pgconn marks an error that happened before anything
// was sent (its own types are unexported).
type safeToRetry struct{ error }

func (safeToRetry) SafeToRetry() bool { return true }
func (e safeToRetry) Unwrap() error   { return e.error }

// timeoutErr is a net.Error that timed out, as a read deadline gives.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func pgErr(code string) error {
	return fmt.Errorf("driver: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: "server said " + code})
}

func TestInterpretError(t *testing.T) {
	t.Parallel()
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}
	}
	const (
		bug = iota
		notFound
		busy
		conflict
		invalid
		unavailableNotApplied // 503, nothing was applied, whatever the call
		unavailableSentWrite  // 503; a write that commits by itself may have been applied
		canceled
		pooler // 500 (a configuration error) naming the setting that fixes it
	)
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"no rows", pgx.ErrNoRows, notFound},
		{"lock timeout 55P03", pgErr("55P03"), busy},
		{"deadlock 40P01", pgErr("40P01"), busy},
		{"serialization failure 40001", pgErr("40001"), busy},
		{"unique violation 23505", pgErr("23505"), conflict},
		{"check violation 23514", pgErr("23514"), invalid},
		{"string too long 22001", pgErr("22001"), invalid},
		{"statement timeout 57014", pgErr("57014"), unavailableNotApplied},
		{"admin shutdown 57P01", pgErr("57P01"), unavailableNotApplied},
		{"crash shutdown 57P02", pgErr("57P02"), unavailableNotApplied},
		{"cannot connect now 57P03", pgErr("57P03"), unavailableNotApplied},
		{"idle session timeout 57P05", pgErr("57P05"), unavailableNotApplied},
		{"idle in transaction timeout 25P03", pgErr("25P03"), unavailableNotApplied},
		{"too many connections 53300", pgErr("53300"), unavailableNotApplied},
		{"out of memory 53200", pgErr("53200"), unavailableNotApplied},
		{"connection failure 08006", pgErr("08006"), unavailableNotApplied},
		{"prepared statement missing 26000 (a pooler)", pgErr("26000"), pooler},
		{"prepared statement exists 42P05 (a pooler)", pgErr("42P05"), pooler},
		{"syntax error 42601 is a bug", pgErr("42601"), bug},
		{"undefined column 42703 is a bug", pgErr("42703"), bug},
		{"scan error is a bug", errors.New("can't scan into dest[0]"), bug},
		{"connection refused", refusedConnect(t), unavailableNotApplied},
		{"refused by errno", fmt.Errorf("dial: %w", opErr(syscall.ECONNREFUSED)), unavailableSentWrite},
		{"connection reset mid-query", fmt.Errorf("failed to receive message: %w", opErr(syscall.ECONNRESET)), unavailableSentWrite},
		{"broken pipe", opErr(syscall.EPIPE), unavailableSentWrite},
		{"unexpected EOF mid-query", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), unavailableSentWrite},
		{"EOF", io.EOF, unavailableSentWrite},
		{"read deadline", fmt.Errorf("query: %w", timeoutErr{}), unavailableSentWrite},
		{"context deadline during a call", fmt.Errorf("timeout: %w", context.DeadlineExceeded), unavailableSentWrite},
		{"context deadline before sending", safeToRetry{context.DeadlineExceeded}, unavailableNotApplied},
		{"conn closed before sending", safeToRetry{pgconn.ErrConnClosed}, unavailableNotApplied},
		{"conn closed", pgconn.ErrConnClosed, unavailableSentWrite},
		{"closed pool", puddle.ErrClosedPool, unavailableSentWrite},
		{"net.ErrClosed", net.ErrClosed, unavailableSentWrite},
		{"client went away", fmt.Errorf("query: %w", context.Canceled), canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, e := range []effect{noEffect, mayHaveApplied} {
				got := interpretError(tt.err, e)
				want := tt.want
				if want == unavailableSentWrite && e == noEffect {
					want = unavailableNotApplied
				}
				is := func(target error) bool { return errors.Is(got, target) }
				var ok bool
				switch want {
				case bug:
					ok = !is(domain.ErrStorageUnavailable) && !is(domain.ErrBusy) && !is(domain.ErrConflict) &&
						!is(domain.ErrInvalid) && !is(domain.ErrNotFound)
				case notFound:
					ok = is(domain.ErrNotFound)
				case busy:
					ok = is(domain.ErrBusy) && !is(domain.ErrOutcomeUnknown)
				case conflict:
					ok = is(domain.ErrConflict)
				case invalid:
					ok = is(domain.ErrInvalid)
				case unavailableNotApplied:
					ok = is(domain.ErrStorageUnavailable) && !is(domain.ErrOutcomeUnknown)
				case unavailableSentWrite:
					ok = is(domain.ErrStorageUnavailable) && is(domain.ErrOutcomeUnknown)
				case canceled:
					ok = is(context.Canceled) && !is(domain.ErrStorageUnavailable)
				case pooler:
					ok = !is(domain.ErrStorageUnavailable) && strings.Contains(got.Error(), "database.query_exec_mode") && is(tt.err)
				}
				if !ok {
					t.Errorf("effect %d: interpretError(%v) = %v, want class %d", e, tt.err, got, want)
				}
				if (want == bug || want == unavailableNotApplied || want == unavailableSentWrite) && !errors.Is(got, tt.err) {
					t.Errorf("effect %d: the driver error left the chain: %v", e, got)
				}
			}
		})
	}
	if interpretError(nil, mayHaveApplied) != nil {
		t.Error("nil is not nil")
	}
}

// refusedConnect is pgconn's error for a port nobody listens on.
func refusedConnect(t *testing.T) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	_ = l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pgconn.Connect(ctx, fmt.Sprintf("postgres://u:p@127.0.0.1:%d/d?sslmode=disable", addr.Port))
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connecting to a closed port gave %v, want a *pgconn.ConnectError", err)
	}
	return err
}

func TestWhatPostgresSaid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		err  error
		want string
	}{
		{&pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "u"`},
			`password authentication failed for user "u" (SQLSTATE 28P01)`},
		{fmt.Errorf("x: %w", &pgconn.PgError{Code: "3D000", Message: `database "nope" does not exist`}),
			`database "nope" does not exist (SQLSTATE 3D000)`},
		{fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}),
			"connection refused"},
		{context.DeadlineExceeded, "no answer within 3s (the server is down, frozen or unreachable)"},
	}
	for _, tt := range tests {
		if got := whatPostgresSaid(ctx, tt.err, 3*time.Second); got != tt.want {
			t.Errorf("whatPostgresSaid(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
