-- Delivery of outbox events (issue 13): to webhook endpoints, and to the
-- provider for upstream revocation of deleted tokens.
--
-- A delivery is one event bound for one target: a webhook endpoint's name
-- (a-z, 0-9, '-', '_') or 'revocation' (revoke the deleted tokens at their
-- provider; endpoint names cannot take it, see adapters/webhook). Every
-- instance runs the delivery worker; it claims due deliveries with FOR
-- UPDATE SKIP LOCKED and a lease (lease_owner, lease_until) in a short
-- transaction, sends, then records the outcome if it still holds the lease
-- (attempts is the fence). It never keeps a transaction open across a send:
-- an open transaction would hold back the pull feed (00011), which lists
-- only transactions below the snapshot's xmin. An instance that dies
-- mid-send leaves its lease to lapse; another instance then sends the same
-- event again, with the same webhook-id (at least once).
--
-- Order: a delivery is claimed only when no earlier delivery (by the
-- event's commit position, xact_id then event_id) for the same target,
-- user and provider is still pending, so each receiver sees one user's
-- provider events in commit order, retries included.
--
-- Fan-out: event_targets holds, per webhook endpoint, the feed position up
-- to which events were turned into deliveries; an instance advances it in
-- one statement under a row lock taken with SKIP LOCKED, so the events are
-- queued once. A new endpoint starts at the feed's end: it receives the
-- events that follow its first start, not the backlog. An endpoint that
-- answers 410 Gone ("no longer interested", Standard Webhooks) is marked
-- gone: its pending deliveries fail and no new ones are queued until its
-- URL changes or an operator redelivers to it.
--
-- Revocation deliveries are inserted by the DELETE's own transaction, with
-- the deleted tokens kept sealed in the event row (access_token,
-- refresh_token, key_id: the names of auth_tokens, the same ciphertexts);
-- they are cleared once revoked. The key census counts them.
--
-- Retries: a delivery is retried until max_age after retry_from, the
-- event's time (not its first attempt: one waiting behind an earlier
-- delivery for the same user would otherwise start its window days late,
-- and a receiver down for days would be sent each user's events one
-- window after another), or the time an operator redelivered it.
--
-- Deliveries leave with their event (ON DELETE CASCADE): events.retention
-- removes delivered and failed ones alike; start-up requires every
-- endpoint's max_age to be shorter than the retention, so an event is not
-- removed while its delivery can still be retried (a redelivery older
-- than the retention excepted).

-- +goose Up
ALTER TABLE events RENAME COLUMN sealed TO refresh_token;
ALTER TABLE events ADD COLUMN access_token bytea;
ALTER TABLE events DROP CONSTRAINT events_check;
ALTER TABLE events ADD CONSTRAINT events_sealed_tokens
    CHECK ((key_id IS NULL) = (access_token IS NULL) AND (refresh_token IS NULL OR key_id IS NOT NULL));
CREATE INDEX events_by_key ON events (key_id) WHERE key_id IS NOT NULL;

CREATE TABLE event_targets (
    name       text        PRIMARY KEY CHECK (name <> '' AND length(name) <= 64),
    url_sha256 text        NOT NULL, -- hex SHA-256 of the endpoint's URL, to see it change (a URL's query may hold the receiver's token: not stored)
    after_xact bigint      NOT NULL,
    after_id   bigint      NOT NULL,
    gone_at    timestamptz, -- the endpoint answered 410 Gone: nothing is sent until its URL changes or an operator redelivers
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    target           text        NOT NULL CHECK (target <> '' AND length(target) <= 64),
    event_id         bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    xact_id          bigint      NOT NULL, -- the event's, for commit order
    user_id          text        NOT NULL,
    provider         text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    retry_from       timestamptz NOT NULL, -- the retry window's start: the event's time, or its redelivery's
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_until      timestamptz,
    last_status      integer     NOT NULL DEFAULT 0,
    last_error       text        NOT NULL DEFAULT '' CHECK (length(last_error) <= 300),
    finished_at      timestamptz,
    PRIMARY KEY (target, event_id),
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL)),
    CHECK ((state = 'pending') = (finished_at IS NULL))
);

-- Claiming walks a target's pending deliveries in commit order and checks
-- that none is pending before them for the same user and provider.
CREATE INDEX deliveries_pending ON deliveries (target, xact_id, event_id) WHERE state = 'pending';
CREATE INDEX deliveries_pending_per_user ON deliveries (target, user_id, provider, xact_id, event_id) WHERE state = 'pending';
-- The census counts failed deliveries (pending ones by the indexes above).
CREATE INDEX deliveries_failed ON deliveries (target) WHERE state = 'failed';
-- Removing an event removes its deliveries (retention).
CREATE INDEX deliveries_by_event ON deliveries (event_id);

-- +goose Down
-- 00011's check cannot hold an access token without a refresh token: the
-- kept tokens are dropped (their revocations are abandoned).
UPDATE events SET key_id = NULL, access_token = NULL, refresh_token = NULL WHERE key_id IS NOT NULL;
DROP TABLE deliveries;
DROP TABLE event_targets;
DROP INDEX events_by_key;
ALTER TABLE events DROP CONSTRAINT events_sealed_tokens;
ALTER TABLE events DROP COLUMN access_token;
ALTER TABLE events RENAME COLUMN refresh_token TO sealed;
ALTER TABLE events ADD CONSTRAINT events_check CHECK ((key_id IS NULL) = (sealed IS NULL));
