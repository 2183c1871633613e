-- The event outbox (issue 13): what the application must hear about a
-- user's tokens (stored, refreshed, need re-authorization, recovered,
-- deleted; the offline token stored and deleted: domain.EventKind), written
-- in the same transaction as the change it reports, so an event exists if
-- and only if its change committed. Rows hold no token material: names, a
-- reason code and times.
--
-- Commit order. An identity id is assigned at INSERT, not at COMMIT: with
-- concurrent writers, id 8 can commit after a reader has seen id 9 and moved
-- its cursor past 8, which it would then never see. Instead each row records
-- its writer's transaction id (xact_id, pg_current_xact_id(), 64-bit, never
-- wraps), the feed is ordered by (xact_id, id) and lists only transactions
-- below the reading snapshot's xmin (pg_snapshot_xmin(pg_current_snapshot()):
-- every transaction below it has finished, committed or not, so no event can
-- later appear below a cursor the feed handed out). This is the scheme of
-- PgQ (Skype; the txid/xid8 functions were written for it) and of event
-- stores on PostgreSQL (e.g. Emmett's readAll); it costs nothing at write
-- time, unlike serializing writers on a lock. A transaction left open holds
-- the feed back (not its order) until it ends.
--
-- Delivery (webhooks, later): per-endpoint attempts go to their own table
-- keyed by (endpoint, event id), claimed with FOR UPDATE SKIP LOCKED; an
-- event row is never updated. key_id and sealed carry, for upstream
-- revocation, tokens sealed like every stored value (both NULL until then;
-- the key census must count them once they are used).

-- +goose Up
CREATE TABLE events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xact_id     bigint      NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind        text        NOT NULL CHECK (kind <> '' AND length(kind) <= 64),
    user_id     text        NOT NULL CHECK (length(user_id) <= 255),
    provider    text        NOT NULL CHECK (length(provider) <= 64),
    reason      text        NOT NULL CHECK (length(reason) <= 64),
    key_id      text,
    sealed      bytea,
    CHECK ((key_id IS NULL) = (sealed IS NULL))
);

-- The feed reads in commit order; retention removes the oldest.
CREATE INDEX events_by_position ON events (xact_id, id);
CREATE INDEX events_by_time ON events (occurred_at);

-- +goose Down
DROP TABLE events;
