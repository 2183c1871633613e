package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// ChangesChannel is the channel the token tables' triggers notify on
// (sql/migrations/00013_token_changes.sql).
const ChangesChannel = "tokenstore_changes"

// ErrNotListening is Sync's error while the listener has no connection
// that listens.
var ErrNotListening = errors.New("the change listener is not listening")

// DefaultSyncTimeout is ListenerOptions.SyncTimeout's default.
const DefaultSyncTimeout = 250 * time.Millisecond

// ListenerOptions tune a ChangeListener.
type ListenerOptions struct {
	// SyncTimeout: a Sync whose probe round has not come back this long
	// after the round began fails with ports.ErrSyncLate (one timer per
	// round, shared by its callers). Zero means DefaultSyncTimeout.
	SyncTimeout time.Duration
	// Log receives the listener's state changes; nil discards them.
	Log *slog.Logger
}

// ChangeListener hears the token tables' change notifications on a session
// connection of its own (LISTEN tokenstore_changes, on Config.DirectURL,
// else Config.URL: a pooler in transaction mode cannot hold a LISTEN) and
// tells a ports.TokenChangeSink, in commit order. It is the
// ports.ChangeBarrier that proves the sink up to date.
//
// The proof is a probe: pg_notify on the same channel, sent on a second
// session connection (so a saturated pool cannot delay it). PostgreSQL
// delivers notifications in commit order, and a probe sent after a call
// began commits after every change committed before it, so when the probe
// comes back every one of those changes has been heard. Callers share
// probes: one is in flight at a time, and the callers that arrive
// meanwhile wait for the next one, sent as soon as it returns, so a burst
// of reads costs one or two round trips, not one each. A probe is sent
// only while the eight notify triggers of migration 00013 are all enabled
// (ENABLE ALWAYS: they fire under session_replication_role replica too):
// with one dropped or disabled, changes would go unheard while probes still
// came back, so the probe is refused instead and the session restarts,
// and nothing is answered from memory until they are back. A probe commits
// without waiting for its WAL flush (synchronous_commit off, for that
// transaction only: its order is all that matters). A probe not heard
// within 5 s, or a probe that cannot be sent, restarts the session; while
// no caller asks, a probe goes out every 10 s to find a dead connection.
// (Written by hand: pgxlisten and river's notifier reconnect and dispatch,
// but neither proves that a notification has been heard, which is what
// makes the cache exact.)
type ChangeListener struct {
	cc          *pgx.ConnConfig
	log         *slog.Logger
	probePrefix string // begins this listener's probes' payloads: {"probe":"<id>/
	syncTimeout time.Duration

	mu        sync.Mutex
	listening bool
	probeConn *pgx.Conn          // the session's connection for probes
	probeMu   *sync.Mutex        // one user of it at a time (pgx.Conn is not safe for concurrent use)
	probeCtx  context.Context    // the session's: ends when it does
	restart   context.CancelFunc // ends the session
	seq       uint64             // the last probe sent
	inflight  *probeRound        // sent, not yet back; nil: none
	next      *probeRound        // callers waiting for the probe after inflight
}

// probeRound is one probe and the callers waiting for it: done closes when
// it came back (ok) or can no longer (the connection was lost, sending
// failed, it was not heard in time).
type probeRound struct {
	seq   uint64
	done  chan struct{}
	ok    bool
	late  chan struct{} // closed SyncTimeout after the round began
	timer *time.Timer
	heard *time.Timer // fails the round probeTimeout after its probe was sent; nil before
}

// newRound is a round whose late channel closes after SyncTimeout.
func (l *ChangeListener) newRound() *probeRound {
	r := &probeRound{done: make(chan struct{}), late: make(chan struct{})}
	r.timer = time.AfterFunc(l.syncTimeout, func() { close(r.late) })
	return r
}

// end closes r's done channel, ok or not, and stops its timers; l.mu is
// held.
func (r *probeRound) end(ok bool) {
	r.ok = ok
	r.timer.Stop()
	if r.heard != nil {
		r.heard.Stop()
	}
	close(r.done)
}

const (
	// probeTimeout bounds sending one probe and hearing it back.
	probeTimeout = 5 * time.Second
	// idleProbe: how often a probe goes out while nobody asks.
	idleProbe = 10 * time.Second
	// notifyTriggers is how many triggers migration 00013 makes notify.
	notifyTriggers = 8
)

// enabledTriggersSQL counts the notify triggers enabled always (0 when
// migration 00013's function is missing).
const enabledTriggersSQL = `SELECT count(*) FROM pg_catalog.pg_trigger
       WHERE tgfoid = to_regproc('tokenstore_notify_changes') AND tgenabled = 'A'`

// probeSQL sends a probe when, and only when, every notify trigger is
// enabled always; its commit does not wait for the WAL flush.
var probeSQL = `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)
WHERE (` + enabledTriggersSQL + `) = ` + strconv.Itoa(notifyTriggers)

// errTriggersOff: the notify triggers are missing or not all enabled.
var errTriggersOff = errors.New("the change notification triggers of migration 13 are missing or disabled " +
	"(all 8 must be ENABLE ALWAYS): the read cache is off until they are back (`tokenstore migrate up`)")

// NewChangeListener returns a listener for cfg's database. Run starts it.
func NewChangeListener(cfg Config, opts ListenerOptions) (*ChangeListener, error) {
	cc, err := parseSessionConfig(cfg)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	syncTimeout := opts.SyncTimeout
	if syncTimeout <= 0 {
		syncTimeout = DefaultSyncTimeout
	}
	return &ChangeListener{cc: cc, log: log, probePrefix: `{"probe":"` + hex.EncodeToString(b[:]) + "/", syncTimeout: syncTimeout}, nil
}

// Sync implements ports.ChangeBarrier.
func (l *ChangeListener) Sync(ctx context.Context) error {
	l.mu.Lock()
	if !l.listening {
		l.mu.Unlock()
		return ErrNotListening
	}
	var r *probeRound
	switch {
	case l.inflight == nil:
		r = l.newRound()
		l.inflight = r
		l.sendLocked(r)
	case l.next == nil:
		l.next = l.newRound()
		r = l.next
	default:
		r = l.next
	}
	l.mu.Unlock()
	select {
	case <-r.done:
		if !r.ok {
			return ErrNotListening
		}
		return nil
	case <-r.late:
		return ports.ErrSyncLate
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendLocked sends r's probe on the session's probe connection; l.mu is
// held. A probe that cannot be sent, or is not heard within probeTimeout,
// fails its round and restarts the session.
func (l *ChangeListener) sendLocked(r *probeRound) {
	l.seq++
	r.seq = l.seq
	payload := l.probePrefix + strconv.FormatUint(r.seq, 10) + `"}`
	conn, connMu, sessionCtx, restart := l.probeConn, l.probeMu, l.probeCtx, l.restart
	go func() {
		ctx, cancel := context.WithTimeout(sessionCtx, probeTimeout)
		defer cancel()
		connMu.Lock()
		tag, err := conn.Exec(ctx, probeSQL, ChangesChannel, payload)
		connMu.Unlock()
		if err == nil && tag.RowsAffected() != 1 {
			err = errTriggersOff
		}
		if err != nil {
			l.fail(r, restart, "read cache off: a probe could not be sent; restarting the listening session", err)
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.inflight == r { // not heard yet: it must be within probeTimeout
			r.heard = time.AfterFunc(probeTimeout, func() {
				l.fail(r, restart, "read cache off: a probe was not heard back in time; restarting the listening session",
					fmt.Errorf("not heard within %s", probeTimeout))
			})
		}
	}()
}

// fail fails round r, if it is still in flight, and restarts its session.
func (l *ChangeListener) fail(r *probeRound, restart context.CancelFunc, msg string, err error) {
	l.mu.Lock()
	current := l.inflight == r
	if current {
		l.settleLocked(false)
	}
	l.mu.Unlock()
	if current {
		l.log.Warn(msg, "err", err)
		restart()
	}
}

// settleLocked ends the round in flight (came back: ok) and sends the next
// one, if callers wait for it; l.mu is held.
func (l *ChangeListener) settleLocked(ok bool) {
	r := l.inflight
	r.end(ok)
	l.inflight, l.next = l.next, nil
	if l.inflight != nil {
		l.sendLocked(l.inflight)
	}
}

// stopListening fails every waiting round: nobody hears probes any more.
func (l *ChangeListener) stopListening() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listening = false
	l.probeConn, l.probeMu, l.probeCtx, l.restart = nil, nil, nil, nil
	for _, r := range []*probeRound{l.inflight, l.next} {
		if r != nil {
			r.end(false)
		}
	}
	l.inflight, l.next = nil, nil
}

// Run listens until ctx ends, telling sink, and reconnects whenever the
// session ends: after 100 ms when a probe came back in it, else after twice
// the last wait, up to 30 s (a listener behind a transaction pooler, whose
// probes never come back, restarts rarely). sink hears Disconnected each
// time, and AllTokensChanged each time listening starts (changes may have
// gone unheard before). It returns nil when ctx ends.
func (l *ChangeListener) Run(ctx context.Context, sink ports.TokenChangeSink) error {
	backoff := 100 * time.Millisecond
	for {
		proven, err := l.session(ctx, sink)
		l.stopListening()
		sink.Disconnected()
		if ctx.Err() != nil {
			return nil
		}
		if proven {
			backoff = 100 * time.Millisecond
		}
		l.log.Warn("read cache off: the session that hears token changes ended; reconnecting",
			"err", err, "retry_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// notification is a payload on ChangesChannel: a change, or a probe.
type notification struct {
	Table    string  `json:"table"`
	User     *string `json:"user"`
	Provider *string `json:"provider"`
	Version  *int64  `json:"version"`
	All      bool    `json:"all"`
	Probe    string  `json:"probe"`
}

// session is one session's life: connect twice (to listen, to probe),
// check the triggers, LISTEN, then hear changes until something fails or
// the session is restarted. proven reports whether a probe came back.
func (l *ChangeListener) session(parent context.Context, sink ports.TokenChangeSink) (proven bool, err error) {
	ctx, restart := context.WithCancel(parent)
	defer restart()
	conns := make([]*pgx.Conn, 0, 2)
	probeMu := &sync.Mutex{}
	defer func() {
		restart() // a probe in flight on the connection gives up first
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		probeMu.Lock()
		defer probeMu.Unlock()
		for _, c := range conns {
			_ = c.Close(closeCtx)
		}
	}()
	for range 2 {
		c, err := pgx.ConnectConfig(ctx, l.cc)
		if err != nil {
			return false, interpretError(err, noEffect)
		}
		conns = append(conns, c)
	}
	conn, probe := conns[0], conns[1]
	// Without the triggers nothing would be heard: a cache that answered
	// would never drop a changed row.
	var enabled int
	err = conn.QueryRow(ctx, enabledTriggersSQL).Scan(&enabled)
	if err != nil {
		return false, interpretError(err, noEffect)
	}
	if enabled != notifyTriggers {
		return false, errTriggersOff
	}
	if _, err := conn.Exec(ctx, "LISTEN "+ChangesChannel); err != nil {
		return false, interpretError(err, noEffect)
	}
	// Changes committed before LISTEN went unheard: rows kept (or being
	// read) before now cannot be trusted.
	sink.AllTokensChanged()
	l.mu.Lock()
	l.listening, l.probeConn, l.probeMu, l.probeCtx, l.restart = true, probe, probeMu, ctx, restart
	l.mu.Unlock()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, idleProbe)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return proven, ctx.Err()
		case err != nil && pgconn.Timeout(err) && !conn.IsClosed():
			l.idleProbe()
			continue
		case err != nil:
			return proven, interpretError(err, noEffect)
		}
		if s, ok := l.probeSeq(n.Payload); ok {
			l.mu.Lock()
			if l.inflight != nil && l.inflight.seq == s {
				l.settleLocked(true)
				proven = true
			}
			l.mu.Unlock()
			continue
		}
		l.dispatch(n.Payload, sink)
	}
}

// idleProbe sends a probe nobody waits for when none is in flight: a dead
// connection or disabled triggers are found while nobody reads.
func (l *ChangeListener) idleProbe() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.listening && l.inflight == nil {
		l.inflight = l.newRound()
		l.sendLocked(l.inflight)
	}
}

// probeSeq is the sequence number of one of this listener's probes.
func (l *ChangeListener) probeSeq(payload string) (uint64, bool) {
	rest, ok := strings.CutPrefix(payload, l.probePrefix)
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, `"}`)
	if !ok {
		return 0, false
	}
	s, err := strconv.ParseUint(digits, 10, 64)
	return s, err == nil
}

// dispatch tells the sink of one change notification. A payload it cannot
// read exactly (another version's format, a hand-sent NOTIFY) is taken as
// "anything may have changed".
func (l *ChangeListener) dispatch(payload string, sink ports.TokenChangeSink) {
	c, err := parseChange(payload)
	switch {
	case err != nil:
		l.log.Warn("read cache: an unreadable change notification; dropping every cached row", "err", err)
		sink.AllTokensChanged()
	case c.Probe != "":
		// Another instance's probe: no change.
	case c.All:
		sink.AllTokensChanged()
	default:
		sink.TokensChanged(domain.UserID(*c.User), domain.Provider(*c.Provider), *c.Version)
	}
}

// parseChange decodes a payload of ChangesChannel strictly: unknown
// members, a table other than the two, or a change without its user,
// provider and version are errors (naming the member, never a value).
func parseChange(payload string) (notification, error) {
	var c notification
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("not a change notification: %w", err)
	}
	if dec.More() {
		return c, errors.New("not a change notification: data after the JSON object")
	}
	if c.Probe != "" {
		return c, nil
	}
	if c.Table != "auth_tokens" && c.Table != "offline_tokens" {
		return c, errors.New(`not a change notification: "table" is neither auth_tokens nor offline_tokens`)
	}
	if c.All {
		return c, nil
	}
	if c.User == nil || c.Provider == nil || c.Version == nil {
		return c, errors.New(`not a change notification: "user", "provider" and "version" are required`)
	}
	if (c.Table == "offline_tokens") != (*c.Provider == "") {
		return c, errors.New(`not a change notification: "provider" is empty exactly for offline_tokens`)
	}
	return c, nil
}

// NotificationQueueUsage is the fraction (0 to 1) of the cluster's NOTIFY
// queue in use (pg_notification_queue_usage()), for metrics. The queue
// holds every notification until each listening session has read it, so it
// grows while one lags (a stuck listener, a session that ran LISTEN and
// sits in an open transaction); full, it fails every transaction that
// notifies at commit, and every token write notifies (migration 00013).
// PostgreSQL's queue is 8 GB by default: at the figures bench:http
// measures it fills in hours, not seconds, so a rising gauge is the alert.
func (r *Repository) NotificationQueueUsage(ctx context.Context) (float64, error) {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	usage, err := r.q.NotificationQueueUsage(ctx, r.pool)
	if err != nil {
		return 0, fmt.Errorf("read the notification queue's usage: %w", interpretError(err, noEffect))
	}
	return usage, nil
}
