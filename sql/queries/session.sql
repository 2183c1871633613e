-- name: SetLockTimeout :exec
-- Transaction-local: a lock wait longer than this fails with SQLSTATE 55P03
-- instead of hanging the caller.
SELECT set_config('lock_timeout', @timeout::text, true);

-- name: DatabaseNow :one
-- The database's clock, which leases and the worker's claims are judged by:
-- the service measures its skew against its own (app.SkewMonitor).
SELECT clock_timestamp()::timestamptz AS db_now;
