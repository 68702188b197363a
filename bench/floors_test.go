package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/idemkit/idemkit/core/codec"
	"github.com/idemkit/idemkit/migrations"
)

// The floors are the least any store can do for a new key (and, for
// Redis, a replay) under the contract, written as raw driver calls in the
// same shape as the baselines: they answer "how close to its baseline
// can a store doing this job get on this machine?", which the baselines
// alone do not (they skip the reads that a claim and a fenced complete
// must make).
// BenchmarkStorePair runs each floor against the baseline and each store
// against its floor; the report shows both beside the budget line.
//
//   - floor-redis: a claim script that reads the key and, when it is
//     absent, writes fingerprint and token (one GET and one SET: the claim
//     must see an existing record to replay, refuse or wait), and a
//     complete script that reads the record, compares the token (fencing)
//     and writes the pre-encoded response. Its replay is the same claim
//     script on a completed key, which returns the record undecoded.
//   - floor-pgx-1rt: the least claim statement that decides every claim in
//     one round trip, as pgxstore's design asks (one statement per call): read the live row first, insert only
//     when there is none, and on a conflict (a row inserted after the
//     statement's snapshot) lock and return its newest version with a
//     no-op DO UPDATE, so a row always comes back. No takeover of expired
//     rows (pgxstore's CASE list), no fencing columns, no mismatch data.
//     The raw UPDATE completes it.
//   - floor-pgx: the replay baseline's insert-first claim-or-return CTE as
//     the claim and the raw UPDATE as the complete. Cheaper, but not a
//     floor of the contract: when a concurrent claim inserted the row after
//     the statement's snapshot, ON CONFLICT DO NOTHING skips it and the
//     snapshot still shows no row, so that claim has no decision without a
//     second round trip (and an expired row is never taken over). It shows
//     what giving up the one-round-trip decision would buy.
//   - floor-tiered: one Redis GET that misses (the hot lookup a replay
//     needs to stay on the hot tier) and then pgxstore's own claim and
//     complete.

var (
	floorClaimScript = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2], 'PX', ARGV[3])
return false`)
	floorCompleteScript = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 33) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1`)
)

func floorRedis(client redis.UniversalClient, prefix string, pool int) storeImpl {
	payload := codec.EncodeResponse(benchResponse)
	newKey := func(ctx context.Context, key string) error {
		k := prefix + "{" + key + "}"
		tok := "t" + key
		if err := floorClaimScript.Run(ctx, client, []string{k}, benchFingerprint[:], tok, 30000).Err(); !errors.Is(err, redis.Nil) {
			return fmt.Errorf("floor-redis: claim of new key %s: %v (want no record)", key, err)
		}
		n, err := floorCompleteScript.Run(ctx, client, []string{k}, payload, tok, 3600000).Int()
		if err == nil && n != 1 {
			err = fmt.Errorf("floor-redis: complete of %s refused", key)
		}
		return err
	}
	return storeImpl{name: "floor-redis", pool: pool, floor: true, newKey: newKey, seed: newKey,
		// The same claim script on a completed key: the least a replay
		// costs when the round trip must also be able to claim (the
		// arguments of a claim travel with it), with the record returned
		// whole and not decoded.
		replay: func(ctx context.Context, key string) error {
			v, err := floorClaimScript.Run(ctx, client, []string{prefix + "{" + key + "}"}, benchFingerprint[:], "r"+key, 30000).Text()
			if err == nil && len(v) != len(payload) {
				err = fmt.Errorf("floor-redis: replay of %s: %d bytes, want %d", key, len(v), len(payload))
			}
			return err
		}}
}

func floorPgx1RT(pool *pgxpool.Pool, schema string, size int) storeImpl {
	q := newRawPgxSQL(schema)
	t := pgx.Identifier{schema, migrations.DefaultTable}.Sanitize()
	claim := `WITH cur AS (
	SELECT state, lease_token, status, headers, body FROM ` + t + ` WHERE key = $1 AND expires_at > now()
), up AS (
	INSERT INTO ` + t + ` AS r (key, fingerprint, state, lease_token, lease_expires_at, expires_at)
	SELECT $1, $2, 'pending', $3, now() + $4::bigint * interval '1 microsecond', now() + $4::bigint * interval '1 microsecond'
	WHERE NOT EXISTS (SELECT FROM cur)
	ON CONFLICT (key) DO UPDATE SET state = r.state
	RETURNING r.state, r.lease_token, r.status, r.headers, r.body
)
SELECT * FROM up UNION ALL SELECT * FROM cur`
	return storeImpl{name: "floor-pgx-1rt", pool: size, floor: true,
		newKey: func(ctx context.Context, key string) error {
			tok := "t" + key
			var state string
			var holder *string
			var status *int32
			var h, body []byte
			err := pool.QueryRow(ctx, claim, key, benchFingerprint[:], tok, int64(30*time.Second/time.Microsecond)).Scan(&state, &holder, &status, &h, &body)
			if err != nil || state != "pending" || holder == nil || *holder != tok {
				return fmt.Errorf("floor-pgx-1rt: claim of new key %s: %v (want it acquired, got %q)", key, err, state)
			}
			return q.completeRaw(ctx, pool, "floor-pgx-1rt", key, tok)
		}}
}

func floorPgx(pool *pgxpool.Pool, schema string, size int) storeImpl {
	q := newRawPgxSQL(schema)
	return storeImpl{name: "floor-pgx", pool: size, floor: true,
		newKey: func(ctx context.Context, key string) error {
			tok := "t" + key
			var status *int32
			var h, body []byte
			err := pool.QueryRow(ctx, q.claimOrReturn, key, benchFingerprint[:], tok, int64(30*time.Second/time.Microsecond)).Scan(&status, &h, &body)
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("floor-pgx: claim of new key %s: %v (want no record)", key, err)
			}
			return q.completeRaw(ctx, pool, "floor-pgx", key, tok)
		}}
}

func floorTiered(client redis.UniversalClient, prefix string, durable storeImpl) storeImpl {
	return storeImpl{name: "floor-tiered", pool: durable.pool, floor: true,
		newKey: func(ctx context.Context, key string) error {
			if err := client.Get(ctx, prefix+"{"+key+"}").Err(); !errors.Is(err, redis.Nil) {
				return fmt.Errorf("floor-tiered: lookup of new key %s: %v (want a miss)", key, err)
			}
			return durable.newKey(ctx, key)
		}}
}
