package pgxstore

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/svctest"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestConformance runs the store contract suite; every subtest gets its own
// schema on one shared pool.
func TestConformance(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 16)
	conformance.TestStore(t, schemaStores(pool))
}

// TestConformanceHTTP runs the middleware suite with idemhttp on this store.
func TestConformanceHTTP(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 16)
	conformance.TestMiddleware(t, conformance.Harness{
		NewStore:  schemaStores(pool),
		NewServer: storetest.NewHTTPServer,
	})
}

// TestDo runs core.Engine.Do's suite on this store.
func TestDo(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 16)
	conformance.TestDo(t, schemaStores(pool))
}

// TestDiscarderConformance runs the Discarder checks of the conformance
// module on this store.
func TestDiscarderConformance(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 8)
	conformance.TestDiscarder(t, schemaStores(pool))
}

// TestInspectorConformance runs the Inspector checks of the conformance
// module on this store: Inspect of a pending and a completed record, Delete
// of either, on a real Postgres, a table per subtest.
func TestInspectorConformance(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 8)
	conformance.TestInspector(t, schemaStores(pool))
}
