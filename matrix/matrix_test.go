package matrix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// backends holds the servers every cell shares; each subtest gets its own
// key space (a Redis prefix; random keys in one Postgres schema). A server
// that cannot be reached is nil: its cells skip, and the memory cells run.
type backends struct {
	redis  *redis.Client
	pg     *pgxstore.Store
	pool   *pgxpool.Pool // pg's pool, and the schema its table lives in
	schema string
}

// connect reaches each server in a subtest of its own (TestMatrix/backends/…),
// which skips when the server is missing, or fails when
// IDEMKIT_REQUIRE_SERVICES=1, without stopping the other cells. What it
// opens is closed when top ends.
func connect(top *testing.T) *backends {
	b := &backends{}
	top.Run("backends/redis", func(t *testing.T) { b.redis = connectRedis(t, top) })
	top.Run("backends/postgres", func(t *testing.T) { b.pg, b.pool, b.schema = connectPostgres(t, top) })
	return b
}

func connectRedis(t, top *testing.T) *redis.Client {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt, err := redis.ParseURL(svctest.RedisURL(t))
	if err != nil {
		t.Fatalf("redis URL: %v", err)
	}
	opt.ContextTimeoutEnabled, opt.PoolSize = true, 64
	rc := redis.NewClient(opt)
	top.Cleanup(func() { rc.Close() })
	if err := rc.Ping(ctx).Err(); err != nil {
		svctest.Unavailable(t, "Redis at %s: %v", opt.Addr, err)
	}
	return rc
}

func connectPostgres(t, top *testing.T) (*pgxstore.Store, *pgxpool.Pool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(svctest.PostgresURL(t))
	if err != nil {
		t.Fatalf("postgres URL: %v", err)
	}
	cfg.MaxConns = 16 // every cell shares it; keeps `make test` under max_connections
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgxpool: %v", err)
	}
	top.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		svctest.Unavailable(t, "PostgreSQL: %v", err)
	}
	schema := "idemkit_matrix_" + randHex(6)
	top.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	if err := pgxstore.EnsureSchema(ctx, pool, pgxstore.WithSchema(schema)); err != nil {
		t.Fatalf("EnsureSchema: %v", err)
	}
	return pgxstore.New(pool, pgxstore.WithSchema(schema)), pool, schema
}

func (b *backends) stores() []struct {
	name string
	new  conformance.NewStoreFunc
} {
	redisStore := func(t *testing.T) *redisstore.Store {
		return redisstore.New(b.redis, redisstore.WithPrefix("idemmatrix:"+randHex(8)+":"))
	}
	// needs skips a cell whose server was not reached; TestMatrix/backends
	// has already failed when the servers are required.
	needs := func(t *testing.T, redis, pg bool) {
		if redis && b.redis == nil || pg && b.pg == nil {
			t.Skip("skipped: a server this cell needs was not reached (see TestMatrix/backends)")
		}
	}
	return []struct {
		name string
		new  conformance.NewStoreFunc
	}{
		{"memory", newMemStore},
		{"redis", func(t *testing.T) core.Store { needs(t, true, false); return redisStore(t) }},
		{"postgres", func(t *testing.T) core.Store { needs(t, false, true); return b.pg }},
		{"tiered", func(t *testing.T) core.Store { needs(t, true, true); return tieredstore.New(redisStore(t), b.pg) }},
	}
}

// TestMatrix runs conformance.TestMiddleware for every adapter × store
// cell. A cell whose servers are missing skips (the memory cells run
// without any), and TestMatrix/backends fails instead when
// IDEMKIT_REQUIRE_SERVICES=1.
func TestMatrix(t *testing.T) {
	b := connect(t)
	for _, a := range adapters {
		for _, s := range b.stores() {
			t.Run("adapter="+a.name+"/store="+s.name, func(t *testing.T) {
				conformance.TestMiddleware(t, conformance.Harness{NewStore: s.new, NewServer: a.new})
			})
		}
	}
}
