package main

import (
	"log/slog"
	"net"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/examples/internal/service"
	"github.com/idemkit/idemkit/examples/internal/servicetest"
)

func TestService(t *testing.T) {
	store := memstore.New()
	defer store.Close()
	app := routes(core.New(store, service.EngineOptions(slog.New(slog.DiscardHandler))...), &service.Payments{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	defer app.Shutdown()
	servicetest.Check(t, "http://"+ln.Addr().String())
}
