-- name: UpsertOfflineToken :one
INSERT INTO offline_tokens (user_id, key_id, token)
VALUES (@user_id, @key_id, @token)
ON CONFLICT (user_id) DO UPDATE SET
    key_id = EXCLUDED.key_id,
    token  = EXCLUDED.token
RETURNING version, created_at, updated_at;

-- name: GetOfflineToken :one
SELECT * FROM offline_tokens
WHERE user_id = @user_id;

-- name: DeleteOfflineToken :execrows
-- The row is locked first, as in DeleteAuthTokens (auth_tokens.sql): the
-- transaction id that orders the events feed is taken once the row is ours.
WITH target AS (
    SELECT t.user_id FROM offline_tokens AS t WHERE t.user_id = @user_id FOR UPDATE
)
DELETE FROM offline_tokens AS o USING target
WHERE o.user_id = target.user_id;
