package pgxstore

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/svctest"
)

// TestInspectorConformance runs the Inspector checks of the conformance
// module on this store: Inspect of a pending and a completed record, Delete
// of either, on a real Postgres, a table per subtest.
func TestInspectorConformance(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 8)
	conformance.TestInspector(t, schemaStores(pool))
}
