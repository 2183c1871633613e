package postgres

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenstore/tokenstore/db"
	"github.com/tokenstore/tokenstore/domain"
)

// Group commit of PutAuthTokens. Concurrent PUTs are joined into one
// statement (UpsertAuthTokensBatch) that writes their rows, outbox events
// and audit events and commits by itself, so a batch of n PUTs costs one
// round trip and one WAL flush instead of n transactions of four
// statements each.
//
// No timer and no goroutine of its own: a caller that finds fewer than
// PutBatchesInFlight batches running runs one at once, made of itself and
// whatever else is waiting (leader and followers); callers that arrive while
// the batches run wait, and the first batch to finish hands the waiting
// callers to one of them, which runs them as the next batch. At low load a
// PUT therefore runs alone, at once, exactly as a single PUT always did (a
// batch of one sends UpsertAuthTokens, in a transaction with its audit
// events); under load the batches grow by themselves to what queued while
// the previous ones ran. A timer (wait a few hundred microseconds for
// company) would add its wait to every PUT at low load and gain nothing at
// high load, where the queue fills anyway. Nothing outlives its callers, so
// there is nothing to stop: a Repository needs no Close, and shutdown waits
// for the running PUTs as it waits for any other call (their callers hold
// the pool's connections).

// PutBatchRows bounds the rows of one batch: the statement, its locks and
// its parameter arrays stay small, and a batch a bad row fails (each of its
// PUTs is then retried alone) costs at most this many extra statements. 32
// concurrent writers make batches of about 12 (BenchmarkCoalescedPuts), so
// the bound is seldom reached; it is no setting, as no deployment needs
// another.
const PutBatchRows = 64

// PutBatchesInFlight is how many batches of PUTs one Repository runs at
// once, each on its own connection: the next batch forms while they run.
// More than one keeps PostgreSQL busy while one batch waits for its commit's
// WAL flush or its answer travels back. Measured with tests/storage
// BenchmarkCoalescedPuts (32 writers, 2 CPUs): 1 batch at a time ran 2.4×
// the throughput of PUTs alone, 2 ran 2.9×, 4 ran 1.5-2.0× (smaller
// batches, more of them alone).
const PutBatchesInFlight = 2

// PutStats counts what the group commit of PutAuthTokens did since the
// Repository was made (Repository.PutStats).
type PutStats struct {
	// Waiting: PUTs queued for the next batch now.
	Waiting int
	// Batches: statements sent for several PUTs at once; BatchedPuts: the
	// PUTs they were sent (written or not).
	Batches, BatchedPuts int64
	// Alone: PUTs written by a statement of their own: alone in their
	// batch, after a batch failed, or left out of one (a concurrent
	// writer changed the row after the batch's snapshot).
	Alone int64
}

// rowKey identifies a row of auth_tokens.
type rowKey struct {
	user     domain.UserID
	provider domain.Provider
}

// putCall is one PutAuthTokens waiting for, or in, a batch.
type putCall struct {
	ctx   context.Context // the caller's, bounded (Repository.bound)
	row   domain.SealedAuthTokens
	audit []domain.AuditEvent
	taken bool // guarded by putGroup.mu: in a batch, no longer withdrawable

	run  chan []*putCall // receives the batch this caller's goroutine must run
	done chan struct{}   // closed once out is set
	out  putOutcome
}

// putOutcome is what a batch did with one PUT.
type putOutcome struct {
	version          int64
	created, updated time.Time
	err              error
	// alone: the batch did not write the row (it failed, or the row changed
	// after its snapshot); the caller writes it alone.
	alone bool
}

// putGroup queues PUTs and hands them out as batches.
type putGroup struct {
	mu      sync.Mutex
	queue   []*putCall          // waiting, in arrival order
	running int                 // batches in flight
	busy    map[rowKey]struct{} // rows of the batches in flight

	batches, batchedPuts, alone atomic.Int64
}

// PutStats reports what the group commit of PutAuthTokens did.
func (r *Repository) PutStats() PutStats {
	r.puts.mu.Lock()
	waiting := len(r.puts.queue)
	r.puts.mu.Unlock()
	return PutStats{
		Waiting: waiting, Batches: r.puts.batches.Load(), BatchedPuts: r.puts.batchedPuts.Load(),
		Alone: r.puts.alone.Load(),
	}
}

// put writes t with its audit events, in a batch with whatever other PUTs
// are waiting. ctx is bounded (Repository.bound). A caller whose ctx ends
// while it waits for a batch leaves the queue with ctx's error (nothing was
// sent); once its batch started, it gets the batch's outcome whatever its
// ctx does (the batch's statement runs on a context of its own: see
// runBatch).
func (r *Repository) put(ctx context.Context, t domain.SealedAuthTokens, audit []domain.AuditEvent) putOutcome {
	if err := ctx.Err(); err != nil {
		return putOutcome{err: interpretError(err, noEffect)}
	}
	c := &putCall{ctx: ctx, row: t, audit: audit, run: make(chan []*putCall, 1), done: make(chan struct{})}
	g := &r.puts
	g.mu.Lock()
	g.queue = append(g.queue, c)
	g.dispatchLocked()
	g.mu.Unlock()
	cancelled := ctx.Done()
	for {
		select {
		case <-c.done:
			if !c.out.alone {
				return c.out
			}
			// The row stays busy until this write is done, so that a later
			// PUT of it cannot overtake this one.
			defer g.release(rowKey{t.User, t.Provider})
			r.puts.alone.Add(1)
			return r.putAlone(ctx, t, audit)
		case batch := <-c.run:
			r.runBatch(batch)
		case <-cancelled:
			if g.withdraw(c) {
				return putOutcome{err: interpretError(ctx.Err(), noEffect)}
			}
			cancelled = nil // in a batch already: wait for its outcome
		}
	}
}

// dispatchLocked starts batches while fewer than PutBatchesInFlight run
// and a waiting PUT can go: each batch is the waiting PUTs in arrival
// order, up to PutBatchRows, skipping rows that are in a running batch or
// already in this one (so two PUTs of one row are never in flight at once
// and take effect in arrival order), and dropping PUTs whose caller has
// gone. The batch's first PUT's goroutine runs it. g.mu must be held.
func (g *putGroup) dispatchLocked() {
	for g.running < PutBatchesInFlight && len(g.queue) > 0 {
		if g.busy == nil {
			g.busy = map[rowKey]struct{}{}
		}
		var batch []*putCall
		rest := g.queue[:0]
		for _, c := range g.queue {
			k := rowKey{c.row.User, c.row.Provider}
			_, busy := g.busy[k]
			switch {
			case c.ctx.Err() != nil:
				c.taken = true
				c.out = putOutcome{err: interpretError(c.ctx.Err(), noEffect)}
				close(c.done)
			case busy || len(batch) == PutBatchRows:
				rest = append(rest, c)
			default:
				c.taken = true
				g.busy[k] = struct{}{}
				batch = append(batch, c)
			}
		}
		clear(g.queue[len(rest):])
		g.queue = rest
		if len(batch) == 0 {
			return
		}
		g.running++
		batch[0].run <- batch
	}
}

// release frees a row written alone after its batch and starts the next
// batch (which may have waited for the row).
func (g *putGroup) release(k rowKey) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.busy, k)
	g.dispatchLocked()
}

// withdraw takes c out of the queue, unless a batch has taken it.
func (g *putGroup) withdraw(c *putCall) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.taken {
		return false
	}
	g.queue = slices.DeleteFunc(g.queue, func(q *putCall) bool { return q == c })
	return true
}

// runBatch writes batch and answers its callers. One PUT is written alone,
// on its caller's context, as PutAuthTokens always did. Several go in one
// UpsertAuthTokensBatch on a context of the batch's own, which no caller
// can cancel for the others, with the latest deadline among theirs (each at
// most Timeout+ClientGrace after its call began) and the first caller's
// values (its trace span holds the statement's). If the statement fails
// for want of a database (domain.ErrStorageUnavailable, its outcome unknown
// when it may have committed), every caller gets that error, as each would
// have alone; if it fails for any other reason (a row the database refuses,
// an audit event the audit store refuses, a deadlock), nothing was written
// and each caller writes its row alone, so that only a bad row's caller gets
// its error.
func (r *Repository) runBatch(batch []*putCall) {
	defer func() {
		if p := recover(); p != nil {
			// A bug; the callers must not wait for ever. The panic goes on
			// in this goroutine with its value.
			for _, c := range batch {
				c.out = putOutcome{err: errors.New("a batch of PUTs failed: it panicked")}
			}
			r.puts.answer(batch)
			panic(p)
		}
	}()
	r.writeBatch(batch)
	r.puts.answer(batch)
}

// answer frees the slot of a batch that ran and the rows it wrote (or
// failed for good: a row left to its caller to write alone stays busy until
// then), starts the next batch and wakes the batch's callers.
func (g *putGroup) answer(batch []*putCall) {
	g.mu.Lock()
	g.running--
	for _, c := range batch {
		if !c.out.alone {
			delete(g.busy, rowKey{c.row.User, c.row.Provider})
		}
	}
	g.dispatchLocked()
	g.mu.Unlock()
	for _, c := range batch {
		close(c.done)
	}
}

// writeBatch sets the outcome of each PUT of batch (runBatch).
func (r *Repository) writeBatch(batch []*putCall) {
	if len(batch) == 1 {
		r.puts.alone.Add(1)
		batch[0].out = r.putAlone(batch[0].ctx, batch[0].row, batch[0].audit)
		return
	}
	r.puts.batches.Add(1)
	r.puts.batchedPuts.Add(int64(len(batch)))
	latest, _ := batch[0].ctx.Deadline()
	for _, c := range batch[1:] {
		if d, _ := c.ctx.Deadline(); d.After(latest) {
			latest = d
		}
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(batch[0].ctx), latest)
	defer cancel()
	var rows []db.UpsertAuthTokensBatchRow
	err := withConn(ctx, r.pool, func(conn db.DBTX) (err error) {
		rows, err = r.q.UpsertAuthTokensBatch(ctx, conn, r.batchParams(batch))
		return interpretError(err, mayHaveApplied)
	})
	if err != nil {
		for _, c := range batch {
			c.out = putOutcome{err: err, alone: !errors.Is(err, domain.ErrStorageUnavailable)}
		}
		return
	}
	written := make(map[rowKey]db.UpsertAuthTokensBatchRow, len(rows))
	for _, row := range rows {
		written[rowKey{domain.UserID(row.UserID), domain.Provider(row.Provider)}] = row
	}
	for _, c := range batch {
		row, ok := written[rowKey{c.row.User, c.row.Provider}]
		c.out = putOutcome{version: row.Version, created: row.CreatedAt, updated: row.UpdatedAt, alone: !ok}
	}
}

// putAlone writes one PUT as one statement (UpsertAuthTokens), in a
// transaction only when audit events must commit with it.
func (r *Repository) putAlone(ctx context.Context, t domain.SealedAuthTokens, audit []domain.AuditEvent) putOutcome {
	var out putOutcome
	out.err = r.writeAudited(ctx, audit, func(conn db.DBTX, e effect) error {
		row, err := r.q.UpsertAuthTokens(ctx, conn, upsertWithEvent(upsertParams(t), r.events))
		out.version, out.created, out.updated = row.Version, row.CreatedAt, row.UpdatedAt
		return interpretError(err, e)
	})
	return out
}

// batchParams are UpsertAuthTokensBatch's parameters for batch, whose rows
// are distinct (dispatchLocked).
func (r *Repository) batchParams(batch []*putCall) db.UpsertAuthTokensBatchParams {
	n := len(batch)
	p := db.UpsertAuthTokensBatchParams{
		UserIds: make([]string, n), Providers: make([]string, n), KeyIds: make([]string, n),
		AccessTokens: make([][]byte, n), RefreshTokens: make([][]byte, n),
		AccessExpires: make([]bool, n), AccessTokenExpiresAt: make([]time.Time, n),
		RefreshExpires: make([]bool, n), RefreshTokenExpiresAt: make([]time.Time, n),
		Obtained: make([]bool, n), AccessTokenObtainedAt: make([]time.Time, n),
	}
	p.RecoveredKind, p.StoredKind, p.RecordRecovered, p.RecordStored = putEvents(r.events)
	var audit []domain.AuditEvent
	for i, c := range batch {
		t := c.row
		p.UserIds[i], p.Providers[i], p.KeyIds[i] = string(t.User), string(t.Provider), string(t.KeyID)
		p.AccessTokens[i], p.RefreshTokens[i] = t.AccessToken, t.RefreshToken
		p.AccessTokenExpiresAt[i], p.AccessExpires[i] = t.AccessExpiry.Time()
		p.RefreshTokenExpiresAt[i], p.RefreshExpires[i] = t.RefreshExpiry.Time()
		p.AccessTokenObtainedAt[i], p.Obtained[i] = t.AccessObtainedAt, !t.AccessObtainedAt.IsZero()
		for range c.audit {
			p.AuditRows = append(p.AuditRows, int32(i+1))
		}
		audit = append(audit, c.audit...)
	}
	a := auditParams(audit)
	p.AuditInstances, p.AuditCallers, p.AuditActions = a.Instances, a.Callers, a.Actions
	p.AuditUserIds, p.AuditProviders, p.AuditStatuses = a.UserIds, a.Providers, a.Statuses
	p.AuditCodes, p.AuditRequestIds, p.AuditCounts = a.Codes, a.RequestIds, a.Counts
	if p.AuditRows == nil {
		p.AuditRows = []int32{}
	}
	return p
}
