-- name: UpsertAuthTokens :one
-- One statement, so concurrent writers of the same (user, provider) end with
-- exactly one row holding one writer's complete values.
INSERT INTO auth_tokens (
    user_id, provider, key_id, access_token, refresh_token,
    access_token_expires_at, refresh_token_expires_at
) VALUES (
    @user_id, @provider, @key_id, @access_token, @refresh_token,
    @access_token_expires_at, @refresh_token_expires_at
)
ON CONFLICT (user_id, provider) DO UPDATE SET
    key_id                   = EXCLUDED.key_id,
    access_token             = EXCLUDED.access_token,
    refresh_token            = EXCLUDED.refresh_token,
    access_token_expires_at  = EXCLUDED.access_token_expires_at,
    refresh_token_expires_at = EXCLUDED.refresh_token_expires_at
RETURNING version, created_at, updated_at;

-- name: GetAuthTokens :one
SELECT * FROM auth_tokens
WHERE user_id = @user_id AND provider = @provider;

-- name: GetAuthTokensForUpdate :one
SELECT * FROM auth_tokens
WHERE user_id = @user_id AND provider = @provider
FOR UPDATE;

-- name: UpdateAuthTokens :one
-- Guarded by the version read under the lock: a row changed in between
-- (which the lock should make impossible) updates nothing and is reported.
UPDATE auth_tokens SET
    key_id                   = @key_id,
    access_token             = @access_token,
    refresh_token            = @refresh_token,
    access_token_expires_at  = @access_token_expires_at,
    refresh_token_expires_at = @refresh_token_expires_at
WHERE user_id = @user_id AND provider = @provider AND version = @expected_version
RETURNING version, created_at, updated_at;

-- name: DeleteAuthTokens :execrows
DELETE FROM auth_tokens WHERE user_id = @user_id AND provider = @provider;

-- name: ListAuthTokenProviders :many
SELECT provider, access_token_expires_at, refresh_token_expires_at,
       (refresh_token IS NOT NULL)::boolean AS has_refresh_token, updated_at
FROM auth_tokens
WHERE user_id = @user_id
ORDER BY provider;
