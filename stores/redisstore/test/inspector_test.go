package redisstore

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
)

// TestInspectorConformance runs the Inspector checks of the conformance
// module on this store: Inspect of a pending and a completed record, Delete
// of either, on a real Redis.
func TestInspectorConformance(t *testing.T) {
	conformance.TestInspector(t, storeFactory(singleClient(t)))
}
