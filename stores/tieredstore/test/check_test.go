package tieredstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestCheck: the tiered store is healthy with both tiers up, degraded
// (core.ErrDegraded, not unavailable) while its Redis is stopped or its
// breaker still skips Redis, and failing with the durable tier's error when
// Postgres lacks its table or does not answer.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	t.Run("Healthy", func(t *testing.T) {
		st := tieredstore.New(sharedRedis(t), pgStore(t, svctest.PostgresURL(t)))
		if err := st.Check(ctx); err != nil {
			t.Errorf("Check with both tiers up: %v; want nil", err)
		}
	})
	t.Run("RedisStopped", func(t *testing.T) {
		rs := svctest.StartRedis(t)
		st := tieredstore.New(redisstore.New(redisClient(t, rs.URL())), pgStore(t, svctest.PostgresURL(t)),
			tieredstore.WithBreaker(1, 200*time.Millisecond))
		if err := st.Check(ctx); err != nil {
			t.Fatalf("Check with both tiers up: %v; want nil", err)
		}
		rs.Stop()
		err := st.Check(ctx)
		if !errors.Is(err, core.ErrDegraded) || errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("Check with Redis stopped: %v; want an error wrapping core.ErrDegraded and not core.ErrStoreUnavailable: Postgres alone still serves", err)
		}
		t.Logf("Redis stopped: %v", err)
		// A request trips the breaker; Redis comes back; until a request
		// probes it, the store still skips Redis and says so.
		req := core.ClaimRequest{Key: randHex(16), Fingerprint: core.Fingerprint{3}, Token: core.Token(randHex(8)), Lease: time.Second}
		if _, err := st.Claim(ctx, req); err != nil {
			t.Fatalf("Claim with Redis stopped: %v; want Postgres to answer", err)
		}
		rs.Start()
		if err := st.Check(ctx); !errors.Is(err, core.ErrDegraded) {
			t.Errorf("Check with the breaker open: %v; want core.ErrDegraded", err)
		}
		time.Sleep(250 * time.Millisecond)
		req.Key, req.Token = randHex(16), core.Token(randHex(8))
		if _, err := st.Claim(ctx, req); err != nil { // the probe
			t.Fatal(err)
		}
		if err := st.Check(ctx); err != nil {
			t.Errorf("Check after a successful probe: %v; want nil", err)
		}
	})
	t.Run("PostgresWithoutSchema", func(t *testing.T) {
		pool, err := pgxpool.New(ctx, svctest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		durable := pgxstore.New(pool, pgxstore.WithSchema("idemkit_nothing_"+randHex(6)))
		err = tieredstore.New(sharedRedis(t), durable).Check(ctx)
		if !errors.Is(err, pgxstore.ErrSchema) || errors.Is(err, core.ErrDegraded) {
			t.Errorf("Check on a Postgres without the table: %v; want pgxstore.ErrSchema, not degraded", err)
		}
	})
	t.Run("PostgresStopped", func(t *testing.T) {
		pg := svctest.StartPostgres(t)
		durable := pgStore(t, pg.URL())
		st := tieredstore.New(sharedRedis(t), durable)
		pg.Stop()
		err := st.Check(ctx)
		if !errors.Is(err, core.ErrStoreUnavailable) || errors.Is(err, core.ErrDegraded) {
			t.Errorf("Check with Postgres stopped: %v; want core.ErrStoreUnavailable, not degraded: Postgres is the truth", err)
		}
	})
}
