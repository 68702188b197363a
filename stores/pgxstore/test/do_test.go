package pgxstore

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/svctest"
)

// TestDo runs core.Engine.Do's suite on this store.
func TestDo(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 16)
	conformance.TestDo(t, schemaStores(pool))
}
