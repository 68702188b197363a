package idemhttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func ExampleMiddleware() {
	store := memstore.New()
	defer store.Close()
	engine := core.New(store, core.WithHeaderScope("X-Api-Key"))

	var executions atomic.Int64
	payments := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := executions.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"pay_1","execution":%d}`, n)
	})
	mux := http.NewServeMux()
	mux.Handle("POST /payments", idemhttp.Middleware(engine)(payments))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(key, body string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		req.Header.Set("X-Api-Key", "client-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, resp.Header.Get("Idempotency-Replayed"), string(b))
	}
	post(`"4f1c2a"`, `{"amount":1200}`) // runs the handler
	post(`"4f1c2a"`, `{"amount":1200}`) // replayed
	post(`"4f1c2a"`, `{"amount":9900}`) // same key, other payload
	fmt.Println("executions:", executions.Load())
	// Output:
	// 201  {"id":"pay_1","execution":1}
	// 201 true {"id":"pay_1","execution":1}
	// 422  {"type":"https://github.com/idemkit/idemkit/blob/main/docs/problems.md#fingerprint-mismatch","title":"Idempotency-Key reused","status":422,"detail":"This Idempotency-Key was already used with a different request.","code":"fingerprint-mismatch"}
	// executions: 1
}

// Functions of the request for core.ScopeBy, core.SkipBy and
// core.RouteOptionsBy take the *http.Request under this adapter.
func ExampleMiddleware_scopeBy() {
	store := memstore.New()
	defer store.Close()
	type tenantKey struct{}
	engine := core.New(store,
		// The tenant an earlier authentication middleware put in the context.
		core.ScopeBy(func(r *http.Request) string { s, _ := r.Context().Value(tenantKey{}).(string); return s }),
		core.SkipBy(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/webhooks/") }),
	)
	var executions atomic.Int64
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "order %d", executions.Add(1))
	})
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := context.WithValue(r.Context(), tenantKey{}, r.Header.Get("X-Tenant"))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	srv := httptest.NewServer(auth(idemhttp.Middleware(engine)(orders)))
	defer srv.Close()

	post := func(tenant string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader("{}"))
		req.Header.Set("Idempotency-Key", `"same-key"`)
		req.Header.Set("X-Tenant", tenant)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(tenant, resp.StatusCode, resp.Header.Get("Idempotency-Replayed"), string(b))
	}
	post("acme")
	post("acme")   // replayed
	post("globex") // another tenant: its own key space
	// Output:
	// acme 200  order 1
	// acme 200 true order 1
	// globex 200  order 2
}
