-- Token storage. Every value is a Fernet ciphertext: plaintext never reaches
-- the database. key_id names the key that sealed the row's ciphertexts, so a
-- decrypt picks the right key at once and key rotation can find old rows.

-- +goose Up
-- +goose StatementBegin
-- Maintains created_at, updated_at and version in the database itself, so no
-- writer (an upsert, a refresh, a manual fix in psql) can forget to bump them.
CREATE FUNCTION tokenstore_touch_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := OLD.created_at;
    NEW.updated_at := clock_timestamp();
    NEW.version := OLD.version + 1;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TABLE auth_tokens (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id                  text        NOT NULL,
    provider                 text        NOT NULL,
    key_id                   text        NOT NULL,
    access_token             bytea       NOT NULL,
    refresh_token            bytea,               -- NULL: no refresh token
    access_token_expires_at  timestamptz,         -- NULL: never expires
    refresh_token_expires_at timestamptz,         -- NULL: never expires
    version                  bigint      NOT NULL DEFAULT 1,
    created_at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT auth_tokens_user_provider_key UNIQUE (user_id, provider),
    CONSTRAINT auth_tokens_user_id_check CHECK (octet_length(user_id) BETWEEN 1 AND 255),
    CONSTRAINT auth_tokens_provider_check CHECK (provider ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    CONSTRAINT auth_tokens_key_id_check CHECK (key_id <> ''),
    CONSTRAINT auth_tokens_access_token_check CHECK (octet_length(access_token) > 0),
    CONSTRAINT auth_tokens_refresh_expiry_check
        CHECK (refresh_token IS NOT NULL OR refresh_token_expires_at IS NULL)
);

CREATE TRIGGER auth_tokens_touch BEFORE UPDATE ON auth_tokens
    FOR EACH ROW EXECUTE FUNCTION tokenstore_touch_row();

CREATE TABLE offline_tokens (
    user_id    text        PRIMARY KEY,
    key_id     text        NOT NULL,
    token      bytea       NOT NULL,
    version    bigint      NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT offline_tokens_user_id_check CHECK (octet_length(user_id) BETWEEN 1 AND 255),
    CONSTRAINT offline_tokens_key_id_check CHECK (key_id <> ''),
    CONSTRAINT offline_tokens_token_check CHECK (octet_length(token) > 0)
);

CREATE TRIGGER offline_tokens_touch BEFORE UPDATE ON offline_tokens
    FOR EACH ROW EXECUTE FUNCTION tokenstore_touch_row();

-- +goose Down
DROP TABLE offline_tokens;
DROP TABLE auth_tokens;
DROP FUNCTION tokenstore_touch_row();
