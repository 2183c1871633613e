-- name: RegisterEventTarget :exec
-- A webhook endpoint's fan-out position, created at the feed's current end
-- (the last event of a finished transaction) the first time an instance
-- serves the endpoint; later calls change nothing but a new URL, which
-- also clears gone_at (the configuration changed).
INSERT INTO event_targets (name, url_sha256, after_xact, after_id)
SELECT @name::text, @url_sha256::text, coalesce(max(xact_id), 0), coalesce(max(id), 0)
FROM (
    SELECT xact_id, id FROM events
    WHERE xact_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
    ORDER BY xact_id DESC, id DESC
    LIMIT 1
) AS feed_end
ON CONFLICT (name) DO UPDATE SET url_sha256 = excluded.url_sha256, gone_at = NULL
WHERE event_targets.url_sha256 <> excluded.url_sha256;

-- name: MarkEventTargetGone :exec
-- The endpoint answered 410 Gone: mark it (FailGoneDeliveries follows, in
-- the same transaction). A separate statement, run first: it waits for a
-- fan-out holding the endpoint's row, so that the next statement's
-- snapshot sees the deliveries that fan-out queued (one statement's
-- data-modifying CTE would run after its main UPDATE, on an older
-- snapshot, and leave them pending on a gone endpoint).
UPDATE event_targets SET gone_at = now() WHERE name = @target::text;

-- name: FailGoneDeliveries :execrows
-- Fails the pending deliveries of an endpoint marked gone with
-- @last_error.
UPDATE deliveries SET state = 'failed', last_status = 410, last_error = @last_error,
    lease_owner = NULL, lease_until = NULL, finished_at = now()
WHERE target = @target::text AND state = 'pending';

-- name: FanOutEvents :one
-- Queues, for the webhook endpoint @target, a delivery of each event of a
-- kind in @kinds among the next @max_rows events of the feed after the
-- endpoint's position (finished transactions only, in commit order, as
-- ListEvents), and moves the position past all of them, in one statement.
-- The endpoint's row is locked with SKIP LOCKED: while another instance
-- fans out the same endpoint, this one finds no row and does nothing. No
-- row returned: nothing to do (or another instance is at it).
WITH target AS (
    SELECT after_xact, after_id FROM event_targets
    WHERE name = @target::text AND gone_at IS NULL
    FOR UPDATE SKIP LOCKED
), batch AS (
    SELECT e.id, e.xact_id, e.kind, e.user_id, e.provider, e.occurred_at
    FROM events AS e, target AS t
    WHERE (e.xact_id, e.id) > (t.after_xact, t.after_id)
      AND e.xact_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
    ORDER BY e.xact_id, e.id
    LIMIT @max_rows
), queued AS (
    INSERT INTO deliveries (target, event_id, xact_id, user_id, provider, retry_from)
    SELECT @target::text, id, xact_id, user_id, provider, occurred_at FROM batch
    WHERE kind = ANY(@kinds::text[])
    ON CONFLICT (target, event_id) DO NOTHING
    RETURNING 1
), last AS (
    SELECT xact_id, id FROM batch ORDER BY xact_id DESC, id DESC LIMIT 1
)
UPDATE event_targets SET after_xact = last.xact_id, after_id = last.id
FROM last
WHERE event_targets.name = @target::text
RETURNING (SELECT count(*) FROM batch)::bigint AS scanned, (SELECT count(*) FROM queued)::bigint AS queued;

-- name: InsertRevocationDelivery :exec
-- The upstream revocation of tokens just deleted, in the DELETE's
-- transaction: their ciphertexts move into the tokens.deleted event and a
-- delivery to the target 'revocation' is queued.
WITH event AS (
    INSERT INTO events (kind, user_id, provider, reason, key_id, access_token, refresh_token)
    VALUES (@kind::text, @user_id::text, @provider::text, '', @key_id::text, @access_token::bytea, sqlc.narg(refresh_token)::bytea)
    RETURNING id, xact_id, user_id, provider, occurred_at
)
INSERT INTO deliveries (target, event_id, xact_id, user_id, provider, retry_from)
SELECT 'revocation', id, xact_id, user_id, provider, occurred_at FROM event;

-- name: ClaimDeliveries :many
-- Leases up to @max_rows of @target's due deliveries to @owner for
-- @lease_seconds, oldest first: pending, due (next_attempt_at), not leased
-- (or the lease lapsed: its owner died mid-send), and with no earlier
-- pending delivery for the same user and provider (order). Rows another
-- instance is claiming are skipped. Each claim counts an attempt; the
-- attempt number fences the outcome (FinishDelivery).
WITH due AS (
    SELECT d.target, d.event_id FROM deliveries AS d
    WHERE d.target = @target::text AND d.state = 'pending'
      AND d.next_attempt_at <= now()
      AND (d.lease_until IS NULL OR d.lease_until <= now())
      AND NOT EXISTS (SELECT 1 FROM event_targets AS t WHERE t.name = d.target AND t.gone_at IS NOT NULL)
      AND NOT EXISTS (
          SELECT 1 FROM deliveries AS p
          WHERE p.target = d.target AND p.user_id = d.user_id AND p.provider = d.provider
            AND p.state = 'pending' AND (p.xact_id, p.event_id) < (d.xact_id, d.event_id))
    ORDER BY d.xact_id, d.event_id
    LIMIT @max_rows
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries AS d SET
    attempts         = d.attempts + 1,
    lease_owner      = @owner::text,
    lease_until      = now() + make_interval(secs => @lease_seconds::float8)
FROM due, events AS e
WHERE d.target = due.target AND d.event_id = due.event_id AND e.id = d.event_id
RETURNING d.target, d.event_id, d.xact_id, d.attempts, d.retry_from,
    e.kind, e.user_id, e.provider, e.reason, e.occurred_at, e.key_id, e.access_token, e.refresh_token;

-- name: FinishDelivery :execrows
-- Records the outcome of attempt @attempt while it is still the latest
-- (another instance has not claimed the delivery again since: a lapsed
-- lease): delivered, failed, or pending again at @next_attempt_at. The
-- fence is the attempt number and the retry window's start: a redelivery
-- restarts attempts at 0 but moves retry_from, so a stalled attempt of
-- before it cannot record over a live one after it.
UPDATE deliveries SET
    state           = @state::text,
    next_attempt_at = CASE WHEN @state::text = 'pending' THEN @next_attempt_at::timestamptz ELSE next_attempt_at END,
    last_status     = @last_status,
    last_error      = @last_error,
    lease_owner     = NULL,
    lease_until     = NULL,
    finished_at     = CASE WHEN @state::text = 'pending' THEN NULL ELSE now() END
WHERE target = @target::text AND event_id = @event_id AND state = 'pending' AND attempts = @attempt::integer
  AND retry_from = @retry_from::timestamptz;

-- name: ForgetRevokedTokens :exec
-- Clears an event's sealed tokens once revoked.
UPDATE events SET key_id = NULL, access_token = NULL, refresh_token = NULL
WHERE id = @event_id;

-- name: ListDeliveries :many
-- Deliveries in commit order of their events, then by target: of @target
-- (empty: any), in @state (empty: any), after the position (@after_xact,
-- @after_id, @after_target).
SELECT d.target, d.event_id, d.xact_id, d.state, d.attempts, d.retry_from, d.next_attempt_at,
    d.lease_owner, d.lease_until, d.last_status, d.last_error, d.finished_at,
    e.kind, e.user_id, e.provider, e.reason, e.occurred_at
FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
WHERE (@target::text = '' OR d.target = @target::text)
  AND (@state::text = '' OR d.state = @state::text)
  AND (d.xact_id, d.event_id, d.target) > (@after_xact::bigint, @after_id::bigint, @after_target::text)
ORDER BY d.xact_id, d.event_id, d.target
LIMIT @max_rows;

-- name: RedeliverDeliveries :execrows
-- Queues finished deliveries again, as new (a fresh retry window): the
-- event @event_id's (0: every failed one), of @target (empty: any). A
-- revocation whose tokens were revoked and cleared is not sent again. The
-- endpoints they go to are no longer gone.
WITH revived AS (
    UPDATE event_targets SET gone_at = NULL
    WHERE gone_at IS NOT NULL AND (@target::text = '' OR name = @target::text)
      AND name IN (SELECT target FROM deliveries
                   WHERE state <> 'pending' AND (@event_id::bigint = 0 AND state = 'failed' OR event_id = @event_id::bigint))
)
UPDATE deliveries AS d SET
    state = 'pending', attempts = 0, retry_from = now(), next_attempt_at = now(),
    lease_owner = NULL, lease_until = NULL, last_status = 0, last_error = '', finished_at = NULL
FROM events AS e
WHERE e.id = d.event_id AND d.state <> 'pending'
  AND (@event_id::bigint = 0 AND d.state = 'failed' OR d.event_id = @event_id::bigint)
  AND (@target::text = '' OR d.target = @target::text)
  AND (d.target <> 'revocation' OR e.access_token IS NOT NULL);
