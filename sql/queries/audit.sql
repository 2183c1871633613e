-- name: InsertAuditEvents :execrows
-- Many events in one statement (the batcher's one insert for many reads).
INSERT INTO audit_events (instance, caller, action, user_id, provider, status, code, request_id, count)
-- Set-returning functions in one select list advance together (PostgreSQL
-- 10+): row i takes element i of every array, which must be equally long.
SELECT unnest(@instances::text[]), unnest(@callers::text[]), unnest(@actions::text[]),
       unnest(@user_ids::text[]), unnest(@providers::text[]), unnest(@statuses::integer[]),
       unnest(@codes::text[]), unnest(@request_ids::text[]), unnest(@counts::bigint[]);

-- name: ListAuditEvents :many
-- Oldest first; a NULL filter matches everything. Pages continue after
-- (after_time, after_id).
SELECT * FROM audit_events
WHERE (sqlc.narg(user_id)::text IS NULL OR user_id = sqlc.narg(user_id))
  AND (sqlc.narg(provider)::text IS NULL OR provider = sqlc.narg(provider))
  AND (sqlc.narg(caller)::text IS NULL OR caller = sqlc.narg(caller))
  AND (sqlc.narg(action)::text IS NULL OR action = sqlc.narg(action))
  AND (sqlc.narg(since)::timestamptz IS NULL OR occurred_at >= sqlc.narg(since))
  AND (sqlc.narg(until)::timestamptz IS NULL OR occurred_at < sqlc.narg(until))
  AND (occurred_at, id) > (@after_time::timestamptz, @after_id::bigint)
ORDER BY occurred_at, id
LIMIT @max_rows;

-- name: AllowAuditRetention :exec
-- Lets this transaction (only) delete audit events: the append-only trigger
-- refuses DELETE otherwise.
SELECT set_config('tokenstore.audit_retention', 'on', true);

-- name: DeleteExpiredAuditEvents :execrows
-- Removes up to max_rows of the oldest events older than retention by the
-- database's clock. Only after AllowAuditRetention in the same transaction.
DELETE FROM audit_events
WHERE id IN (
    SELECT id FROM audit_events
    WHERE occurred_at < now() - make_interval(secs => @retention_seconds::float8)
    ORDER BY occurred_at, id
    LIMIT @max_rows);
