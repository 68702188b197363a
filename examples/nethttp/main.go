// Command nethttp is the idemkit example service on the standard library's
// http.ServeMux. Run it with
//
//	go run ./examples/nethttp -addr 127.0.0.1:8080 -store memory
package main

import (
	"net/http"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/examples/internal/service"
)

func main() { service.Main(routes) }

func routes(engine *core.Engine, payments *service.Payments) http.Handler {
	guard := idemhttp.Middleware(engine)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", service.Healthz(engine))
	mux.HandleFunc("GET /stats", payments.StatsHandler)
	mux.Handle("POST /payments", guard(http.HandlerFunc(payments.CreatePaymentHandler)))
	return mux
}
