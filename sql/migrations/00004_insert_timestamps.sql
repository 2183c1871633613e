-- created_at and updated_at defaulted to two separate clock_timestamp()
-- calls, so a new row could show updated_at a microsecond after created_at.
-- now() is the transaction's time: one value for both. Updates keep
-- stamping updated_at with clock_timestamp() in the trigger.

-- +goose Up
ALTER TABLE auth_tokens
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now();
ALTER TABLE offline_tokens
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now();

-- +goose Down
ALTER TABLE auth_tokens
    ALTER COLUMN created_at SET DEFAULT clock_timestamp(),
    ALTER COLUMN updated_at SET DEFAULT clock_timestamp();
ALTER TABLE offline_tokens
    ALTER COLUMN created_at SET DEFAULT clock_timestamp(),
    ALTER COLUMN updated_at SET DEFAULT clock_timestamp();
