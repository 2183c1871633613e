-- Which keyring each running instance holds (issue 12): its primary key id
-- and every key id, refreshed by a heartbeat. `tokenstore keys retire`
-- refuses while a live instance still holds the key, and `keys rotate`
-- warns when live instances disagree on the primary: retiring a key a
-- server still seals with leaves new writes under a retired key.
--
-- Times are the database's clock (clock_timestamp()), so instances with
-- skewed clocks agree on who is live. A row is live until expires_at (a
-- few heartbeat intervals after its last heartbeat, the instance's own
-- setting); an instance that stops deletes its row, one that dies leaves it
-- to expire, and every heartbeat deletes expired rows. Rows hold key ids
-- only, never key material.

-- +goose Up
CREATE TABLE instance_keyrings (
    instance       text        PRIMARY KEY CHECK (instance <> '' AND length(instance) <= 255),
    primary_key_id text        NOT NULL,
    key_ids        text[]      NOT NULL,
    heartbeat_at   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    CONSTRAINT instance_keyrings_primary_first CHECK (key_ids[1] = primary_key_id),
    CONSTRAINT instance_keyrings_expires_after_heartbeat CHECK (expires_at > heartbeat_at)
);

-- +goose Down
DROP TABLE instance_keyrings;
