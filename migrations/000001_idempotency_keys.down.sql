-- Reverses 000001_idempotency_keys.up.sql: drops everything it made.
DROP VIEW IF EXISTS idempotency_keys_json;
DROP FUNCTION IF EXISTS idempotency_keys_try_jsonb(bytea);
DROP TABLE IF EXISTS idempotency_keys;
