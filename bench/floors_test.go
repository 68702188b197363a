package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/idemkit/idemkit/core"
)

// The floors are the least any store can do for a new key under the
// contract, written as raw driver calls in the same shape as the
// baselines: they answer "how close to its baseline can a store doing
// this job get on this machine?", which the baselines alone do not (they
// skip the reads that a claim and a fenced complete must make).
// BenchmarkStorePair runs each floor against the baseline and each store
// against its floor; the report shows both beside the budget line.
//
//   - floor-redis: a claim script that reads the key and, when it is
//     absent, writes fingerprint and token (one GET and one SET: the claim
//     must see an existing record to replay, refuse or wait), and a
//     complete script that reads the record, compares the token (fencing)
//     and writes the pre-encoded response.
//   - floor-pgx: the replay baseline's claim-or-return CTE as the claim
//     (the claim must return a stored response in the same statement) and
//     the raw UPDATE as the complete.
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
	payload := core.EncodeResponse(benchResponse)
	return storeImpl{name: "floor-redis", pool: pool, floor: true,
		newKey: func(ctx context.Context, key string) error {
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
