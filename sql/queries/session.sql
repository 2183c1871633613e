-- name: DatabaseNow :one
-- The database's clock, which leases and the worker's claims are judged by:
-- the service measures its skew against its own (app.SkewMonitor).
SELECT clock_timestamp()::timestamptz AS db_now;

-- name: NotificationQueueUsage :one
-- The fraction (0 to 1) of the cluster's NOTIFY queue in use: it grows
-- while a listening session lags, and when it is full every transaction
-- that notifies (every token write, through the triggers of migration
-- 00013) fails at commit.
SELECT pg_notification_queue_usage()::float8 AS usage;
