package cli

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tokenstore/tokenstore/adapters/httpapi"
	"github.com/tokenstore/tokenstore/app"
)

// noticeEvery is how often, at most, a failing log stream is reported on
// the other standard stream.
const noticeEvery = time.Minute

// LogStream is the server's log destination. Logging must never stop the
// service: a write that fails (a closed pipe, a full disk) is counted and
// reported instead, and the caller goes on. The request log is operational
// output, not an audit trail: the audit trail of a later issue is written
// elsewhere and fails closed on its own terms; it must not depend on this
// stream.
//
// A failure is reported three ways: the count and the last error on
// /readyz (see readiness), and a line on the notice stream at most once per
// noticeEvery (the other standard stream: logs go to stderr, notices to
// stdout, so one broken stream does not silence both).
type LogStream struct {
	out, notice io.Writer
	now         func() time.Time

	mu         sync.Mutex
	failures   int64
	lastErr    string
	lastNotice time.Time
}

// NewLogStream returns a LogStream writing to out and reporting its
// failures on notice.
func NewLogStream(out, notice io.Writer) *LogStream {
	return &LogStream{out: out, notice: notice, now: time.Now}
}

// Write writes p whole or counts a failure; it returns the failure to the
// log handler, which drops it (slog.Logger ignores handler errors).
func (s *LogStream) Write(p []byte) (int, error) {
	n, err := s.out.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.failed(err)
	}
	return n, err
}

func (s *LogStream) failed(err error) {
	s.mu.Lock()
	s.failures++
	s.lastErr = err.Error()
	n, now := s.failures, s.now()
	report := s.lastNotice.IsZero() || now.Sub(s.lastNotice) >= noticeEvery
	if report {
		s.lastNotice = now
	}
	s.mu.Unlock()
	if report {
		// Best effort: the notice stream may be broken too.
		_, _ = fmt.Fprintf(s.notice, "tokenstore: %s: writing the log failed (%d lines lost so far): %v; the service keeps running (reported at most once a minute, and on /readyz)\n",
			now.UTC().Format(time.RFC3339), n, err)
	}
}

// Failures returns the number of log lines lost and the last error.
func (s *LogStream) Failures() (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures, s.lastErr
}

// ignoreBrokenPipes makes a write to a closed pipe fail with EPIPE instead
// of killing the process: by default a Go program that writes to a broken
// pipe on file descriptor 1 or 2 dies of SIGPIPE (see os/signal), so the
// first log line after a log collector went away would stop the server.
// Only `serve` calls it: a command such as `tokenstore keys list | head`
// should still end quietly the Unix way.
func ignoreBrokenPipes() { signal.Ignore(syscall.SIGPIPE) }

// readiness is the /readyz check: the database and the keyring decide
// whether the instance is ready; a failing log stream does not make it unready (the
// tokens it serves are right, and taking every instance out of rotation
// because a log collector is gone would turn a logging problem into an
// outage), but the answer says so.
type readiness struct {
	db    httpapi.Checker
	keys  httpapi.Checker // every key id of a stored value is in the keyring
	logs  *LogStream      // nil when the logs go to a test's buffer
	clock *app.Clock      // nil in tests that build a readiness without one
	audit *app.Auditor
}

var _ httpapi.ReadinessDetails = readiness{}

// Check: the database answers at the current schema, then (only then: the
// tables must exist) the keyring opens every stored value (app.CheckKeyring:
// one index probe per distinct key id and table per probe, and a count of
// the missing keys' rows only when some are missing).
func (r readiness) Check(ctx context.Context) error {
	if err := r.db.Check(ctx); err != nil {
		return err
	}
	return r.keys.Check(ctx)
}

// Details reports the log stream's failures, if any, the database
// clock's skew once measured, and the audit trail's mode and failures
// (app.Auditor.Details).
func (r readiness) Details() map[string]any {
	d := r.audit.Details()
	if r.clock != nil {
		if skew, ok := r.clock.Skew(); ok {
			d["database_clock_skew_seconds"] = skew.Round(time.Millisecond).Seconds()
		}
	}
	if r.logs == nil {
		return d
	}
	if n, last := r.logs.Failures(); n > 0 {
		d["log_write_failures"], d["log_last_error"] = n, last
	}
	return d
}
