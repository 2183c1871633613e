-- Refresh coordination. A refresh is leased, not locked: the instance that
-- refreshes records itself (refresh_lease_owner) and a deadline
-- (refresh_lease_until) in a short transaction, calls the provider holding no
-- lock or connection, and commits the new tokens only if the row still
-- carries its lease and the version the lease was taken at (fencing). A
-- lease found expired means a refresh was interrupted after the provider may
-- have rotated the refresh token; such tokens need re-authorization rather
-- than a second use of that refresh token.

-- +goose Up
ALTER TABLE auth_tokens
    ADD COLUMN refresh_lease_owner text,
    ADD COLUMN refresh_lease_until timestamptz,
    ADD COLUMN reauth_required     boolean NOT NULL DEFAULT false,
    ADD COLUMN refresh_error       text,          -- machine code of the last failed refresh
    ADD COLUMN next_refresh_at     timestamptz,   -- back-off after a transient failure
    ADD CONSTRAINT auth_tokens_lease_check
        CHECK ((refresh_lease_owner IS NULL) = (refresh_lease_until IS NULL));

-- The proactive refresher's scan: refreshable rows by expiry.
CREATE INDEX auth_tokens_refresh_due_idx ON auth_tokens (access_token_expires_at)
    WHERE refresh_token IS NOT NULL AND NOT reauth_required;

-- +goose Down
DROP INDEX auth_tokens_refresh_due_idx;
ALTER TABLE auth_tokens
    DROP CONSTRAINT auth_tokens_lease_check,
    DROP COLUMN next_refresh_at,
    DROP COLUMN refresh_error,
    DROP COLUMN reauth_required,
    DROP COLUMN refresh_lease_until,
    DROP COLUMN refresh_lease_owner;
