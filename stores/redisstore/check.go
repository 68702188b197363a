package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/idemkit/idemkit/core"
	"github.com/redis/go-redis/v9"
)

// ErrEvictionPolicy reports a Redis whose maxmemory-policy may evict keys
// that carry a TTL (allkeys-* and volatile-*): every record of this store
// has one, so such a Redis under memory pressure may drop a live claim,
// and a second request then runs the handler again. Run the store's Redis
// with maxmemory-policy noeviction: a full Redis then refuses writes, and
// the engine answers 503 rather than running anything twice.
var ErrEvictionPolicy = errors.New("redisstore: Redis may evict live claims (maxmemory-policy is not noeviction)")

// ErrPolicyUnknown reports a Redis that would not say its eviction policy:
// CONFIG GET was refused (renamed or disabled, denied by an ACL, or not
// offered by a managed service). The policy must then be checked by other
// means (the provider's settings); a caller that has done so may accept
// this error.
var ErrPolicyUnknown = errors.New("redisstore: Redis eviction policy unknown (CONFIG GET refused)")

// Check implements [core.Checker]. On every primary of the store's
// Redis (each master of a cluster, each shard of a ring) it sends PING and
// CONFIG GET maxmemory*, and returns nil when every one answers with
// maxmemory-policy noeviction; an error wrapping [ErrEvictionPolicy] when
// one may evict keys with a TTL; one wrapping [ErrPolicyUnknown] when one
// refuses CONFIG; and one wrapping [core.ErrStoreUnavailable] when one
// does not answer. Errors of several nodes are joined. The examples run it
// before they serve.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return unavailable("check", err)
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
	)
	check := func(ctx context.Context, c *redis.Client) error {
		if err := checkNode(ctx, c); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	}
	var err error
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, check)
	case *redis.Ring:
		err = c.ForEachShard(ctx, check)
	case *redis.Client:
		err = check(ctx, c)
	default:
		if e := checkPolicy(ctx, s.client, "redis"); e != nil {
			errs = append(errs, e)
		}
	}
	if err != nil {
		errs = append(errs, unavailable("check", err))
	}
	return errors.Join(errs...)
}

func checkNode(ctx context.Context, c *redis.Client) error {
	return checkPolicy(ctx, c, c.Options().Addr)
}

// checkPolicy checks one node (or whatever c routes keyless commands to).
func checkPolicy(ctx context.Context, c redis.Cmdable, addr string) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: check %s: %w: %w", addr, core.ErrStoreUnavailable, err)
	}
	cfg, err := c.ConfigGet(ctx, "maxmemory*").Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return fmt.Errorf("redisstore: check %s: %w: %w", addr, ErrPolicyUnknown, err)
		}
		return fmt.Errorf("redisstore: check %s: %w: %w", addr, core.ErrStoreUnavailable, err)
	}
	policy, ok := cfg["maxmemory-policy"]
	if !ok {
		return fmt.Errorf("redisstore: check %s: %w: CONFIG GET answered without maxmemory-policy", addr, ErrPolicyUnknown)
	}
	if strings.HasPrefix(policy, "allkeys-") || strings.HasPrefix(policy, "volatile-") {
		limit := cfg["maxmemory"]
		if limit == "0" {
			limit = "0 (no limit now; one set at runtime starts evicting)"
		}
		return fmt.Errorf("redisstore: check %s: %w: maxmemory-policy %s, maxmemory %s; set maxmemory-policy noeviction",
			addr, ErrEvictionPolicy, policy, limit)
	}
	return nil
}
