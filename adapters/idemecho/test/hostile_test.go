package idemecho_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
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
				e := newEcho()
				e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true}), idemecho.Middleware(engine))
				e.Any("/*", echo.WrapHandler(app))
				return conformance.ServeWithDeadlines(t, e, hostileReadTimeout)
			},
		},
		ReadTimeout: hostileReadTimeout,
	})
}
