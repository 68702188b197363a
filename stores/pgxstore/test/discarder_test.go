package pgxstore

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/svctest"
)

// TestDiscarderConformance runs the Discarder checks of the conformance
// module on this store.
func TestDiscarderConformance(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 8)
	conformance.TestDiscarder(t, schemaStores(pool))
}
