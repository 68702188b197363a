// Command chi is the idemkit example service on chi. See the repository
// README; run it with
//
//	go run ./examples/chi -addr 127.0.0.1:8080 -store memory
package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/examples/internal/service"
)

func main() { service.Main(routes) }

func routes(engine *core.Engine, payments *service.Payments) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", service.Healthz(engine))
	r.Get("/stats", payments.StatsHandler)
	r.Group(func(r chi.Router) {
		r.Use(idemchi.Middleware(engine))
		r.Post("/payments", payments.CreatePaymentHandler)
	})
	return r
}
