package idemchi_test

import (
	"net"
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

// serveHostile serves h on a loopback port with an http.Server configured
// as the examples configure theirs (header and whole-request read
// deadlines, a write deadline, an idle timeout), with short deadlines.
func serveHostile(t *testing.T, h http.Handler) string {
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
				return serveHostile(t, r)
			},
		},
		ReadTimeout: hostileReadTimeout,
	})
}
