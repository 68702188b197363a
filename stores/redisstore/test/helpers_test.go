// Package redisstore (in the test-only module of stores/redisstore) runs
// the tests of redisstore that need what redisstore itself must not
// require: the conformance suites, idemhttp, and svctest's containers and
// private servers. It sees only redisstore's exported API.
package redisstore

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/idemkit/idemkit/svctest/storetest"
	"github.com/redis/go-redis/v9"
)

// singleClient returns a client of the Redis given by svctest.RedisURL
// (IDEMKIT_REDIS_URL or a container), closed at cleanup.
func singleClient(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(svctest.RedisURL(t))
	if err != nil {
		t.Fatalf("redis.ParseURL(%s): %v", svctest.EnvRedisURL, err)
	}
	opt.ContextTimeoutEnabled = true
	opt.PoolSize = 32
	c := newClient(t, opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		svctest.Unavailable(t, "Redis at %s does not answer PING: %v", opt.Addr, err)
	}
	return c
}

// clusterClient starts a private 3-master Redis Cluster and returns a
// client of it.
func clusterClient(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rc := svctest.StartRedisCluster(t, 3)
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 rc.Addrs(),
		ContextTimeoutEnabled: true,
		PoolSize:              32,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// storeFactory returns a conformance factory: a store on client with a
// prefix of its own per subtest.
func storeFactory(client redis.UniversalClient) conformance.NewStoreFunc {
	return func(t *testing.T) core.Store { return New(client, WithPrefix(uniquePrefix(t))) }
}

// cacheFactory is storeFactory for the cache suite.
func cacheFactory(client redis.UniversalClient) conformance.NewCacheFunc {
	return func(t *testing.T) core.Cache { return New(client, WithPrefix(uniquePrefix(t))) }
}

// uniquePrefix returns a key prefix no other test uses.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	return "idemtest:" + randHex(t, 8) + ":"
}

func randHex(t testing.TB, n int) string { return storetest.RandHex(t, n) }

// newClient returns a client with opt, closed at cleanup.
func newClient(t testing.TB, opt *redis.Options) *redis.Client {
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func newKey(t testing.TB) string { return randHex(t, 32) }

func newToken(t testing.TB) core.Token { return core.Token(randHex(t, 16)) }

func fp(b byte) core.Fingerprint {
	var f core.Fingerprint
	for i := range f {
		f[i] = b + byte(i)
	}
	return f
}

func claim(t *testing.T, s *Store, key string, f core.Fingerprint, tok core.Token, lease time.Duration) core.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), core.ClaimRequest{Key: key, Fingerprint: f, Token: tok, Lease: lease})
	if err != nil {
		t.Fatalf("Claim(%s) error: %v", key, err)
	}
	return c
}

func sampleResponse() *core.Response {
	return &core.Response{
		Status: http.StatusCreated,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Multi": {"a", "b", ""}, "Location": {"/payments/1"}},
		Body:   []byte(`{"id":"1"}`),
	}
}

// headerLen is the length of a record's header: the state byte and the
// fingerprint (the key layout in redisstore's doc).
const headerLen = 1 + len(core.Fingerprint{})
