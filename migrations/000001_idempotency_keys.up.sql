-- idemkit: the idempotency record table.
--
-- Objects are named by their default, unqualified names and land in the
-- first schema of search_path. Run the file as it is with golang-migrate
-- (choose the schema in the URL: "postgres://.../db?search_path=myschema"),
-- or let pgxstore.EnsureSchema apply it: that sets the schema with
-- SET LOCAL search_path and renames every identifier starting with
-- idempotency_keys to the configured table name plus the same suffix, quoted
-- (idempotency_keys_json becomes "<table>_json"). The statements are
-- idempotent (IF NOT EXISTS, OR REPLACE), so applying them twice is harmless.
--
-- bytea is the truth: the body is stored byte for byte and replayed from it.
-- The idempotency_keys_json view is a read-only convenience for operators.

CREATE TABLE IF NOT EXISTS idempotency_keys (
    -- the scoped key digest (never a raw client key)
    key              text        NOT NULL,
    -- SHA-256 of the request payload
    fingerprint      bytea       NOT NULL,
    state            text        NOT NULL,
    -- fencing token and lease of the current holder (pending rows only)
    lease_token      text,
    lease_expires_at timestamptz,
    -- the stored response (completed rows only)
    status           integer,
    headers          bytea,
    body             bytea,
    body_omitted     boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    -- retention: the lease expiry for pending rows, the TTL for completed
    -- ones; a row with expires_at <= now() counts as absent.
    expires_at       timestamptz NOT NULL,

    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (key),
    CONSTRAINT idempotency_keys_key_check CHECK (key <> ''),
    CONSTRAINT idempotency_keys_fingerprint_check CHECK (octet_length(fingerprint) = 32),
    CONSTRAINT idempotency_keys_state_check CHECK (state IN ('pending', 'completed')),
    -- a pending row is held by a token under a lease and carries no response
    CONSTRAINT idempotency_keys_pending_check CHECK (
        state <> 'pending' OR (
            lease_token IS NOT NULL AND lease_token <> ''
            AND lease_expires_at IS NOT NULL AND expires_at = lease_expires_at
            AND status IS NULL AND headers IS NULL AND body IS NULL
            AND NOT body_omitted AND completed_at IS NULL
        )
    ),
    -- a completed row always carries a whole response and no lease
    CONSTRAINT idempotency_keys_completed_check CHECK (
        state <> 'completed' OR (
            status IS NOT NULL AND status BETWEEN 100 AND 599
            AND headers IS NOT NULL AND body IS NOT NULL
            AND completed_at IS NOT NULL
            AND lease_token IS NULL AND lease_expires_at IS NULL
        )
    ),
    -- an omitted body is stored empty
    CONSTRAINT idempotency_keys_body_omitted_check CHECK (NOT body_omitted OR octet_length(body) = 0)
);

-- serves Prune (DELETE ... WHERE expires_at <= now() in batches)
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);

-- idempotency_keys_try_jsonb decodes a body as jsonb, or returns NULL when
-- the bytes are not UTF-8 JSON (a plain cast would raise an error).
CREATE OR REPLACE FUNCTION idempotency_keys_try_jsonb(b bytea) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
BEGIN
    RETURN convert_from(b, 'UTF8')::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$;

-- Operators' view: completed bodies that are valid JSON as jsonb (NULL
-- otherwise), e.g. SELECT body_json->>'id' FROM idempotency_keys_json.
CREATE OR REPLACE VIEW idempotency_keys_json AS
SELECT key,
       state,
       status,
       body_omitted,
       octet_length(body) AS body_bytes,
       idempotency_keys_try_jsonb(body) AS body_json,
       created_at,
       completed_at,
       expires_at
FROM idempotency_keys;
