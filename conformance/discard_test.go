package conformance_test

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// TestMemstoreDiscarder is TestDiscarder's self-test against memstore.
func TestMemstoreDiscarder(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	defer st.Close()
	conformance.TestDiscarder(t, func(*testing.T) core.Store { return st })
}
