package idemecho_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

func Example() {
	store := memstore.New()
	defer store.Close()
	engine := core.New(store, core.WithHeaderScope("X-Api-Key"))

	var executions atomic.Int64
	e := echo.New()
	e.Use(middleware.Recover())
	e.POST("/payments", func(c echo.Context) error {
		var in struct {
			Amount int `json:"amount"`
		}
		if err := c.Bind(&in); err != nil || in.Amount <= 0 {
			// Rendered inside the middleware: a 400 is stored and replayed.
			return echo.NewHTTPError(http.StatusBadRequest, "amount must be positive")
		}
		n := executions.Add(1)
		return c.JSON(http.StatusCreated, map[string]any{"id": fmt.Sprintf("pay_%d", n), "execution": n})
	}, idemecho.Middleware(engine))
	srv := httptest.NewServer(e)
	defer srv.Close()

	post := func(key, body string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("X-Api-Key", "client-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s replayed=%q\n", resp.StatusCode, strings.TrimSpace(string(b)), resp.Header.Get("Idempotency-Replayed"))
	}
	post("pay-1", `{"amount":1200}`)
	post("pay-1", `{"amount":1200}`)
	post("pay-2", `{"amount":-5}`)
	post("pay-2", `{"amount":-5}`)
	// Output:
	// 201 {"execution":1,"id":"pay_1"} replayed=""
	// 201 {"execution":1,"id":"pay_1"} replayed="true"
	// 400 {"message":"amount must be positive"} replayed=""
	// 400 {"message":"amount must be positive"} replayed="true"
}
