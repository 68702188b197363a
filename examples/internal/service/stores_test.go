package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
)

// TestOpenStoreRefusesEvictingRedis starts private Redis servers: the
// example services refuse -store redis on one whose maxmemory-policy may
// evict live claims, unless -allow-evicting-redis overrides, and start on
// one that runs noeviction.
func TestOpenStoreRefusesEvictingRedis(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		policy   string
		allow    bool
		wantOpen bool
	}{
		{"allkeys-lru", false, false},
		{"volatile-lru", false, false},
		{"allkeys-lru", true, true},
		{"noeviction", false, true},
	}
	for _, c := range cases {
		name := c.policy
		if c.allow {
			name += "/allowed"
		}
		t.Run(name, func(t *testing.T) {
			srv := svctest.StartRedis(t, "--maxmemory", "2mb", "--maxmemory-policy", c.policy)
			t.Setenv("IDEMKIT_REDIS_URL", srv.URL())
			store, closeStore, err := OpenStoreFlags(ctx, Flags{Store: "redis", AllowEvictingRedis: c.allow}, nil, nil)
			if err == nil {
				closeStore()
			}
			switch {
			case c.wantOpen && (err != nil || store == nil):
				t.Errorf("OpenStoreFlags(redis, allow %v) on a %s Redis = %v; want the store", c.allow, c.policy, err)
			case !c.wantOpen && !errors.Is(err, redisstore.ErrEvictionPolicy):
				t.Errorf("OpenStoreFlags(redis, allow %v) on a %s Redis = %v; want an error wrapping redisstore.ErrEvictionPolicy", c.allow, c.policy, err)
			case !c.wantOpen && !strings.Contains(err.Error(), "-allow-evicting-redis"):
				t.Errorf("refusal %q does not name the -allow-evicting-redis override", err)
			}
			if !c.allow {
				if _, closeStore, err2 := OpenStore(ctx, "redis", nil); (err2 == nil) != c.wantOpen {
					t.Errorf("OpenStore(redis) on a %s Redis = %v; want the same answer as OpenStoreFlags", c.policy, err2)
				} else if err2 == nil {
					closeStore()
				}
			}
		})
	}
}
