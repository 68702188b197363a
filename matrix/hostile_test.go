package matrix

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/gofiber/fiber/v2"
	fiberrecover "github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/adapters/idemgin"
	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
)

// hostileReadTimeout is the read deadline of the hostile-input servers:
// short, so that the cases that stall past it end quickly.
const hostileReadTimeout = 500 * time.Millisecond

// serveLimited serves h on a loopback port with an http.Server configured
// as the examples configure theirs, with short deadlines.
func serveLimited(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: hostileReadTimeout,
		ReadTimeout:       hostileReadTimeout,
		WriteTimeout:      5 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// serveFiber mounts app behind idemfiber on fiber's own server with short
// deadlines, buffered or streaming request bodies.
func serveFiber(stream bool) newServer {
	return func(t *testing.T, e *core.Engine, app http.Handler) string {
		f := fiber.New(fiber.Config{
			DisableStartupMessage: true,
			ReadTimeout:           hostileReadTimeout,
			WriteTimeout:          5 * time.Second,
			IdleTimeout:           5 * time.Second,
			ReadBufferSize:        16 << 10,
			StreamRequestBody:     stream,
		})
		f.Use(fiberrecover.New(), idemfiber.Middleware(e))
		f.All("/*", idemfiber.HTTPHandler(app))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		go f.Listener(ln)
		t.Cleanup(func() { f.ShutdownWithTimeout(5 * time.Second) })
		return "http://" + ln.Addr().String()
	}
}

// limitedAdapters are the adapters on their real servers with read
// deadlines, for conformance.TestHostileInput.
var limitedAdapters = []struct {
	name string
	new  newServer
}{
	{"nethttp", func(t *testing.T, e *core.Engine, app http.Handler) string {
		return serveLimited(t, idemhttp.Middleware(e)(app))
	}},
	{"chi", func(t *testing.T, e *core.Engine, app http.Handler) string {
		r := chi.NewRouter()
		r.Use(idemchi.Middleware(e))
		r.Handle("/*", app)
		return serveLimited(t, r)
	}},
	{"gin", func(t *testing.T, e *core.Engine, app http.Handler) string {
		r := gin.New()
		r.Use(gin.RecoveryWithWriter(io.Discard), idemgin.Middleware(e))
		r.Any("/*path", gin.WrapH(app))
		return serveLimited(t, r)
	}},
	{"echo", func(t *testing.T, e *core.Engine, app http.Handler) string {
		ec := echo.New()
		ec.HideBanner, ec.HidePort = true, true
		ec.Logger.SetOutput(io.Discard)
		ec.Use(echomw.RecoverWithConfig(echomw.RecoverConfig{DisablePrintStack: true}), idemecho.Middleware(e))
		ec.Any("/*", echo.WrapHandler(app))
		return serveLimited(t, ec)
	}},
	{"fiber", serveFiber(false)},
	{"fiber-stream", serveFiber(true)},
}

// TestHostileInput runs conformance.TestHostileInput for every adapter,
// on its real server with short read deadlines, over the real stores
// (Redis, PostgreSQL): malformed, duplicated, truncated, overlong,
// trickled and pipelined requests over raw connections. The memory store
// runs in each adapter's own test module.
func TestHostileInput(t *testing.T) {
	b := connect(t)
	for _, a := range limitedAdapters {
		for _, s := range b.stores() {
			if s.name != "redis" && s.name != "postgres" {
				continue
			}
			t.Run("adapter="+a.name+"/store="+s.name, func(t *testing.T) {
				t.Parallel()
				conformance.TestHostileInput(t, conformance.HostileHarness{
					Harness:     conformance.Harness{NewStore: s.new, NewServer: a.new},
					ReadTimeout: hostileReadTimeout,
				})
			})
		}
	}
}
