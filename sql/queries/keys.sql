-- name: CountValuesByKey :many
-- How many stored values each key seals: an auth_tokens row holds one or two
-- (access and, when present, refresh token), an offline_tokens row one, and
-- an events row that keeps deleted tokens for upstream revocation (00012:
-- key_id set until they are revoked) one or two, like the auth_tokens row
-- they came from.
SELECT key_id::text AS key_id, sum(n)::bigint AS value_count FROM (
    SELECT key_id, count(*) + count(refresh_token) AS n FROM auth_tokens GROUP BY key_id
    UNION ALL
    SELECT key_id, count(*) AS n FROM offline_tokens GROUP BY key_id
    UNION ALL
    SELECT key_id, count(*) + count(refresh_token) AS n FROM events WHERE key_id IS NOT NULL GROUP BY key_id
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

-- name: KeyIDsInUse :many
-- The distinct key ids that seal stored values, found by skipping through
-- the (key_id, ...) indexes of 00003 and the partial index events_by_key of
-- 00012 (events keeping deleted tokens for revocation) one key at a time (a
-- loose index scan): one index probe per distinct key id and table, however
-- many rows there are, so /readyz can ask on every probe. CountValuesByKey
-- reads every row. The first events probe states the partial index's
-- predicate (key_id IS NOT NULL) so that the planner can use the index; the
-- later ones imply it (key_id > ...).
WITH RECURSIVE auth AS (
    (SELECT key_id FROM auth_tokens ORDER BY key_id LIMIT 1)
    UNION ALL
    SELECT (SELECT a.key_id FROM auth_tokens AS a WHERE a.key_id > auth.key_id ORDER BY a.key_id LIMIT 1)
    FROM auth WHERE auth.key_id IS NOT NULL
), offline AS (
    (SELECT key_id FROM offline_tokens ORDER BY key_id LIMIT 1)
    UNION ALL
    SELECT (SELECT o.key_id FROM offline_tokens AS o WHERE o.key_id > offline.key_id ORDER BY o.key_id LIMIT 1)
    FROM offline WHERE offline.key_id IS NOT NULL
), kept AS (
    (SELECT key_id FROM events WHERE key_id IS NOT NULL ORDER BY key_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.key_id FROM events AS e WHERE e.key_id > kept.key_id ORDER BY e.key_id LIMIT 1)
    FROM kept WHERE kept.key_id IS NOT NULL
)
SELECT auth.key_id::text AS key_id FROM auth WHERE auth.key_id IS NOT NULL
UNION
SELECT offline.key_id::text AS key_id FROM offline WHERE offline.key_id IS NOT NULL
UNION
SELECT kept.key_id::text AS key_id FROM kept WHERE kept.key_id IS NOT NULL
ORDER BY key_id;

-- name: CountValuesOfKeys :many
-- CountValuesByKey for the given key ids only, through the key_id indexes
-- (events_by_key for events): the work is proportional to those keys' rows.
SELECT key_id::text AS key_id, sum(n)::bigint AS value_count FROM (
    SELECT key_id, count(*) + count(refresh_token) AS n FROM auth_tokens
    WHERE key_id = ANY(@key_ids::text[]) GROUP BY key_id
    UNION ALL
    SELECT key_id, count(*) AS n FROM offline_tokens
    WHERE key_id = ANY(@key_ids::text[]) GROUP BY key_id
    UNION ALL
    SELECT key_id, count(*) + count(refresh_token) AS n FROM events
    WHERE key_id = ANY(@key_ids::text[]) GROUP BY key_id
) AS per_table
GROUP BY key_id
ORDER BY key_id;

-- name: KeptTokensByKey :many
-- The deleted tokens events keep sealed by @key_id for upstream revocation
-- (00012), after event @after_id in id order, through events_by_key (a
-- pending revocation's rows are few: they are sorted, not walked in id
-- order).
SELECT id, user_id, provider, key_id::text AS key_id, access_token::bytea AS access_token, refresh_token
FROM events
WHERE key_id = @key_id::text AND id > @after_id
ORDER BY id
LIMIT @max_rows;

-- name: StoreReencryptedKeptTokens :execrows
-- Replaces an event's kept tokens re-encrypted under another key, only if
-- the event still holds the ciphertexts they were read as: the delivery
-- worker clears them once revoked (ForgetRevokedTokens) and
-- events.retention removes the event, either at any moment; re-encryption
-- never brings back tokens the worker forgot.
UPDATE events SET
    key_id        = @key_id::text,
    access_token  = @access_token::bytea,
    refresh_token = sqlc.narg(refresh_token)::bytea
WHERE id = @id
  AND key_id = @read_key_id::text
  AND access_token = @read_access_token::bytea
  AND refresh_token IS NOT DISTINCT FROM sqlc.narg(read_refresh_token)::bytea;
