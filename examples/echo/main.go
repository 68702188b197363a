// Command echo is the idemkit example service on echo. See the repository
// README; run it with
//
//	go run ./examples/echo -addr 127.0.0.1:8080 -store memory
package main

import (
	"net/http"

	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/examples/internal/service"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

func main() { service.Main(routes) }

func routes(engine *core.Engine, payments *service.Payments) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.Recover())
	e.GET("/healthz", echo.WrapHandler(service.Healthz(engine)))
	e.GET("/stats", func(c echo.Context) error { return c.JSON(http.StatusOK, payments.Stats()) })
	e.POST("/payments", func(c echo.Context) error {
		var req service.PaymentRequest
		if err := c.Bind(&req); err != nil {
			return c.JSON(http.StatusBadRequest, map[string]string{"error": "invalid JSON body"})
		}
		pay, status, err := payments.Create(c.Request().Context(), req, service.QueryFrom(c.QueryParam))
		if err != nil {
			// A returned echo.HTTPError would be stored (4xx) or released
			// (5xx) the same way; the JSON body matches the other examples.
			return c.JSON(status, map[string]string{"error": err.Error()})
		}
		c.Response().Header().Set("Location", "/payments/"+pay.ID)
		return c.JSON(status, pay)
	}, idemecho.Middleware(engine))
	return e
}
