package redisstore_test

import (
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/redis/go-redis/v9"
)

// A store on a single Redis node. The engine then guards handlers through
// the adapter for your framework, for example
// idemhttp.Middleware(engine)(mux) with net/http.
func Example() {
	client := redis.NewClient(&redis.Options{
		Addr:                  "127.0.0.1:6379",
		ContextTimeoutEnabled: true, // honour the engine's store timeout on the socket
	})
	defer client.Close()

	store := redisstore.New(client, redisstore.WithPrefix("payments:idem:"))
	engine := core.New(store)
	_ = engine
}

// The same store on Redis Cluster: every record is one key whose hash tag
// is its storage key, so records spread over all masters.
func ExampleNew_cluster() {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		ContextTimeoutEnabled: true,
	})
	defer client.Close()

	engine := core.New(redisstore.New(client))
	_ = engine
}

// Any redis.UniversalClient works, for example Sentinel failover.
func ExampleNew_sentinel() {
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		MasterName:            "mymaster",
		Addrs:                 []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
		ContextTimeoutEnabled: true,
	})
	defer client.Close()

	_ = redisstore.New(client)
}
