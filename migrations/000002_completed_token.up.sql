-- idemkit: a completed row keeps the token that completed it.
--
-- Completing is idempotent for its holder (docs/contract.md): a Complete
-- retried with the same token after its reply was lost must succeed when the
-- row already holds that token's completion. lease_token is cleared when a
-- row completes (the completed-row CHECK of 000001 wants it NULL), so the
-- completing token goes to a column of its own. Rows completed before this
-- migration keep NULL there; pending rows never carry one.
--
-- ADD COLUMN IF NOT EXISTS skips the whole clause, constraint included, when
-- the column is there, so applying the file twice is harmless; the column is
-- nullable without a default, so adding it rewrites nothing.

ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS completed_token text
    CONSTRAINT idempotency_keys_completed_token_check
    CHECK (completed_token IS NULL OR (completed_token <> '' AND state = 'completed'));
