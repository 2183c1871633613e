-- Change notifications for the read cache (issue 14). Every statement that
-- changes stored tokens (a PUT, a refresh, a lease taken or released, a
-- delete, re-encryption, an import, a manual fix in psql, a TRUNCATE) sends,
-- when its transaction commits, one NOTIFY on channel tokenstore_changes per
-- changed row:
--
--   {"table":"auth_tokens","user":"<user_id>","provider":"<provider>","version":<n>}
--   {"table":"offline_tokens","user":"<user_id>","provider":"","version":<n>}
--
-- version is the row's version after the change (before it, for a delete).
-- A statement changing more than 1000 rows (a large import batch, a bulk
-- UPDATE typed in psql, a TRUNCATE) sends a single
-- {"table":"<table>","all":true} instead: every cached row is dropped.
-- (Re-encryption batches of 500, the worker's claims and the lapsed-lease
-- sweep stay per row, so they do not empty every instance's cache.) Payloads hold names and
-- numbers, never token material. PostgreSQL delivers notifications in
-- commit order and only after the commit, so a listener that has read a
-- notification sent after some commit has also read every notification of
-- that commit (the cache's staleness bound rests on it; see
-- adapters/readcache).
--
-- The triggers are per statement with transition tables, not per row: one
-- trigger call per statement, however many rows it changes.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION tokenstore_notify_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('tokenstore_changes', json_build_object('table', TG_TABLE_NAME, 'all', true)::text);
        RETURN NULL;
    END IF;
    SELECT count(*) INTO n FROM (SELECT 1 FROM changed_rows LIMIT 1001) AS c;
    IF n > 1000 THEN
        PERFORM pg_notify('tokenstore_changes', json_build_object('table', TG_TABLE_NAME, 'all', true)::text);
    ELSIF n > 0 AND TG_TABLE_NAME = 'auth_tokens' THEN
        PERFORM pg_notify('tokenstore_changes', json_build_object(
            'table', 'auth_tokens', 'user', c.user_id, 'provider', c.provider, 'version', c.version)::text)
        FROM changed_rows AS c;
    ELSIF n > 0 THEN
        PERFORM pg_notify('tokenstore_changes', json_build_object(
            'table', 'offline_tokens', 'user', c.user_id, 'provider', '', 'version', c.version)::text)
        FROM changed_rows AS c;
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- A transition table can serve one event per trigger, hence one trigger per
-- event: the rows inserted, the rows as updated (user_id and provider never
-- change in an UPDATE tokenstore sends; a manual UPDATE that moved a row to
-- another user would leave the old key cached, so it is refused below), and
-- the rows deleted.
CREATE TRIGGER auth_tokens_notify_insert AFTER INSERT ON auth_tokens
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();
CREATE TRIGGER auth_tokens_notify_update AFTER UPDATE ON auth_tokens
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();
CREATE TRIGGER auth_tokens_notify_delete AFTER DELETE ON auth_tokens
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();
CREATE TRIGGER auth_tokens_notify_truncate AFTER TRUNCATE ON auth_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();

CREATE TRIGGER offline_tokens_notify_insert AFTER INSERT ON offline_tokens
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();
CREATE TRIGGER offline_tokens_notify_update AFTER UPDATE ON offline_tokens
    REFERENCING NEW TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();
CREATE TRIGGER offline_tokens_notify_delete AFTER DELETE ON offline_tokens
    REFERENCING OLD TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();
CREATE TRIGGER offline_tokens_notify_truncate AFTER TRUNCATE ON offline_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION tokenstore_notify_changes();

-- ALWAYS: they fire under session_replication_role = replica too
-- (pg_restore --disable-triggers aside, logical replication's apply), where
-- an ordinary trigger would not. The listener sends its probes only while
-- all eight are enabled so.
ALTER TABLE auth_tokens ENABLE ALWAYS TRIGGER auth_tokens_notify_insert;
ALTER TABLE auth_tokens ENABLE ALWAYS TRIGGER auth_tokens_notify_update;
ALTER TABLE auth_tokens ENABLE ALWAYS TRIGGER auth_tokens_notify_delete;
ALTER TABLE auth_tokens ENABLE ALWAYS TRIGGER auth_tokens_notify_truncate;
ALTER TABLE offline_tokens ENABLE ALWAYS TRIGGER offline_tokens_notify_insert;
ALTER TABLE offline_tokens ENABLE ALWAYS TRIGGER offline_tokens_notify_update;
ALTER TABLE offline_tokens ENABLE ALWAYS TRIGGER offline_tokens_notify_delete;
ALTER TABLE offline_tokens ENABLE ALWAYS TRIGGER offline_tokens_notify_truncate;

-- +goose StatementBegin
-- A row's identity never changes: the cache (and the events feed) key on
-- it, so an UPDATE that would move a row to another user or provider is
-- refused; delete and insert instead, which both notify.
CREATE FUNCTION tokenstore_keep_auth_tokens_identity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS DISTINCT FROM OLD.user_id OR NEW.provider IS DISTINCT FROM OLD.provider THEN
        RAISE EXCEPTION 'the user_id and provider of stored tokens never change: delete the row and insert the new one'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION tokenstore_keep_offline_tokens_identity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        RAISE EXCEPTION 'the user_id of a stored offline token never changes: delete the row and insert the new one'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER auth_tokens_keep_identity BEFORE UPDATE OF user_id, provider ON auth_tokens
    FOR EACH ROW EXECUTE FUNCTION tokenstore_keep_auth_tokens_identity();
CREATE TRIGGER offline_tokens_keep_identity BEFORE UPDATE OF user_id ON offline_tokens
    FOR EACH ROW EXECUTE FUNCTION tokenstore_keep_offline_tokens_identity();

-- +goose Down
-- A running release's next probe finds the triggers gone and is refused:
-- no read is answered from memory after this.
DROP TRIGGER offline_tokens_keep_identity ON offline_tokens;
DROP TRIGGER auth_tokens_keep_identity ON auth_tokens;
DROP FUNCTION tokenstore_keep_offline_tokens_identity();
DROP FUNCTION tokenstore_keep_auth_tokens_identity();
DROP TRIGGER offline_tokens_notify_truncate ON offline_tokens;
DROP TRIGGER offline_tokens_notify_delete ON offline_tokens;
DROP TRIGGER offline_tokens_notify_update ON offline_tokens;
DROP TRIGGER offline_tokens_notify_insert ON offline_tokens;
DROP TRIGGER auth_tokens_notify_truncate ON auth_tokens;
DROP TRIGGER auth_tokens_notify_delete ON auth_tokens;
DROP TRIGGER auth_tokens_notify_update ON auth_tokens;
DROP TRIGGER auth_tokens_notify_insert ON auth_tokens;
DROP FUNCTION tokenstore_notify_changes();
