package main

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/examples/internal/service"
	"github.com/idemkit/idemkit/examples/internal/servicetest"
)

// serve runs the example app with limits on a loopback port until the test
// ends and returns its base URL.
func serve(t *testing.T, limits service.Limits) string {
	t.Helper()
	store := memstore.New()
	opts := append(service.EngineOptions(slog.New(slog.DiscardHandler)), core.WithMaxBodyBytes(limits.MaxBody))
	engine := core.New(store, opts...)
	t.Cleanup(func() { // after the app has shut down
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		engine.Shutdown(ctx)
		store.Close()
	})
	app := routes(limits, engine, &service.Payments{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() { app.Shutdown() })
	return "http://" + ln.Addr().String()
}

func TestService(t *testing.T) { servicetest.Check(t, serve(t, service.DefaultLimits)) }

// TestLimits checks the server's limits over real sockets: a slow body is
// cut off by the read timeout and a header bomb is refused.
func TestLimits(t *testing.T) {
	limits := servicetest.TestLimits(t)
	servicetest.CheckLimits(t, serve(t, limits), limits)
}
