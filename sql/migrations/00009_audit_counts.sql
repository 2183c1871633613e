-- Batch events (issue 11): a re-encryption batch of `tokenstore keys
-- rotate` and an import batch are one event each, and what the event must
-- say is how many rows the batch wrote. A column of its own rather than the
-- code (an outcome, filtered on as a name) or the request id (a caller's
-- correlation id): count stays a number an operator can sum. 0 for every
-- event that is not a batch's; NOT NULL DEFAULT 0, so the rows already
-- stored and an older build's inserts (which do not name it) need nothing.
-- Additive: an instance of the previous build keeps working against it.

-- +goose Up
ALTER TABLE audit_events ADD COLUMN count bigint NOT NULL DEFAULT 0 CHECK (count >= 0);

-- +goose Down
ALTER TABLE audit_events DROP COLUMN count;
