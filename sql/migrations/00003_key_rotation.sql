-- Key rotation walks the values of one key at a time in primary-key order
-- (keyset pagination): these indexes make each batch an index range scan.

-- +goose Up
CREATE INDEX auth_tokens_key_id_idx ON auth_tokens (key_id, id);
CREATE INDEX offline_tokens_key_id_idx ON offline_tokens (key_id, user_id);

-- +goose Down
DROP INDEX offline_tokens_key_id_idx;
DROP INDEX auth_tokens_key_id_idx;
