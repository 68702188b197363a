// Command nethttp is the idemkit example service on the standard library's
// http.ServeMux. Run it with
//
//	go run ./examples/nethttp -addr 127.0.0.1:8080 -store memory
package main

import (
	"context"
	"net/http"
	"os"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/examples/internal/service"
)

func main() {
	flags := service.ParseFlags()
	logger := service.Logger()
	store, closeStore, err := service.OpenStore(context.Background(), flags.Store)
	if err != nil {
		logger.Error("opening store", "err", err)
		os.Exit(2)
	}
	defer closeStore()
	engine := core.New(store, service.EngineOptions(logger)...)
	if err := service.Serve(flags.Addr, routes(engine, &service.Payments{}), logger); err != nil {
		logger.Error("server", "err", err)
		os.Exit(1)
	}
}

func routes(engine *core.Engine, payments *service.Payments) http.Handler {
	guard := idemhttp.Middleware(engine)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", service.Healthz)
	mux.HandleFunc("GET /stats", payments.StatsHandler)
	mux.Handle("POST /payments", guard(http.HandlerFunc(payments.CreatePaymentHandler)))
	return mux
}
