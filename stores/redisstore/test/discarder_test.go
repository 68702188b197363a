package redisstore

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
)

// TestDiscarderConformance runs the Discarder checks of the conformance
// module on this store.
func TestDiscarderConformance(t *testing.T) {
	conformance.TestDiscarder(t, storeFactory(singleClient(t)))
}
