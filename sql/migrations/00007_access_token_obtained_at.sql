-- When tokenstore obtained each access token (stored by a caller or
-- refreshed), so the refresh margin can be capped at a fraction of the
-- token's lifetime (access_token_expires_at - access_token_obtained_at; see
-- domain.EffectiveMargin): a token living less than the configured margin
-- would otherwise be inside it from the moment it is issued, and every read
-- would refresh it. RFC 6749 section 5.1 expires_in counts from the
-- response; this records when tokenstore received it. NULL: unknown (rows
-- stored before this column, imported rows): the configured margin applies.

-- +goose Up
ALTER TABLE auth_tokens ADD COLUMN access_token_obtained_at timestamptz;

-- +goose Down
ALTER TABLE auth_tokens DROP COLUMN access_token_obtained_at;
