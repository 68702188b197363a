-- Reverses 000002_completed_token.up.sql: drops the column and, with it, its
-- constraint. Completed rows then no longer say which token completed them.
ALTER TABLE IF EXISTS idempotency_keys DROP COLUMN IF EXISTS completed_token;
