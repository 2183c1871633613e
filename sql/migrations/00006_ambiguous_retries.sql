-- A refresh that failed after its request was sent (timeout, 5xx, a lost
-- connection) leaves unknown whether the provider rotated the refresh token
-- (refresh_error 'provider_outcome_unknown'). tokenstore retries it with the
-- same refresh token after the back-off; ambiguous_retries counts those
-- retries for the provider status. New tokens from the user reset it.

-- +goose Up
ALTER TABLE auth_tokens
    ADD COLUMN ambiguous_retries integer NOT NULL DEFAULT 0
        CONSTRAINT auth_tokens_ambiguous_retries_check CHECK (ambiguous_retries >= 0);

-- +goose Down
ALTER TABLE auth_tokens DROP COLUMN ambiguous_retries;
