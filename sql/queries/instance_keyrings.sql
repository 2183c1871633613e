-- name: RecordKeyring :exec
-- An instance's heartbeat: its keyring as of now (database clock), live
-- for ttl_ms milliseconds unless it beats again.
INSERT INTO instance_keyrings (instance, primary_key_id, key_ids, heartbeat_at, expires_at)
SELECT @instance, @primary_key_id, sqlc.arg(key_ids)::text[], clock_timestamp(),
       clock_timestamp() + sqlc.arg(ttl_ms)::bigint * interval '1 millisecond'
ON CONFLICT (instance) DO UPDATE SET
    primary_key_id = EXCLUDED.primary_key_id,
    key_ids        = EXCLUDED.key_ids,
    heartbeat_at   = EXCLUDED.heartbeat_at,
    expires_at     = EXCLUDED.expires_at;

-- name: DeleteExpiredKeyrings :execrows
-- Instances that stopped beating without saying so (killed, crashed).
DELETE FROM instance_keyrings WHERE expires_at <= clock_timestamp();

-- name: ForgetKeyring :exec
-- An instance stopping cleanly.
DELETE FROM instance_keyrings WHERE instance = @instance;

-- name: LiveKeyrings :many
SELECT instance, primary_key_id, key_ids, heartbeat_at, expires_at
FROM instance_keyrings
WHERE expires_at > clock_timestamp()
ORDER BY instance;
