package pgxstore

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/svctest"
)

// TestConformance runs the store contract suite; every subtest gets its own
// schema on one shared pool.
func TestConformance(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 16)
	conformance.TestStore(t, func(t *testing.T) core.Store {
		return newTestDBOn(t, pool).store()
	})
}

// TestConformanceHTTP runs the middleware suite with idemhttp on this store.
func TestConformanceHTTP(t *testing.T) {
	pool := newPool(t, svctest.PostgresURL(t), 16)
	conformance.TestMiddleware(t, conformance.Harness{
		NewStore: func(t *testing.T) core.Store { return newTestDBOn(t, pool).store() },
		NewServer: func(t *testing.T, engine *core.Engine, app http.Handler) string {
			srv := httptest.NewServer(idemhttp.Middleware(engine)(app))
			t.Cleanup(srv.Close)
			return srv.URL
		},
	})
}
