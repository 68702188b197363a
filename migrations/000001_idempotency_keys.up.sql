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

-- idempotency_keys_claim decides a claim that found no live record: the
-- slow path of pgxstore's claim statement, which answers a replay or a
-- conflict from a plain index lookup and calls this function only when that
-- lookup finds nothing (UNION ALL ... LIMIT 1 never starts the second branch
-- once the first yields a row). Keeping the INSERT out of the statement's
-- own plan is what makes a replay as cheap as a raw SELECT: with the insert
-- in a CTE every replay paid for planning and starting it.
--
--   - cur re-reads the live record in this statement's snapshot, so a record
--     committed since the caller's lookup still answers from cur;
--   - otherwise up inserts a pending record. If a row is in the way (an
--     expired one, or one a concurrent statement inserted or took over after
--     our snapshot was taken), ON CONFLICT locks its newest committed
--     version and the unconditional DO UPDATE either takes it over (expired
--     by now()) or rewrites it unchanged; RETURNING shows the newest version
--     either way. So exactly one row and one decision, with no
--     read-then-write window: one of any number of concurrent claims wins.
--
-- The token is unique per attempt, so "the row holds p_token and is pending"
-- means this call acquired it. search_path is pinned to the schema the
-- function was created in, so the table resolves whatever the caller's is.
CREATE OR REPLACE FUNCTION idempotency_keys_claim(p_key text, p_fp bytea, p_token text, p_lease_us bigint)
RETURNS TABLE (acquired boolean, same boolean, state text, remaining_us bigint,
               status integer, headers bytea, body bytea, body_omitted boolean)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $idemkit_claim$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH cur AS (
        SELECT t.fingerprint, t.state, t.lease_token, t.lease_expires_at, t.status, t.headers, t.body, t.body_omitted
        FROM idempotency_keys AS t
        WHERE t.key = p_key AND t.expires_at > now()
    ), up AS (
        INSERT INTO idempotency_keys AS r (key, fingerprint, state, lease_token, lease_expires_at, created_at, expires_at)
        SELECT p_key, p_fp, 'pending', p_token,
            now() + p_lease_us * interval '1 microsecond', now(),
            now() + p_lease_us * interval '1 microsecond'
        WHERE NOT EXISTS (SELECT FROM cur)
        ON CONFLICT (key) DO UPDATE SET
            fingerprint = CASE WHEN r.expires_at <= now() THEN excluded.fingerprint ELSE r.fingerprint END,
            state = CASE WHEN r.expires_at <= now() THEN excluded.state ELSE r.state END,
            lease_token = CASE WHEN r.expires_at <= now() THEN excluded.lease_token ELSE r.lease_token END,
            lease_expires_at = CASE WHEN r.expires_at <= now() THEN excluded.lease_expires_at ELSE r.lease_expires_at END,
            status = CASE WHEN r.expires_at <= now() THEN excluded.status ELSE r.status END,
            headers = CASE WHEN r.expires_at <= now() THEN excluded.headers ELSE r.headers END,
            body = CASE WHEN r.expires_at <= now() THEN excluded.body ELSE r.body END,
            body_omitted = CASE WHEN r.expires_at <= now() THEN excluded.body_omitted ELSE r.body_omitted END,
            created_at = CASE WHEN r.expires_at <= now() THEN excluded.created_at ELSE r.created_at END,
            completed_at = CASE WHEN r.expires_at <= now() THEN excluded.completed_at ELSE r.completed_at END,
            expires_at = CASE WHEN r.expires_at <= now() THEN excluded.expires_at ELSE r.expires_at END
        RETURNING r.fingerprint, r.state, r.lease_token, r.lease_expires_at, r.status, r.headers, r.body, r.body_omitted
    ), d AS (
        SELECT * FROM up
        UNION ALL
        SELECT * FROM cur
    )
    SELECT
        d.state = 'pending' AND d.lease_token = p_token,
        d.fingerprint = p_fp,
        d.state,
        CASE WHEN d.state = 'pending'
            THEN greatest(0, (extract(epoch FROM d.lease_expires_at - now()) * 1000000)::bigint)
        END,
        CASE WHEN d.state = 'completed' AND d.fingerprint = p_fp THEN d.status END,
        CASE WHEN d.state = 'completed' AND d.fingerprint = p_fp THEN d.headers END,
        CASE WHEN d.state = 'completed' AND d.fingerprint = p_fp THEN d.body END,
        d.body_omitted
    FROM d;
END
$idemkit_claim$;

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
