package idemchi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
)

// hostileReadTimeout is the read deadline of the hostile-input server:
// short, so that the cases that stall past it end quickly.
const hostileReadTimeout = 500 * time.Millisecond

// TestHostileInput serves the middleware on a real net/http server and
// sends it malformed, duplicated, truncated, overlong, trickled and
// pipelined requests over raw connections.
func TestHostileInput(t *testing.T) {
	conformance.TestHostileInput(t, conformance.HostileHarness{
		Harness: conformance.Harness{
			NewStore: newMemStore,
			NewServer: func(t *testing.T, engine *core.Engine, app http.Handler) string {
				r := chi.NewRouter()
				r.Use(idemchi.Middleware(engine))
				r.Handle("/*", app)
				return conformance.ServeWithDeadlines(t, r, hostileReadTimeout)
			},
		},
		ReadTimeout: hostileReadTimeout,
	})
}
