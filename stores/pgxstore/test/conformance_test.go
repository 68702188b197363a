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
