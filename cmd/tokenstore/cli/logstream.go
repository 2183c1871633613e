package cli

import (
	"bytes"
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

// Buffering of the log stream (see LogStream): lines wait at most
// logFlushEvery, and at most logBufferSize bytes wait.
// logFlushEvery is a variable for the tests only (export_test.go).
var logFlushEvery = 100 * time.Millisecond

const logBufferSize = 64 << 10

// LogStream is the server's log destination. Logging must never stop the
// service: a write that fails (a closed pipe, a full disk) is counted and
// reported instead, and the caller goes on. The request log is operational
// output, not an audit trail: the audit trail of a later issue is written
// elsewhere and fails closed on its own terms; it must not depend on this
// stream.
//
// Lines are buffered, so that a request costs no write(2) of its own (one
// line per request was one system call per request): they reach out when
// logFlushEvery has passed since the first of them was buffered, when
// logBufferSize bytes are waiting, on Flush (NewLogger's handler flushes
// after every line at WARN or above, so an error is never held back), on
// Failures (so /readyz counts every line logged before it), and on Close
// (serve's last step, and the last stop hook of the fx graph). After Close
// every line is written at once. Only a process killed outright (SIGKILL, a
// crash outside the request handlers) loses what was buffered: at most
// logFlushEvery of lines. This is slog with a small writer rather than a
// logging library's buffered sink (zap's zapcore.BufferedWriteSyncer is one):
// the formats stay slog's, no dependency is added, and neither flushing by
// level nor counting lost lines for /readyz would come with it.
//
// A failure is reported three ways: the count of lines lost and the last
// error on /readyz (see readiness), and a line on the notice stream at most
// once per noticeEvery (the other standard stream: logs go to stderr,
// notices to stdout, so one broken stream does not silence both).
type LogStream struct {
	out, notice io.Writer
	now         func() time.Time
	every       time.Duration // logFlushEvery; tests lengthen it

	mu     sync.Mutex // held while writing to out, so lines keep their order
	buf    []byte
	timer  *time.Timer // flushes buf logFlushEvery after its first line
	armed  bool        // timer is pending
	closed bool        // Close was called: write through

	fmu        sync.Mutex // the failure record
	failures   int64
	lastErr    string
	lastNotice time.Time
}

// NewLogStream returns a LogStream writing to out and reporting its
// failures on notice. It starts no goroutine: a timer is armed when a line
// waits. Close it when done.
func NewLogStream(out, notice io.Writer) *LogStream {
	return &LogStream{out: out, notice: notice, now: time.Now, every: logFlushEvery}
}

// Write buffers p, one log line, and returns len(p), nil: a failure to write
// it out is counted (Failures) and reported, never returned, since the
// handler could only drop it (slog.Logger ignores handler errors).
func (s *LogStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(p) > logBufferSize {
		s.flushLocked()
		s.writeLocked(p)
		return len(p), nil
	}
	if len(s.buf)+len(p) > logBufferSize {
		s.flushLocked()
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, logBufferSize)
	}
	s.buf = append(s.buf, p...)
	if !s.armed {
		s.armed = true
		if s.timer == nil {
			s.timer = time.AfterFunc(s.every, s.tick)
		} else {
			s.timer.Reset(s.every)
		}
	}
	return len(p), nil
}

func (s *LogStream) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	s.flushLocked()
}

// Flush writes out every buffered line. It returns nil: a failure is
// counted and reported as Write's are.
func (s *LogStream) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	return nil
}

// Close flushes and stops the timer; later lines are written at once.
func (s *LogStream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
		s.armed = false
	}
	return nil
}

func (s *LogStream) flushLocked() {
	if len(s.buf) == 0 {
		return
	}
	s.writeLocked(s.buf)
	s.buf = s.buf[:0]
}

// writeLocked writes p whole or counts the lines it lost: those whose
// newline was not written.
func (s *LogStream) writeLocked(p []byte) {
	if len(p) == 0 {
		return
	}
	n, err := s.out.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		n = max(0, min(n, len(p)))
		lost := int64(bytes.Count(p[n:], []byte{'\n'}))
		if p[len(p)-1] != '\n' { // a last line without its newline
			lost++
		}
		s.failed(lost, err)
	}
}

func (s *LogStream) failed(lines int64, err error) {
	s.fmu.Lock()
	s.failures += lines
	s.lastErr = err.Error()
	n, now := s.failures, s.now()
	report := s.lastNotice.IsZero() || now.Sub(s.lastNotice) >= noticeEvery
	if report {
		s.lastNotice = now
	}
	s.fmu.Unlock()
	if report {
		// Best effort: the notice stream may be broken too.
		_, _ = fmt.Fprintf(s.notice, "tokenstore: %s: writing the log failed (%d lines lost so far): %v; the service keeps running (reported at most once a minute, and on /readyz)\n",
			now.UTC().Format(time.RFC3339), n, err)
	}
}

// Failures flushes the buffered lines, then returns the number of log
// lines lost and the last error.
func (s *LogStream) Failures() (int64, string) {
	_ = s.Flush()
	s.fmu.Lock()
	defer s.fmu.Unlock()
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
