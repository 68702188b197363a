package idemchi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/go-chi/chi/v5"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

type clientKey struct{}

// authenticate stands for the application's own authentication: it puts
// the client's identity in the request context.
func authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, client)))
	})
}

// A chi router whose POST /payments runs once per key and client: a retry
// gets the first response replayed, marked Idempotency-Replayed: true.
func Example() {
	// Keys are scoped by the authenticated client, so two clients that
	// pick the same key never share a response.
	engine := core.New(memstore.New(), core.WithKeyScope(func(x core.Exchange) string {
		client, _ := x.Context().Value(clientKey{}).(string)
		return client
	}))
	var payments atomic.Int64
	r := chi.NewRouter()
	r.Use(authenticate)
	r.Group(func(r chi.Router) {
		r.Use(idemchi.Middleware(engine))
		r.Post("/payments", func(w http.ResponseWriter, r *http.Request) {
			n := payments.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"payment":%d}`, n)
		})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	post := func(client, key, body string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+client)
		req.Header.Set("Idempotency-Key", key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		fmt.Printf("%s %s: %d replayed=%q %s\n", client, key, res.StatusCode, res.Header.Get(core.DefaultReplayHeader), strings.TrimSpace(string(b)))
	}
	post("client-a", `"pay-1"`, `{"amount":1200}`)
	post("client-a", `"pay-1"`, `{"amount":1200}`) // a retry: replayed
	post("client-b", `"pay-1"`, `{"amount":1200}`) // another client's key space
	post("client-a", `"pay-1"`, `{"amount":9900}`) // the key reused for another request
	fmt.Println("payments made:", payments.Load())
	// Output:
	// client-a "pay-1": 201 replayed="" {"payment":1}
	// client-a "pay-1": 201 replayed="true" {"payment":1}
	// client-b "pay-1": 201 replayed="" {"payment":2}
	// client-a "pay-1": 422 replayed="" {"type":"https://github.com/idemkit/idemkit/blob/main/docs/problems.md#fingerprint-mismatch","title":"Idempotency-Key reused","status":422,"detail":"This Idempotency-Key was already used with a different request.","code":"fingerprint-mismatch"}
	// payments made: 2
}
