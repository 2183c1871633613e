-- name: DatabaseNow :one
-- The database's clock, which leases and the worker's claims are judged by:
-- the service measures its skew against its own (app.SkewMonitor).
SELECT clock_timestamp()::timestamptz AS db_now;
