-- name: CountValuesByKey :many
-- How many stored values each key seals: an auth_tokens row holds one or two
-- (access and, when present, refresh token), an offline_tokens row one.
SELECT key_id::text AS key_id, sum(n)::bigint AS value_count FROM (
    SELECT key_id, count(*) + count(refresh_token) AS n FROM auth_tokens GROUP BY key_id
    UNION ALL
    SELECT key_id, count(*) AS n FROM offline_tokens GROUP BY key_id
) AS per_table
GROUP BY key_id
ORDER BY key_id;

-- name: AuthTokensByKey :many
SELECT * FROM auth_tokens
WHERE key_id = @key_id AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: OfflineTokensByKey :many
SELECT * FROM offline_tokens
WHERE key_id = @key_id AND user_id > @after_user
ORDER BY user_id
LIMIT @max_rows;

-- name: StoreReencryptedAuthTokens :execrows
-- Replaces the ciphertexts of a row re-encrypted under another key, only if
-- the row is unchanged since it was read (version) and no refresh holds a
-- lease on it: re-encryption never overwrites newer content or fences out a
-- refresh in flight.
UPDATE auth_tokens SET
    key_id        = @key_id,
    access_token  = @access_token,
    refresh_token = @refresh_token
WHERE id = @id AND version = @expected_version
  AND (refresh_lease_owner IS NULL OR refresh_lease_until < clock_timestamp());

-- name: StoreReencryptedOfflineToken :execrows
-- Keyed by user, whose row may have been deleted and stored anew since it
-- was read, restarting version at 1: created_at tells the two rows apart.
UPDATE offline_tokens SET
    key_id = @key_id,
    token  = @token
WHERE user_id = @user_id AND version = @expected_version AND created_at = @created_at;
