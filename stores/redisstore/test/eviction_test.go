package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/redis/go-redis/v9"
)

// fullRedis starts a private redis-server limited to 2 MB with policy and
// returns a client of it.
func fullRedis(t *testing.T, policy string) (*svctest.RedisServer, *redis.Client) {
	t.Helper()
	srv := svctest.StartRedis(t, "--appendonly", "no", "--maxmemory", "2mb", "--maxmemory-policy", policy)
	c := newClient(t, &redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	return srv, c
}

// fill writes about 3× the 2 MB limit in 10 KB values with a TTL, as other
// users of a shared Redis would, and returns how many writes Redis refused
// (OOM under noeviction).
func fill(t *testing.T, c *redis.Client) (refused int) {
	t.Helper()
	ctx := context.Background()
	val := strings.Repeat("x", 10<<10)
	prefix := "filler:" + randHex(t, 4) + ":"
	for batch := 0; batch < 12; batch++ {
		pipe := c.Pipeline()
		for i := 0; i < 50; i++ {
			pipe.Set(ctx, prefix+randHex(t, 8), val, time.Hour)
		}
		cmds, _ := pipe.Exec(ctx)
		for _, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				if !strings.HasPrefix(err.Error(), "OOM") {
					t.Fatalf("filling Redis: %v", err)
				}
				refused++
			}
		}
	}
	return refused
}

// TestEvictingRedis shows the hole an evicting Redis opens (a live claim
// evicted, so a second Claim of the key acquires it and the handler would
// run twice) and that Check reports such a Redis with ErrEvictionPolicy.
func TestEvictingRedis(t *testing.T) {
	for _, policy := range []string{"allkeys-lru", "volatile-lru", "allkeys-random", "volatile-ttl"} {
		t.Run(policy, func(t *testing.T) {
			_, c := fullRedis(t, policy)
			s := New(c, WithPrefix(uniquePrefix(t)))
			ctx := context.Background()

			err := s.Check(ctx)
			t.Logf("Check: %v", err)
			if !errors.Is(err, ErrEvictionPolicy) {
				t.Errorf("Check on a Redis with maxmemory-policy %s = %v; want ErrEvictionPolicy", policy, err)
			}
			if errors.Is(err, core.ErrStoreUnavailable) {
				t.Errorf("Check = %v; an eviction policy is not an unreachable store", err)
			}
			if policy != "allkeys-lru" {
				return
			}
			key := newKey(t)
			claim(t, s, key, fp(1), newToken(t), time.Minute)
			fill(t, c)
			second := claim(t, s, key, fp(1), newToken(t), time.Minute)
			// What the policy does, not what the store can prevent: the
			// figure the docs quote.
			t.Logf("under %s, a second Claim of a live claimed key after filling Redis: %v", policy, second.Status)
			if second.Status != core.ClaimAcquired {
				t.Logf("the live claim survived this fill (LRU is sampled); the policy may still evict it")
			}
		})
	}
}

// TestFullRedisNoEviction fills a Redis that runs maxmemory-policy
// noeviction: Check passes, the live claim stays in flight, and a claim
// that needs memory fails closed with ErrStoreUnavailable (503), never a
// second acquire.
func TestFullRedisNoEviction(t *testing.T) {
	_, c := fullRedis(t, "noeviction")
	s := New(c, WithPrefix(uniquePrefix(t)))
	ctx := context.Background()
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check on a noeviction Redis = %v; want nil", err)
	}
	key := newKey(t)
	claim(t, s, key, fp(1), newToken(t), time.Minute)
	refused := fill(t, c)
	if refused == 0 {
		t.Fatalf("filling 6 MB into a 2 MB noeviction Redis refused nothing; the test did not fill it")
	}
	acquired := 0
	for i := 0; i < 20; i++ {
		k := key
		if i%2 == 1 {
			k = newKey(t)
		}
		cl, err := s.Claim(ctx, core.ClaimRequest{Key: k, Fingerprint: fp(1), Token: newToken(t), Lease: time.Minute})
		switch {
		case err != nil && !errors.Is(err, core.ErrStoreUnavailable):
			t.Errorf("Claim on a full Redis = %v; want ErrStoreUnavailable (503)", err)
		case err == nil && k == key && cl.Status != core.ClaimInFlight:
			t.Errorf("Claim of the live claimed key on a full Redis = %v; want in flight or ErrStoreUnavailable, never acquired", cl.Status)
		case err == nil && cl.Status == core.ClaimAcquired:
			acquired++
		}
		if i == 1 {
			t.Logf("Claims on a full noeviction Redis: %v", err)
		}
	}
	if acquired > 0 {
		t.Errorf("%d claims of new keys acquired on a full Redis; want none (it has no room for them)", acquired)
	}
}

// TestCheck covers the other answers of Check: CONFIG refused by an ACL
// or renamed (ErrPolicyUnknown), an unreachable server
// (ErrStoreUnavailable), and a Ring and a Cluster, where every shard or
// master is checked.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	t.Run("ConfigRefused", func(t *testing.T) {
		srv := svctest.StartRedis(t)
		if _, err := svctest.RedisDo(srv.Addr(), time.Second, "ACL", "SETUSER", "app", "on", ">app-secret", "~*", "+@all", "-config"); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
		c := newClient(t, &redis.Options{Addr: srv.Addr(), Username: "app", Password: "app-secret"})
		err := New(c).Check(ctx)
		t.Logf("Check without CONFIG: %v", err)
		if !errors.Is(err, ErrPolicyUnknown) || errors.Is(err, ErrEvictionPolicy) || errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("Check with CONFIG denied = %v; want ErrPolicyUnknown alone", err)
		}
	})
	t.Run("ConfigRenamed", func(t *testing.T) {
		srv := svctest.StartRedis(t, "--rename-command", "CONFIG", "CONFIG-"+randHex(t, 8))
		c := newClient(t, &redis.Options{Addr: srv.Addr()})
		if err := New(c).Check(ctx); !errors.Is(err, ErrPolicyUnknown) {
			t.Errorf("Check with CONFIG renamed = %v; want ErrPolicyUnknown", err)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		srv := svctest.StartRedis(t)
		c := newClient(t, &redis.Options{Addr: srv.Addr(), MaxRetries: -1})
		srv.Stop()
		err := New(c).Check(ctx)
		if !errors.Is(err, core.ErrStoreUnavailable) || errors.Is(err, ErrPolicyUnknown) {
			t.Errorf("Check on a stopped Redis = %v; want ErrStoreUnavailable", err)
		}
	})
	t.Run("Ring", func(t *testing.T) {
		a := svctest.StartRedis(t)
		b := svctest.StartRedis(t, "--maxmemory-policy", "allkeys-lfu")
		ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": a.Addr(), "b": b.Addr()}})
		t.Cleanup(func() { ring.Close() })
		err := New(ring).Check(ctx)
		if !errors.Is(err, ErrEvictionPolicy) || !strings.Contains(err.Error(), b.Addr()) || strings.Contains(err.Error(), a.Addr()) {
			t.Errorf("Check on a ring with shard %s on allkeys-lfu = %v; want ErrEvictionPolicy naming that shard only", b.Addr(), err)
		}
	})
	t.Run("Cluster", func(t *testing.T) {
		c, addrs := privateCluster(t)
		s := New(c)
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check on a noeviction cluster = %v; want nil", err)
		}
		evicting := addrs[1]
		if _, err := svctest.RedisDo(evicting, time.Second, "CONFIG", "SET", "maxmemory-policy", "volatile-lfu"); err != nil {
			t.Fatal(err)
		}
		err := s.Check(ctx)
		t.Logf("Check with one evicting master: %v", err)
		if !errors.Is(err, ErrEvictionPolicy) || !strings.Contains(err.Error(), evicting) {
			t.Errorf("Check with master %s on volatile-lfu = %v; want ErrEvictionPolicy naming that master", evicting, err)
		}
	})
}
