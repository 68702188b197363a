package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/migrations"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
)

// The store benchmarks measure throughput (ops/s) of every store next to
// raw driver calls doing the same round trips, in one run, at each
// concurrency of [storeConcurrencies] (an explicit pool of goroutines
// sharing b.N operations):
//
//	BenchmarkStore/NewKey/c=<n>/<impl>   Claim of a fresh key + Complete
//	BenchmarkStore/Replay/c=<n>/<impl>   Claim of a completed key (decoded)
//
// impl is memstore, redisstore, pgxstore, tieredstore (redisstore over
// pgxstore), raw-redis (go-redis EVALSHA of trivial scripts: SET of the
// fingerprint and token, SET of the encoded response, GET of it — 2 round
// trips for a new key, 1 for a replay) or raw-pgx (INSERT … ON CONFLICT DO
// NOTHING claim + UPDATE complete; a one-statement claim-or-return CTE replay). Every stored response
// has a 1 KiB body. At c=1 each impl also reports the Redis commands
// (redis-rt/op) and Postgres statements (pg-rt/op) one operation sends.
// BenchmarkRedisRecordMemory reports MEMORY USAGE of one record.
// BenchmarkStorePair (below) judges each throughput line of the budget: the
// store and its baseline in alternating slices of one benchmark.

var storeConcurrencies = []int{1, 8, 32, 128}

var benchResponse = &core.Response{
	Status: http.StatusCreated,
	Header: http.Header{"Content-Type": {"application/json"}, "Location": {"/payments/pay_1"}},
	Body:   bytes.Repeat([]byte("x"), 1024),
}

var benchFingerprint = core.Fingerprint(sha256.Sum256(payBody))

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// storeImpl is one way of doing the benchmarked operations.
type storeImpl struct {
	name   string
	pool   int                                         // connections available to it (0: none)
	newKey func(ctx context.Context, key string) error // claim + complete
	seed   func(ctx context.Context, key string) error // leave a completed record
	replay func(ctx context.Context, key string) error
	floor  bool   // a floor (floors_test.go): paired runs only; new keys (and replays where it has replay)
	flush  func() // waits for background writes, if the store makes any
}

// storeOf adapts a core.Store.
func storeOf(name string, pool int, s core.Store) storeImpl {
	newKey := func(ctx context.Context, key string) error {
		tok := core.Token("t" + key)
		c, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: benchFingerprint, Token: tok, Lease: 30 * time.Second})
		if err != nil {
			return err
		}
		if c.Status != core.ClaimAcquired {
			return fmt.Errorf("%s: claim of new key %s = %v; want acquired", name, key, c.Status)
		}
		return s.Complete(ctx, key, tok, benchResponse, time.Hour)
	}
	return storeImpl{
		name:   name,
		pool:   pool,
		newKey: newKey,
		seed:   newKey,
		replay: func(ctx context.Context, key string) error {
			c, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: benchFingerprint, Token: "unused", Lease: 30 * time.Second})
			if err != nil {
				return err
			}
			if c.Status != core.ClaimReplay || c.Response == nil || len(c.Response.Body) != len(benchResponse.Body) {
				return fmt.Errorf("%s: claim of completed key %s = %v; want a replay", name, key, c.Status)
			}
			return nil
		},
	}
}

var (
	rawSetScript = redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2], 'PX', ARGV[3]) return 1`)
	rawGetScript = redis.NewScript(`return redis.call('GET', KEYS[1])`)
)

func rawRedis(client redis.UniversalClient, prefix string, pool int) storeImpl {
	payload := codec.EncodeResponse(benchResponse)
	newKey := func(ctx context.Context, key string) error {
		k := prefix + "{" + key + "}"
		if err := rawSetScript.Run(ctx, client, []string{k}, benchFingerprint[:], "t"+key, 30000).Err(); err != nil {
			return err
		}
		return rawSetScript.Run(ctx, client, []string{k}, payload, "", 3600000).Err()
	}
	return storeImpl{
		name: "raw-redis", pool: pool, newKey: newKey, seed: newKey,
		replay: func(ctx context.Context, key string) error {
			v, err := rawGetScript.Run(ctx, client, []string{prefix + "{" + key + "}"}).Text()
			if err == nil && len(v) != len(payload) {
				err = fmt.Errorf("raw-redis: got %d bytes; want %d", len(v), len(payload))
			}
			return err
		},
	}
}

// rawPgxSQL holds the raw statements of the Postgres baselines and floor.
type rawPgxSQL struct {
	insert        string // claim: INSERT … ON CONFLICT DO NOTHING
	claimOrReturn string // one-statement claim that returns a stored row
	complete      string // UPDATE of the pending row under its token
	headers       []byte // benchResponse's header, encoded
}

func newRawPgxSQL(schema string) rawPgxSQL {
	t := pgx.Identifier{schema, migrations.DefaultTable}.Sanitize()
	return rawPgxSQL{
		insert: `INSERT INTO ` + t + ` (key, fingerprint, state, lease_token, lease_expires_at, expires_at)
		VALUES ($1, $2, 'pending', $3, now() + $4::bigint * interval '1 microsecond', now() + $4::bigint * interval '1 microsecond')
		ON CONFLICT (key) DO NOTHING`,
		// What issue 7 names as the replay baseline: a raw one-statement
		// claim (CTE) that inserts a pending row when the key is new and
		// otherwise returns the stored response — the same job in the same
		// round trip as the store's Claim, without the takeover, fencing and
		// mismatch rules. floor-pgx uses it as its claim.
		claimOrReturn: `WITH ins AS (
		INSERT INTO ` + t + ` (key, fingerprint, state, lease_token, lease_expires_at, expires_at)
		VALUES ($1, $2, 'pending', $3, now() + $4::bigint * interval '1 microsecond', now() + $4::bigint * interval '1 microsecond')
		ON CONFLICT (key) DO NOTHING RETURNING key)
		SELECT status, headers, body FROM ` + t + ` WHERE key = $1 AND expires_at > now() AND NOT EXISTS (SELECT 1 FROM ins)`,
		complete: `UPDATE ` + t + ` SET state = 'completed', lease_token = NULL, lease_expires_at = NULL,
		status = $3, headers = $4, body = $5, body_omitted = false, completed_at = now(),
		expires_at = now() + $6::bigint * interval '1 microsecond'
		WHERE key = $1 AND lease_token = $2 AND state = 'pending'`,
		headers: codec.AppendHeader(nil, benchResponse.Header),
	}
}

// completeRaw stores benchResponse for key held with tok, and fails unless
// exactly one row was updated.
func (q rawPgxSQL) completeRaw(ctx context.Context, pool *pgxpool.Pool, name, key, tok string) error {
	tag, err := pool.Exec(ctx, q.complete, key, tok, int32(benchResponse.Status), q.headers, benchResponse.Body, int64(time.Hour/time.Microsecond))
	if err == nil && tag.RowsAffected() != 1 {
		err = fmt.Errorf("%s: complete of %s updated %d rows", name, key, tag.RowsAffected())
	}
	return err
}

func rawPgx(pool *pgxpool.Pool, schema string, size int) storeImpl {
	q := newRawPgxSQL(schema)
	newKey := func(ctx context.Context, key string) error {
		tok := "t" + key
		if _, err := pool.Exec(ctx, q.insert, key, benchFingerprint[:], tok, int64(30*time.Second/time.Microsecond)); err != nil {
			return err
		}
		return q.completeRaw(ctx, pool, "raw-pgx", key, tok)
	}
	return storeImpl{
		name: "raw-pgx", pool: size, newKey: newKey, seed: newKey,
		replay: func(ctx context.Context, key string) error {
			var status int32
			var h, body []byte
			if err := pool.QueryRow(ctx, q.claimOrReturn, key, benchFingerprint[:], "r"+key, int64(30*time.Second/time.Microsecond)).Scan(&status, &h, &body); err != nil {
				return err
			}
			if len(body) != len(benchResponse.Body) {
				return fmt.Errorf("raw-pgx: got %d body bytes", len(body))
			}
			return nil
		},
	}
}

// counters counts the commands and statements sent while enabled.
type counters struct {
	on        atomic.Bool
	redis, pg atomic.Int64
}

var rt counters

type redisCounter struct{}

func (redisCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (redisCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if rt.on.Load() {
			rt.redis.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (redisCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if rt.on.Load() {
			rt.redis.Add(1)
		}
		return next(ctx, cmds)
	}
}

type pgCounter struct{}

func (pgCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if rt.on.Load() {
		rt.pg.Add(1)
	}
	return ctx
}
func (pgCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

const maxConc = 128

// benchRedis is a client of IDEMKIT_REDIS_URL with a pool of maxConc
// connections, all dialled, or a skip.
func benchRedis(b *testing.B) (*redis.Client, int) {
	url := svctest.RedisURL(b)
	opt, err := redis.ParseURL(url)
	if err != nil {
		b.Fatalf("redis.ParseURL(%q): %v", url, err)
	}
	opt.PoolSize, opt.MinIdleConns = maxConc, maxConc
	client := redis.NewClient(opt)
	b.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		svctest.Unavailable(b, "cannot reach Redis at %s (%s): %v", url, svctest.EnvRedisURL, err)
	}
	client.AddHook(redisCounter{})
	var wg sync.WaitGroup
	for range maxConc {
		wg.Go(func() { client.Ping(ctx) })
	}
	wg.Wait()
	return client, opt.PoolSize
}

// benchPostgres is a pool on IDEMKIT_POSTGRES_URL, or a skip. Its size is
// maxConc, or what the server's max_connections leaves free (less a
// margin of 10) when that is less.
func benchPostgres(b *testing.B) (*pgxpool.Pool, int) {
	url := svctest.PostgresURL(b)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatalf("pgxpool.ParseConfig: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		svctest.Unavailable(b, "cannot reach PostgreSQL at %s (%s): %v", url, svctest.EnvPostgresURL, err)
	}
	var free int
	err = conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int - (SELECT count(*) FROM pg_stat_activity)::int`).Scan(&free)
	conn.Close(ctx)
	if err != nil {
		b.Fatalf("reading max_connections: %v", err)
	}
	size := min(maxConc, free-10)
	if size < 8 {
		b.Fatalf("PostgreSQL has %d free connections; the benchmarks need at least 18", free)
	}
	if size < maxConc {
		b.Logf("PostgreSQL pool of %d connections (max_connections leaves %d free): c=%d waits for connections", size, free, maxConc)
	}
	cfg.MaxConns, cfg.MinConns = int32(size), int32(size)
	cfg.ConnConfig.Tracer = pgCounter{}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatalf("pgxpool.NewWithConfig: %v", err)
	}
	b.Cleanup(pool.Close)
	var wg sync.WaitGroup
	for range size {
		wg.Go(func() {
			c, err := pool.Acquire(ctx)
			if err == nil {
				time.Sleep(10 * time.Millisecond)
				c.Release()
			}
		})
	}
	wg.Wait()
	return pool, size
}

// schema creates a schema with the idemkit table and drops it at cleanup.
func schema(b *testing.B, pool *pgxpool.Pool, name string) string {
	s := "idemkit_bench_" + name + "_" + randHex(4)
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			b.Errorf("drop schema %s: %v", s, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := pgxstore.EnsureSchema(ctx, pool, pgxstore.WithSchema(s)); err != nil {
		b.Fatalf("pgxstore.EnsureSchema(%s): %v", s, err)
	}
	return s
}

func cleanupRedis(client *redis.Client, prefix string) {
	ctx := context.Background()
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		if keys = append(keys, iter.Val()); len(keys) == 1000 {
			client.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		client.Unlink(ctx, keys...)
	}
}

// impls returns every implementation, the servers' ones only when both
// servers are reachable (else the benchmark skips).
func impls(b *testing.B) []storeImpl {
	mem := memstore.New()
	b.Cleanup(func() { mem.Close() })
	client, rpool := benchRedis(b)
	pool, ppool := benchPostgres(b)
	prefix := "idemkit-bench:" + randHex(4) + ":"
	b.Cleanup(func() { cleanupRedis(client, prefix) })
	for _, sc := range []*redis.Script{rawSetScript, rawGetScript, floorClaimScript, floorCompleteScript} {
		if err := sc.Load(context.Background(), client).Err(); err != nil {
			b.Fatal(err)
		}
	}
	rs := redisstore.New(client, redisstore.WithPrefix(prefix+"redis:"))
	ps := pgxstore.New(pool, pgxstore.WithSchema(schema(b, pool, "pgx")))
	ts := tieredstore.New(
		redisstore.New(client, redisstore.WithPrefix(prefix+"tiered:")),
		pgxstore.New(pool, pgxstore.WithSchema(schema(b, pool, "tiered"))),
	)
	pgxImpl := storeOf("pgxstore", ppool, ps)
	tiered := storeOf("tieredstore", ppool, ts)
	tiered.flush = ts.Flush
	return []storeImpl{
		storeOf("memstore", 0, mem),
		storeOf("redisstore", rpool, rs),
		rawRedis(client, prefix+"raw:", rpool),
		pgxImpl,
		rawPgx(pool, schema(b, pool, "raw"), ppool),
		tiered,
		floorRedis(client, prefix+"floor:", rpool),
		floorPgx(pool, schema(b, pool, "floor"), ppool),
		floorPgx1RT(pool, schema(b, pool, "floor1rt"), ppool),
		floorTiered(client, prefix+"floor-hot:", pgxImpl),
	}
}

// seedReplays leaves a completed record of every key and replays each
// once, so that the measured replays find records where a retry would:
// the tiered store's hot tier learns a record from its first replay.
func seedReplays(b *testing.B, im storeImpl, keys []string) {
	b.Helper()
	ctx := context.Background()
	for _, k := range keys {
		if err := im.seed(ctx, k); err != nil {
			b.Fatalf("%s: seeding %s: %v", im.name, k, err)
		}
		if err := im.replay(ctx, k); err != nil {
			b.Fatalf("%s: first replay of %s: %v", im.name, k, err)
		}
	}
	if im.flush != nil {
		im.flush()
	}
}

var keySeq atomic.Int64

// keyer returns key number i of a fresh run: 64 hex digits, like the
// digests the engine gives stores.
func keyer() func(i int64) string {
	run := randHex(4) + strconv.FormatInt(keySeq.Add(1), 16)
	return func(i int64) string { return fmt.Sprintf("%s%0*x", run, 64-len(run), i) }
}

// runConc runs op b.N times in all from conc goroutines and reports ops/s.
func runConc(b *testing.B, conc int, op func(ctx context.Context, i int64) error) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := op(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

// countRoundTrips reports the Redis commands and Postgres statements of one
// op, averaged over a few sequential ones.
func countRoundTrips(b *testing.B, op func(ctx context.Context, i int64) error) {
	b.Helper()
	const n = 16
	rt.redis.Store(0)
	rt.pg.Store(0)
	rt.on.Store(true)
	for i := range int64(n) {
		if err := op(context.Background(), i); err != nil {
			rt.on.Store(false)
			b.Fatal(err)
		}
	}
	rt.on.Store(false)
	b.ReportMetric(float64(rt.redis.Load())/n, "redis-rt/op")
	b.ReportMetric(float64(rt.pg.Load())/n, "pg-rt/op")
}

func BenchmarkStore(b *testing.B) {
	ims := slices.DeleteFunc(impls(b), func(im storeImpl) bool { return im.floor })
	b.Run("NewKey", func(b *testing.B) {
		for _, conc := range storeConcurrencies {
			for _, im := range ims {
				b.Run(fmt.Sprintf("c=%d/%s", conc, im.name), func(b *testing.B) {
					key := keyer()
					op := func(ctx context.Context, i int64) error { return im.newKey(ctx, key(i)) }
					runConc(b, conc, op)
					b.ReportMetric(float64(im.pool), "pool")
					if conc == 1 {
						key = keyer()
						countRoundTrips(b, op)
					}
				})
			}
		}
	})
	b.Run("Replay", func(b *testing.B) {
		const records = 1024
		keys := make([]string, records)
		key := keyer()
		for i := range keys {
			keys[i] = key(int64(i))
		}
		for _, im := range ims {
			seedReplays(b, im, keys)
		}
		for _, conc := range storeConcurrencies {
			for _, im := range ims {
				b.Run(fmt.Sprintf("c=%d/%s", conc, im.name), func(b *testing.B) {
					op := func(ctx context.Context, i int64) error { return im.replay(ctx, keys[i%records]) }
					runConc(b, conc, op)
					b.ReportMetric(float64(im.pool), "pool")
					if conc == 1 {
						countRoundTrips(b, op)
					}
				})
			}
		}
	})
}

// BenchmarkRedisRecordMemory reports MEMORY USAGE … SAMPLES 0 of one
// completed redisstore record with a 1 KiB body (bytes/record), its body
// size (body-bytes) and the raw baseline's record (the encoded response
// alone under one key) for comparison.
func BenchmarkRedisRecordMemory(b *testing.B) {
	client, _ := benchRedis(b)
	prefix := "idemkit-bench:" + randHex(4) + ":"
	b.Cleanup(func() { cleanupRedis(client, prefix) })
	ctx := context.Background()
	for _, im := range []struct {
		name, rkey string
		impl       storeImpl
	}{
		{"redisstore", prefix + "redis:{m}", storeOf("redisstore", 0, redisstore.New(client, redisstore.WithPrefix(prefix+"redis:")))},
		{"raw-redis", prefix + "raw:{m}", rawRedis(client, prefix+"raw:", 0)},
	} {
		b.Run(im.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				client.Del(ctx, im.rkey)
				if err := im.impl.newKey(ctx, "m"); err != nil {
					b.Fatal(err)
				}
			}
			n, err := client.MemoryUsage(ctx, im.rkey, 0).Result()
			if err != nil {
				b.Fatalf("MEMORY USAGE %s: %v", im.rkey, err)
			}
			b.ReportMetric(float64(n), "bytes/record")
			b.ReportMetric(float64(len(benchResponse.Body)), "body-bytes")
		})
	}
}

// BenchmarkStorePair measures each throughput ratio of issue 7's budget
// in one benchmark: the store and its baseline run in alternating slices
// (about 30 ms each, from the same c goroutines), and the ratio of each
// slice's throughput to the adjacent slice of the other side is taken;
// x-baseline is the median of those ratios (≥ 0.9 meets a "90 %" line).
// On a new key it also runs each floor (floors_test.go) against the
// baseline and each store against its floor. Adjacent slices meet the same machine within a fraction of
// a second, which a noisy shared host never grants two benchmarks run one
// after the other; each slice still runs one side alone, so a saturated
// server is measured as it is. (Alternating single operations would not
// do: at saturation each waits behind the other side's queue, and their
// latencies converge whatever their costs.) b.N counts operations of
// each side.
//
//	BenchmarkStorePair/<op>/c=<n>/<store>-vs-<baseline>
func BenchmarkStorePair(b *testing.B) {
	ims := impls(b)
	byName := map[string]storeImpl{}
	for _, im := range ims {
		byName[im.name] = im
	}
	pairs := map[string][][2]string{
		"NewKey": {
			{"redisstore", "raw-redis"}, {"pgxstore", "raw-pgx"}, {"tieredstore", "pgxstore"},
			{"floor-redis", "raw-redis"}, {"floor-pgx-1rt", "raw-pgx"}, {"floor-pgx", "raw-pgx"}, {"floor-tiered", "pgxstore"},
			{"redisstore", "floor-redis"}, {"pgxstore", "floor-pgx-1rt"}, {"pgxstore", "floor-pgx"}, {"tieredstore", "floor-tiered"},
		},
		"Replay": {
			{"redisstore", "raw-redis"}, {"pgxstore", "raw-pgx"}, {"tieredstore", "redisstore"},
			{"floor-redis", "raw-redis"}, {"redisstore", "floor-redis"},
		},
	}
	const records = 1024
	replayKeys := make([]string, records)
	key := keyer()
	for i := range replayKeys {
		replayKeys[i] = key(int64(i))
	}
	for _, name := range []string{"redisstore", "raw-redis", "pgxstore", "raw-pgx", "tieredstore", "floor-redis"} {
		seedReplays(b, byName[name], replayKeys)
	}
	for _, op := range []string{"NewKey", "Replay"} {
		for _, conc := range []int{1, 32} {
			for _, p := range pairs[op] {
				a, base := byName[p[0]], byName[p[1]]
				b.Run(fmt.Sprintf("%s/c=%d/%s-vs-%s", op, conc, a.name, base.name), func(b *testing.B) {
					var run [2]func(ctx context.Context, i int64) error
					for j, im := range []storeImpl{a, base} {
						if op == "NewKey" {
							key := keyer()
							run[j] = func(ctx context.Context, i int64) error { return im.newKey(ctx, key(i)) }
						} else {
							run[j] = func(ctx context.Context, i int64) error { return im.replay(ctx, replayKeys[i%records]) }
						}
					}
					runPair(b, conc, run)
				})
			}
		}
	}
}

// runPair runs at least b.N operations of each side from conc goroutines,
// in alternating slices of pairSlice, and reports each side's throughput
// and the median ratio of adjacent slices.
func runPair(b *testing.B, conc int, run [2]func(ctx context.Context, i int64) error) {
	b.Helper()
	ctx := context.Background()
	var done [2]int64         // operations run per side
	var took [2]time.Duration // time spent per side
	var rate [2]float64       // the side's last slice, ops/s
	var ratios []float64
	b.ResetTimer()
	for k := 0; done[0] < int64(b.N) || done[1] < int64(b.N); k++ {
		j := k % 2
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, conc)
		first := done[j]
		start := time.Now()
		// Each slice lasts pairSlice give or take a third, drawn at random,
		// so that no periodic work of the host or the servers (Redis runs
		// its cron every 100 ms) keeps falling on the same side.
		span := pairSlice*2/3 + mrand.N(pairSlice*2/3)
		for range conc {
			wg.Go(func() {
				for time.Since(start) < span {
					if err := run[j](ctx, first+next.Add(1)-1); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		d := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		n := next.Load()
		done[j] += n
		took[j] += d
		rate[j] = float64(n) / d.Seconds()
		if j == 1 {
			ratios = append(ratios, rate[0]/rate[1])
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(done[0])/took[0].Seconds(), "store-ops/s")
	b.ReportMetric(float64(done[1])/took[1].Seconds(), "base-ops/s")
	b.ReportMetric(medianOf(ratios), "x-baseline")
}

// medianOf returns the median of v (the upper middle for an even count),
// sorting v in place.
func medianOf(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// pairSlice is how long each side of a pair runs before the other does.
const pairSlice = 30 * time.Millisecond
