package matrix

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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
	"github.com/idemkit/idemkit/core/memstore"
)

func init() { gin.SetMode(gin.TestMode) }

type newServer = func(t *testing.T, engine *core.Engine, app http.Handler) string

type adapter struct {
	name string
	new  newServer
}

// httpMounts mount the suite's app behind each net/http adapter, with the
// framework's own panic recovery outside the middleware. How the handler
// is served is the caller's: see adapters and limitedAdapters.
var httpMounts = []struct {
	name  string
	mount func(e *core.Engine, app http.Handler) http.Handler
}{
	{"nethttp", func(e *core.Engine, app http.Handler) http.Handler {
		return idemhttp.Middleware(e)(app)
	}},
	{"chi", func(e *core.Engine, app http.Handler) http.Handler {
		r := chi.NewRouter()
		r.Use(idemchi.Middleware(e))
		r.Handle("/*", app)
		return r
	}},
	{"gin", func(e *core.Engine, app http.Handler) http.Handler {
		r := gin.New()
		r.Use(gin.RecoveryWithWriter(io.Discard), idemgin.Middleware(e))
		r.Any("/*path", gin.WrapH(app))
		return r
	}},
	{"echo", func(e *core.Engine, app http.Handler) http.Handler {
		ec := echo.New()
		ec.HideBanner, ec.HidePort = true, true
		ec.Logger.SetOutput(io.Discard)
		ec.Use(echomw.RecoverWithConfig(echomw.RecoverConfig{DisablePrintStack: true}), idemecho.Middleware(e))
		ec.Any("/*", echo.WrapHandler(app))
		return ec
	}},
}

// serveFiber mounts app behind idemfiber, with fiber's panic recovery
// outside the middleware, on fiber's own server configured by cfg.
func serveFiber(cfg fiber.Config) newServer {
	return func(t *testing.T, e *core.Engine, app http.Handler) string {
		f := fiber.New(cfg)
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

// withServer is every adapter of httpMounts served by serve, then fiber's
// on its own server for each of fibers.
func withServer(serve func(t *testing.T, h http.Handler) string, fibers ...adapter) []adapter {
	var as []adapter
	for _, m := range httpMounts {
		as = append(as, adapter{m.name, func(t *testing.T, e *core.Engine, app http.Handler) string {
			return serve(t, m.mount(e, app))
		}})
	}
	return append(as, fibers...)
}

// adapters are the adapters on test servers (httptest's; fiber's own with
// its defaults).
var adapters = withServer(func(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}, adapter{"fiber", serveFiber(fiber.Config{DisableStartupMessage: true})})

// hostileReadTimeout is the read deadline of the hostile-input servers:
// short, so that the cases that stall past it end quickly.
const hostileReadTimeout = 500 * time.Millisecond

// limitedFiber is fiber's server with short deadlines, buffered or
// streaming request bodies.
func limitedFiber(stream bool) fiber.Config {
	return fiber.Config{
		DisableStartupMessage: true,
		ReadTimeout:           hostileReadTimeout,
		WriteTimeout:          5 * time.Second,
		IdleTimeout:           5 * time.Second,
		ReadBufferSize:        16 << 10,
		StreamRequestBody:     stream,
	}
}

// limitedAdapters are the adapters on their real servers with read
// deadlines, for conformance.TestHostileInput.
var limitedAdapters = withServer(func(t *testing.T, h http.Handler) string {
	return conformance.ServeWithDeadlines(t, h, hostileReadTimeout)
},
	adapter{"fiber", serveFiber(limitedFiber(false))},
	adapter{"fiber-stream", serveFiber(limitedFiber(true))},
)

// countingApp answers every request 201 "run N", N counted by runs, after
// reading the body.
func countingApp(runs *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "run %d", n)
	})
}

// newMemStore is a memory store closed when t ends.
func newMemStore(t *testing.T) core.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}
