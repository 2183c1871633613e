-- name: InsertEvents :execrows
-- Events of one change, in its transaction. Row i takes element i of every
-- array (equally long). The feed orders events by their transaction's id,
-- which is the order in which writers of one row took effect only when each
-- locked the row before its transaction had an id: a SELECT ... FOR UPDATE
-- takes the id after it waits for the row, a bare UPDATE or DELETE before
-- (so the write paths lock first: LockReauthRequired, GetAuthTokensForUpdate,
-- DeleteAuthTokens).
INSERT INTO events (kind, user_id, provider, reason)
SELECT unnest(@kinds::text[]), unnest(@user_ids::text[]), unnest(@providers::text[]), unnest(@reasons::text[]);

-- name: ListEvents :many
-- The feed, in commit order (see 00011_events.sql): events after the
-- position (after_xact, after_id), of finished transactions only (below the
-- snapshot's xmin), whose user starts with user_prefix and whose provider is
-- one of providers (empty: any; offline token events, provider '', always).
SELECT id, xact_id, occurred_at, kind, user_id, provider, reason
FROM events
WHERE (xact_id, id) > (@after_xact::bigint, @after_id::bigint)
  AND xact_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
  AND starts_with(user_id, @user_prefix::text)
  AND (cardinality(@providers::text[]) = 0 OR provider = '' OR provider = ANY(@providers::text[]))
ORDER BY xact_id, id
LIMIT @max_rows;

-- name: DeleteExpiredEvents :execrows
-- Retention: up to max_rows of the oldest events older than
-- retention_seconds by the database's clock.
DELETE FROM events
WHERE id IN (
    SELECT id FROM events
    WHERE occurred_at < now() - make_interval(secs => @retention_seconds::double precision)
    ORDER BY occurred_at
    LIMIT @max_rows
);
