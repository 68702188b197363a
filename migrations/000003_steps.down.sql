-- Reverses 000003_steps.up.sql: drops the steps table and its index. Requests
-- that crashed between recovery points then start over on their retry.
DROP TABLE IF EXISTS idempotency_keys_steps;
