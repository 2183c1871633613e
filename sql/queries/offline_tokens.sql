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
DELETE FROM offline_tokens WHERE user_id = @user_id;
