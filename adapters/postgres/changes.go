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
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenstore/tokenstore/domain"
	"github.com/tokenstore/tokenstore/ports"
)

// ChangesChannel is the channel the token tables' triggers notify on
// (sql/migrations/00013_token_changes.sql).
const ChangesChannel = "tokenstore_changes"

// ErrNotListening is Sync's error while the listener has no connection
// that listens.
var ErrNotListening = errors.New("the change listener is not listening")

// ListenerOptions tune a ChangeListener.
type ListenerOptions struct {
	// Log receives the listener's state changes; nil discards them.
	Log *slog.Logger
}

// ChangeListener hears the token tables' change notifications on a session
// connection of its own (LISTEN tokenstore_changes, on Config.DirectURL,
// else Config.URL: a pooler in transaction mode cannot hold a LISTEN) and
// tells a ports.TokenChangeSink, in commit order. It is the
// ports.ChangeBarrier that proves the sink up to date.
//
// The proof is a probe: pg_notify on the same channel, sent through the
// pool. PostgreSQL delivers notifications in commit order, and a probe
// sent after a call began commits after every change committed before
// it, so when the probe comes back every one of those changes has been
// heard. Callers share probes: one is in flight at a time, and the callers
// that arrive meanwhile wait for the next one, sent as soon as it returns,
// so a burst of reads costs one or two round trips, not one each. (Written
// by hand: pgxlisten and river's notifier reconnect and dispatch, but
// neither proves that a notification has been heard, which is what makes
// the cache exact.)
type ChangeListener struct {
	cc   *pgx.ConnConfig
	pool *pgxpool.Pool
	log  *slog.Logger
	id   string // names this listener's probes

	mu        sync.Mutex
	listening bool
	seq       uint64      // the last probe sent
	inflight  *probeRound // sent, not yet back; nil: none
	next      *probeRound // callers waiting for the probe after inflight
}

// probeRound is one probe and the callers waiting for it: done closes when
// it came back (ok) or can no longer (the connection was lost, sending
// failed).
type probeRound struct {
	seq  uint64
	done chan struct{}
	ok   bool
}

// probeTimeout bounds sending one probe.
const probeTimeout = 5 * time.Second

// NewChangeListener returns a listener for cfg's database that sends its
// probes through pool. Run starts it.
func NewChangeListener(cfg Config, pool *pgxpool.Pool, opts ListenerOptions) (*ChangeListener, error) {
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
	return &ChangeListener{cc: cc, pool: pool, log: log, id: hex.EncodeToString(b[:])}, nil
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
		r = &probeRound{done: make(chan struct{})}
		l.inflight = r
		l.sendLocked(r)
	case l.next == nil:
		l.next = &probeRound{done: make(chan struct{})}
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
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendLocked sends r's probe through the pool; l.mu is held. A probe that
// cannot be sent fails its round (and sends the next).
func (l *ChangeListener) sendLocked(r *probeRound) {
	l.seq++
	r.seq = l.seq
	payload := `{"probe":"` + l.id + "/" + strconv.FormatUint(r.seq, 10) + `"}`
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		if _, err := l.pool.Exec(ctx, "SELECT pg_notify($1, $2)", ChangesChannel, payload); err != nil {
			l.mu.Lock()
			if l.inflight == r {
				l.settleLocked(false)
			}
			l.mu.Unlock()
		}
	}()
}

// settleLocked ends the round in flight (came back: ok) and sends the next
// one, if callers wait for it; l.mu is held.
func (l *ChangeListener) settleLocked(ok bool) {
	r := l.inflight
	r.ok = ok
	close(r.done)
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
	for _, r := range []*probeRound{l.inflight, l.next} {
		if r != nil {
			close(r.done)
		}
	}
	l.inflight, l.next = nil, nil
}

// Run listens until ctx ends, telling sink, and reconnects (after 100 ms,
// doubling up to 5 s) whenever the connection is lost; sink hears
// Disconnected each time, and AllTokensChanged each time listening starts
// (changes may have gone unheard before). It returns nil when ctx ends.
func (l *ChangeListener) Run(ctx context.Context, sink ports.TokenChangeSink) error {
	backoff := 100 * time.Millisecond
	for {
		listened, err := l.session(ctx, sink)
		l.stopListening()
		sink.Disconnected()
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			backoff = 100 * time.Millisecond
		}
		l.log.Warn("read cache off: the connection that hears token changes failed; reconnecting",
			"err", err, "retry_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
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

// session is one connection's life: connect, LISTEN, then hear changes
// until something fails. listened reports whether LISTEN succeeded.
func (l *ChangeListener) session(ctx context.Context, sink ports.TokenChangeSink) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, l.cc)
	if err != nil {
		return false, interpretError(err, noEffect)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	// Without the triggers nothing would be heard: a cache that answered
	// would never drop a changed row.
	var triggers bool
	if err := conn.QueryRow(ctx, "SELECT to_regproc('tokenstore_notify_changes') IS NOT NULL").Scan(&triggers); err != nil {
		return false, interpretError(err, noEffect)
	}
	if !triggers {
		return false, errors.New("the schema has no change notifications (migration 13): run `tokenstore migrate up`")
	}
	if _, err := conn.Exec(ctx, "LISTEN "+ChangesChannel); err != nil {
		return false, interpretError(err, noEffect)
	}
	// Changes committed before LISTEN went unheard: rows kept (or being
	// read) before now cannot be trusted.
	sink.AllTokensChanged()
	l.mu.Lock()
	l.listening = true
	l.mu.Unlock()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, interpretError(err, noEffect)
		}
		if s, ok := l.probeSeq(n.Payload); ok {
			l.mu.Lock()
			if l.inflight != nil && l.inflight.seq == s {
				l.settleLocked(true)
			}
			l.mu.Unlock()
			continue
		}
		l.dispatch(n.Payload, sink)
	}
}

// probeSeq is the sequence number of one of this listener's probes.
func (l *ChangeListener) probeSeq(payload string) (uint64, bool) {
	rest, ok := strings.CutPrefix(payload, `{"probe":"`+l.id+"/")
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
	if strings.HasPrefix(payload, `{"probe":"`) {
		return // another instance's probe: no change
	}
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
