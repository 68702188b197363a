package idemfiber_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func Example() {
	store := memstore.New()
	defer store.Close()
	engine := core.New(store, core.WithHeaderScope("X-Api-Key"))

	var executions atomic.Int64
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(recover.New())
	app.Post("/payments", idemfiber.Middleware(engine), func(c *fiber.Ctx) error {
		var in struct {
			Amount int `json:"amount"`
		}
		if err := c.BodyParser(&in); err != nil || in.Amount <= 0 {
			// Rendered inside the middleware: a 400 is stored and replayed.
			return fiber.NewError(fiber.StatusBadRequest, "amount must be positive")
		}
		n := executions.Add(1)
		return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": fmt.Sprintf("pay_%d", n), "execution": n})
	})

	post := func(key, body string) {
		req := httptest.NewRequest("POST", "/payments", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("X-Api-Key", "client-1")
		resp, err := app.Test(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s replayed=%q\n", resp.StatusCode, b, resp.Header.Get("Idempotency-Replayed"))
	}
	post("pay-1", `{"amount":1200}`)
	post("pay-1", `{"amount":1200}`)
	post("pay-2", `{"amount":-5}`)
	post("pay-2", `{"amount":-5}`)
	// Output:
	// 201 {"execution":1,"id":"pay_1"} replayed=""
	// 201 {"execution":1,"id":"pay_1"} replayed="true"
	// 400 amount must be positive replayed=""
	// 400 amount must be positive replayed="true"
}
