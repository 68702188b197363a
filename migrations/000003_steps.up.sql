-- idemkit: recovery points, the named steps a handler records as it goes.
--
-- A handler running under a claim records each step (pgxstore's Step) in the
-- same transaction as the step's own writes; a retry that claims the key
-- again after a crash finds the steps of the same request (same key and
-- fingerprint) and resumes after the last one instead of starting over.
-- Steps live in a table of their own rather than in the record: a pending
-- record whose lease lapsed counts as expired (a claim takes it over and
-- resets it, a prune deletes it), while its steps must outlive it until the
-- retry. A step expires on its own (expires_at, set from the store's step
-- retention); the prune deletes expired steps.

CREATE TABLE IF NOT EXISTS idempotency_keys_steps (
    key         text        NOT NULL,
    name        text        NOT NULL CONSTRAINT idempotency_keys_steps_name_check CHECK (name <> ''),
    fingerprint bytea       NOT NULL CONSTRAINT idempotency_keys_steps_fingerprint_check CHECK (octet_length(fingerprint) = 32),
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_steps_pkey PRIMARY KEY (key, name)
);

CREATE INDEX IF NOT EXISTS idempotency_keys_steps_expires_at_idx ON idempotency_keys_steps (expires_at);
