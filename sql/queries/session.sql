-- name: SetLockTimeout :exec
-- Transaction-local: a lock wait longer than this fails with SQLSTATE 55P03
-- instead of hanging the caller.
SELECT set_config('lock_timeout', @timeout::text, true);
