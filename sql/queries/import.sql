-- name: ImportAuthTokens :batchone
-- For imports from another system: queued once per row of a batch and sent
-- in one round trip inside the batch's transaction. Tokens tokenstore already
-- holds are never replaced (they may be newer than the source's copy, and a
-- second run of the same import must change nothing): those return no row.
INSERT INTO auth_tokens (
    user_id, provider, key_id, access_token, refresh_token,
    access_token_expires_at, refresh_token_expires_at, access_token_obtained_at
) VALUES (
    @user_id, @provider, @key_id, @access_token, @refresh_token,
    @access_token_expires_at, @refresh_token_expires_at, @access_token_obtained_at
)
ON CONFLICT (user_id, provider) DO NOTHING
RETURNING id;

-- name: ImportOfflineToken :batchone
-- ImportAuthTokens for offline tokens: a user who has one keeps it.
INSERT INTO offline_tokens (user_id, key_id, token)
VALUES (@user_id, @key_id, @token)
ON CONFLICT (user_id) DO NOTHING
RETURNING version;
