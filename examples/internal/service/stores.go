package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// StoreNames lists the -store values.
const StoreNames = "memory|redis|postgres|tiered"

// OpenStore opens the store named by -store. Server URLs come from
// IDEMKIT_REDIS_URL and IDEMKIT_POSTGRES_URL, or, for a Sentinel-managed
// Redis, from IDEMKIT_REDIS_SENTINELS (host:port,host:port) and
// IDEMKIT_REDIS_MASTER (the monitored master's name); postgres and tiered apply the
// schema on start. The memory store reports its early evictions to obs,
// the engine's observer. The redis store refuses a Redis whose
// maxmemory-policy may evict live claims (see [OpenStoreFlags] for the
// override). The returned close function releases everything.
func OpenStore(ctx context.Context, name string, obs core.Observer, opts ...tieredstore.Option) (core.Store, func(), error) {
	return openStore(ctx, Flags{Store: name}, obs, nil, opts...)
}

// OpenStoreFlags opens the store named by flags.Store as [OpenStore] does,
// starting the redis store on an evicting Redis only with
// flags.AllowEvictingRedis (then with a warning to logger), and waiting
// for flags.RedisReplicaAcks replicas after every claim and complete when
// that is positive (redisstore.WithReplicaAcks).
func OpenStoreFlags(ctx context.Context, flags Flags, obs core.Observer, logger *slog.Logger, opts ...tieredstore.Option) (core.Store, func(), error) {
	return openStore(ctx, flags, obs, logger, opts...)
}

func openStore(ctx context.Context, flags Flags, obs core.Observer, logger *slog.Logger, opts ...tieredstore.Option) (core.Store, func(), error) {
	switch name := flags.Store; name {
	case "memory":
		s := memstore.New(memstore.WithObserver(obs))
		return s, func() { s.Close() }, nil
	case "redis":
		var ropts []redisstore.Option
		if flags.RedisReplicaAcks > 0 {
			if flags.RedisReplicaAckTimeout <= 0 {
				return nil, nil, fmt.Errorf("-redis-replica-acks %d needs a positive -redis-replica-ack-timeout", flags.RedisReplicaAcks)
			}
			ropts = append(ropts, redisstore.WithReplicaAcks(flags.RedisReplicaAcks, flags.RedisReplicaAckTimeout))
		}
		rs, closeRedis, err := openRedis(ctx, redisstore.DefaultPrefix, ropts...)
		if err != nil {
			return nil, nil, err
		}
		if err := checkRedis(ctx, rs, flags.AllowEvictingRedis, logger); err != nil {
			closeRedis()
			return nil, nil, err
		}
		if flags.AllowEvictingRedis {
			return evictingRedis{rs}, closeRedis, nil
		}
		return rs, closeRedis, nil
	case "postgres":
		ps, closePG, err := openPostgres(ctx)
		if err != nil {
			return nil, nil, err
		}
		return ps, closePG, nil
	case "tiered":
		ps, closePG, err := openPostgres(ctx)
		if err != nil {
			return nil, nil, err
		}
		// The hot tier is a cache with a key prefix of its own, so that it
		// never meets the records of a Redis store on the same server. It
		// holds copies of completed records only, never a claim, so an
		// evicting Redis is safe for it: an evicted copy is read from
		// Postgres again.
		rs, closeRedis, err := openRedis(ctx, "idem:hot:")
		if err != nil {
			closePG()
			return nil, nil, err
		}
		return tieredstore.New(rs, ps, opts...), func() { closeRedis(); closePG() }, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q; want one of %s", flags.Store, StoreNames)
}

func env(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set", name)
	}
	return v, nil
}

// openRedis connects to the Redis of IDEMKIT_REDIS_URL or, when
// IDEMKIT_REDIS_SENTINELS is set, to the primary that those sentinels
// name IDEMKIT_REDIS_MASTER (see [openRedisClient]).
func openRedis(ctx context.Context, prefix string, opts ...redisstore.Option) (*redisstore.Store, func(), error) {
	client, where, err := openRedisClient()
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("redis at %s: %w", where, err)
	}
	return redisstore.New(client, append([]redisstore.Option{redisstore.WithPrefix(prefix)}, opts...)...), func() { client.Close() }, nil
}

// openRedisClient returns a client of a Sentinel-managed Redis when
// IDEMKIT_REDIS_SENTINELS lists sentinels (host:port, comma-separated):
// go-redis's failover client asks them for the primary named
// IDEMKIT_REDIS_MASTER and follows a failover by itself; IDEMKIT_REDIS_URL
// is not read then. Otherwise it returns a client of IDEMKIT_REDIS_URL.
// where names the server for error messages.
func openRedisClient() (client *redis.Client, where string, err error) {
	if sentinels := os.Getenv("IDEMKIT_REDIS_SENTINELS"); sentinels != "" {
		master, err := env("IDEMKIT_REDIS_MASTER")
		if err != nil {
			return nil, "", fmt.Errorf("IDEMKIT_REDIS_SENTINELS is set: %w (the master name the sentinels monitor)", err)
		}
		var addrs []string
		for _, a := range strings.Split(sentinels, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		client := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:            master,
			SentinelAddrs:         addrs,
			ContextTimeoutEnabled: true,
		})
		return client, fmt.Sprintf("master %q of sentinels %s", master, strings.Join(addrs, ",")), nil
	}
	url, err := env("IDEMKIT_REDIS_URL")
	if err != nil {
		return nil, "", err
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, "", fmt.Errorf("IDEMKIT_REDIS_URL: %w", err)
	}
	opt.ContextTimeoutEnabled = true
	return redis.NewClient(opt), opt.Addr, nil
}

// checkRedis refuses a Redis that may evict live claims, unless allowed:
// a claim evicted while its handler runs lets a retry run the handler a
// second time. A Redis that will not say its policy (CONFIG refused, as
// managed services and ACLs may) is accepted with a warning.
func checkRedis(ctx context.Context, rs *redisstore.Store, allowEvicting bool, logger *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := rs.Check(cctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redisstore.ErrEvictionPolicy) && allowEvicting:
		warn(logger, "starting on an evicting Redis (-allow-evicting-redis): a live claim may be evicted and a handler run twice", err)
		return nil
	case errors.Is(err, redisstore.ErrEvictionPolicy):
		return fmt.Errorf("%w; run Redis with maxmemory-policy noeviction (a full Redis then answers 503, never runs a handler twice), or pass -allow-evicting-redis", err)
	case errors.Is(err, redisstore.ErrPolicyUnknown):
		warn(logger, "Redis eviction policy unknown: make sure it is noeviction", err)
		return nil
	}
	return err
}

// evictingRedis is the redis store of a service started with
// -allow-evicting-redis: its Check (what /healthz asks) no longer reports
// the eviction policy the operator accepted at start, so that a readiness
// probe does not take the instance out of its load balancer for good; an
// unreachable Redis still fails it.
type evictingRedis struct{ *redisstore.Store }

func (s evictingRedis) Check(ctx context.Context) error {
	err := s.Store.Check(ctx)
	if errors.Is(err, redisstore.ErrEvictionPolicy) && !errors.Is(err, core.ErrStoreUnavailable) {
		return nil
	}
	return err
}

func warn(logger *slog.Logger, msg string, err error) {
	if logger != nil {
		logger.Warn(msg, "err", err)
	}
}

func openPostgres(ctx context.Context) (*pgxstore.Store, func(), error) {
	url, err := env("IDEMKIT_POSTGRES_URL")
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(pctx, url)
	if err != nil {
		return nil, nil, fmt.Errorf("IDEMKIT_POSTGRES_URL: %w", err)
	}
	if err := pgxstore.EnsureSchema(pctx, pool); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("applying the schema: %w", err)
	}
	store := pgxstore.New(pool)
	stopPruner := store.StartPruner(context.Background(), 10*time.Minute)
	return store, func() { stopPruner(); pool.Close() }, nil
}
