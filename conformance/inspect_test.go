package conformance_test

import (
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// TestMemstoreInspector is TestInspector's self-test against memstore.
func TestMemstoreInspector(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	defer st.Close()
	conformance.TestInspector(t, func(*testing.T) core.Store { return st })
}
