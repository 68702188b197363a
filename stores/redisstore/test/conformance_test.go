package redisstore

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestSingleNode runs the conformance suites against the Redis of
// IDEMKIT_REDIS_URL (or a container); redisstore's own checks run on it
// in the module itself.
func TestSingleNode(t *testing.T) {
	client := singleClient(t)
	t.Run("Conformance", func(t *testing.T) { conformance.TestStore(t, storeFactory(client)) })
	t.Run("Cache", func(t *testing.T) { conformance.TestCache(t, cacheFactory(client)) })
	t.Run("Do", func(t *testing.T) { conformance.TestDo(t, storeFactory(client)) })
}

// TestCluster runs the same, and the HTTP suite with idemhttp, against a
// private 3-master Redis Cluster through a ClusterClient.
func TestCluster(t *testing.T) {
	client := clusterClient(t)
	t.Run("Conformance", func(t *testing.T) { conformance.TestStore(t, storeFactory(client)) })
	t.Run("Cache", func(t *testing.T) { conformance.TestCache(t, cacheFactory(client)) })
	t.Run("Do", func(t *testing.T) { conformance.TestDo(t, storeFactory(client)) })
	t.Run("HTTP", func(t *testing.T) {
		conformance.TestMiddleware(t, conformance.Harness{NewStore: storeFactory(client), NewServer: storetest.NewHTTPServer})
	})
}

// TestDiscarderConformance runs the Discarder checks of the conformance
// module on this store.
func TestDiscarderConformance(t *testing.T) {
	conformance.TestDiscarder(t, storeFactory(singleClient(t)))
}

// TestInspectorConformance runs the Inspector checks of the conformance
// module on this store: Inspect of a pending and a completed record, Delete
// of either, on a real Redis.
func TestInspectorConformance(t *testing.T) {
	conformance.TestInspector(t, storeFactory(singleClient(t)))
}
