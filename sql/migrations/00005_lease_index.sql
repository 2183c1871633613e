-- The worker sweeps lapsed refresh leases every scan; leases are few and
-- short-lived, so a partial index keeps the sweep from reading the table.

-- +goose Up
CREATE INDEX auth_tokens_lease_idx ON auth_tokens (refresh_lease_until)
    WHERE refresh_lease_owner IS NOT NULL;

-- +goose Down
DROP INDEX auth_tokens_lease_idx;
