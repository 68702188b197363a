package conformance_test

import (
	"testing"
	"time"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// TestMemstore is the suite's self-test against the reference store: one
// fresh store per subtest.
func TestMemstore(t *testing.T) {
	t.Parallel()
	conformance.TestStore(t, func(t *testing.T) core.Store {
		st := memstore.New(memstore.WithSweepInterval(50 * time.Millisecond))
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// TestMemstoreShared runs the suite against one store shared by every
// subtest, as a store backed by a server would be.
func TestMemstoreShared(t *testing.T) {
	t.Parallel()
	st := memstore.New()
	defer st.Close()
	conformance.TestStore(t, func(*testing.T) core.Store { return st })
}

// TestMemstoreCache runs the cache suite against memstore, which is a
// core.Cache as well as a core.Store.
func TestMemstoreCache(t *testing.T) {
	t.Parallel()
	conformance.TestCache(t, func(t *testing.T) core.Cache {
		st := memstore.New(memstore.WithSweepInterval(50 * time.Millisecond))
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// TestMemstoreDo runs the Do suite against memstore.
func TestMemstoreDo(t *testing.T) {
	t.Parallel()
	conformance.TestDo(t, func(t *testing.T) core.Store {
		st := memstore.New()
		t.Cleanup(func() { st.Close() })
		return st
	})
}
