// Command fiber is the idemkit example service on fiber (v2). See the
// repository README; run it with
//
//	go run ./examples/fiber -addr 127.0.0.1:8080 -store memory
package main

import (
	"os"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/examples/internal/service"
)

func main() {
	flags, logger, engine, closeStore := service.Setup()
	defer closeStore()
	app := routes(flags.Limits, engine, service.MustPayments(flags, logger))
	if t := flags.Telemetry; t != nil { // -metrics: idemkit's metrics (fiber has no otelhttp)
		app.Get("/metrics", idemfiber.HTTPHandler(t.MetricsHandler()))
	}
	err := service.RunUntilSignal(logger, func() error {
		logger.Info("listening", "addr", flags.Addr)
		return app.Listen(flags.Addr)
	}, app.ShutdownWithContext)
	if err != nil {
		logger.Error("server", "err", err)
		closeStore()
		os.Exit(1)
	}
}

// config is the app's fiber.Config with the limits applied. fasthttp has
// no header deadline of its own: ReadTimeout covers headers and body, and
// the read buffer bounds the header section.
func config(l service.Limits) fiber.Config {
	return fiber.Config{
		DisableStartupMessage: true,
		ReadTimeout:           l.ReadTimeout,
		WriteTimeout:          l.WriteTimeout,
		IdleTimeout:           l.IdleTimeout,
		ReadBufferSize:        l.MaxHeaderBytes,
		BodyLimit:             int(l.MaxRequestBody),
	}
}

func routes(limits service.Limits, engine *core.Engine, payments *service.Payments) *fiber.App {
	app := fiber.New(config(limits))
	app.Use(recover.New())
	app.Get("/healthz", idemfiber.HTTPHandler(service.Healthz(engine)))
	app.Get("/stats", func(c *fiber.Ctx) error { return c.JSON(payments.Stats()) })
	app.Post("/payments", idemfiber.Middleware(engine), func(c *fiber.Ctx) error {
		var req service.PaymentRequest
		if err := c.BodyParser(&req); err != nil {
			return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "invalid JSON body"})
		}
		// fasthttp has no request context that ends with the client; the
		// user context is the request's context here (see idemfiber).
		pay, status, err := payments.Create(c.UserContext(), req, service.QueryFrom(func(name string) string { return c.Query(name) }))
		if err != nil {
			return c.Status(status).JSON(fiber.Map{"error": err.Error()})
		}
		c.Location("/payments/" + pay.ID)
		return c.Status(status).JSON(pay)
	})
	return app
}
