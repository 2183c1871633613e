-- The audit trail (issue 11): who was handed, wrote or deleted whose token,
-- every refresh outcome and every refused request. Append-only: no code path
-- updates a row, a trigger refuses UPDATE and TRUNCATE, and DELETE is
-- refused unless the transaction set tokenstore.audit_retention to on,
-- which only the retention query (DeleteExpiredAuditEvents) does. Rows hold
-- no token material: only names, outcome and request id.
--
-- occurred_at is the database's clock (clock_timestamp(): each row its own
-- instant, also in a multi-row insert), so events from instances with skewed
-- clocks still sort by when they were recorded.

-- +goose Up
CREATE TABLE audit_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    instance    text        NOT NULL CHECK (length(instance) <= 255),
    caller      text        NOT NULL CHECK (length(caller) <= 255),
    action      text        NOT NULL CHECK (action <> '' AND length(action) <= 64),
    user_id     text        NOT NULL CHECK (length(user_id) <= 255),
    provider    text        NOT NULL CHECK (length(provider) <= 64),
    status      integer     NOT NULL CHECK (status BETWEEN 0 AND 599),
    code        text        NOT NULL CHECK (length(code) <= 64),
    request_id  text        NOT NULL CHECK (length(request_id) <= 255)
);

-- Listing by time (and retention, oldest first) uses the first; filters by
-- user or caller over a time range use the others. Provider and action have
-- few values: they filter the rows one of these indexes finds.
CREATE INDEX audit_events_by_time ON audit_events (occurred_at, id);
CREATE INDEX audit_events_by_user ON audit_events (user_id, occurred_at);
CREATE INDEX audit_events_by_caller ON audit_events (caller, occurred_at);

-- +goose StatementBegin
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('tokenstore.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused (rows leave only through retention)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- +goose Down
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
