package idemgin_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"github.com/idemkit/idemkit/adapters/idemgin"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func Example() {
	gin.SetMode(gin.ReleaseMode)
	store := memstore.New()
	defer store.Close()
	engine := core.New(store, core.WithHeaderScope("X-Api-Key"))

	var executions atomic.Int64
	r := gin.New()
	r.Use(gin.Recovery())
	r.POST("/payments", idemgin.Middleware(engine), func(c *gin.Context) {
		n := executions.Add(1)
		c.JSON(http.StatusCreated, gin.H{"id": fmt.Sprintf("pay_%d", n), "execution": n})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(`{"amount":1200}`))
		req.Header.Set("Idempotency-Key", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`)
		req.Header.Set("X-Api-Key", "client-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s replayed=%q\n", resp.StatusCode, body, resp.Header.Get("Idempotency-Replayed"))
	}
	// Output:
	// 201 {"execution":1,"id":"pay_1"} replayed=""
	// 201 {"execution":1,"id":"pay_1"} replayed="true"
}
