package idemfiber_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
)

// hostileReadTimeout is the read deadline of the hostile-input server:
// short, so that the cases that stall past it end quickly.
const hostileReadTimeout = 500 * time.Millisecond

// TestHostileInput serves the middleware on fiber's own server, configured
// as the fiber example configures it (a read deadline for the whole
// request, a write deadline, an idle timeout, a read buffer bounding the
// header section), with short deadlines, and sends it malformed,
// duplicated, truncated, overlong, trickled and pipelined requests over
// raw connections.
func TestHostileInput(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := "Buffered"
		if stream {
			name = "StreamRequestBody"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conformance.TestHostileInput(t, conformance.HostileHarness{
				Harness: conformance.Harness{
					NewStore: newMemStore,
					NewServer: func(t *testing.T, engine *core.Engine, app http.Handler) string {
						f := fiber.New(fiber.Config{
							DisableStartupMessage: true,
							ReadTimeout:           hostileReadTimeout,
							WriteTimeout:          5 * time.Second,
							IdleTimeout:           5 * time.Second,
							ReadBufferSize:        16 << 10,
							StreamRequestBody:     stream,
						})
						f.Use(recover.New(), idemfiber.Middleware(engine))
						f.All("/*", idemfiber.HTTPHandler(app))
						return listen(t, f)
					},
				},
				ReadTimeout: hostileReadTimeout,
			})
		})
	}
}

// TestConformanceStreamRequestBody runs the conformance suite with fiber's
// StreamRequestBody on: bodies longer than fasthttp's first read, and
// chunked ones, reach the middleware as a stream.
func TestConformanceStreamRequestBody(t *testing.T) {
	conformance.TestMiddleware(t, conformance.Harness{
		NewStore: newMemStore,
		NewServer: func(t *testing.T, engine *core.Engine, app http.Handler) string {
			f := fiber.New(fiber.Config{DisableStartupMessage: true, StreamRequestBody: true})
			f.Use(recover.New(), idemfiber.Middleware(engine))
			f.All("/*", idemfiber.HTTPHandler(app))
			return listen(t, f)
		},
	})
}
