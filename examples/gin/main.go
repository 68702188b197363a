// Command gin is the idemkit example service on gin. See the repository
// README; run it with
//
//	go run ./examples/gin -addr 127.0.0.1:8080 -store memory
package main

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/idemkit/idemkit/adapters/idemgin"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/examples/internal/service"
)

func main() { service.Main(routes) }

func routes(engine *core.Engine, payments *service.Payments) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/healthz", gin.WrapF(service.Healthz(engine)))
	r.GET("/stats", func(c *gin.Context) { c.JSON(http.StatusOK, payments.Stats()) })
	r.POST("/payments", idemgin.Middleware(engine), func(c *gin.Context) {
		var req service.PaymentRequest
		if err := c.ShouldBindJSON(&req); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": "invalid JSON body"})
			return
		}
		pay, status, err := payments.Create(c.Request.Context(), req, service.QueryFrom(c.Query))
		if err != nil {
			c.JSON(status, gin.H{"error": err.Error()})
			return
		}
		c.Header("Location", "/payments/"+pay.ID)
		c.JSON(status, pay)
	})
	return r
}
