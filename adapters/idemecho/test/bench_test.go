package idemecho_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/labstack/echo/v4"
)

// sink is a reusable http.ResponseWriter that discards the body, so the
// benchmarks measure the router and the middleware, not a recorder.
type sink struct {
	h      http.Header
	status int
}

func (s *sink) Header() http.Header         { return s.h }
func (s *sink) WriteHeader(code int)        { s.status = code }
func (s *sink) Write(b []byte) (int, error) { return len(b), nil }

var benchBody = []byte(`{"amount":1200,"currency":"EUR"}`)

func benchHandler(c echo.Context) error {
	c.Response().Header().Set("Location", "/payments/pay_1")
	return c.JSON(http.StatusCreated, map[string]any{"id": "pay_1", "amount": 1200, "currency": "EUR"})
}

// BenchmarkMiddleware compares the bare handler with the same handler
// behind the middleware over memstore, for a new key on every request and
// for a replay of one key. Run in-process through ServeHTTP.
func BenchmarkMiddleware(b *testing.B) {
	bare := newEcho()
	bare.POST("/payments", benchHandler)
	store := memstore.New()
	b.Cleanup(func() { store.Close() })
	guarded := newEcho()
	guarded.POST("/payments", benchHandler, idemecho.Middleware(core.New(store)))

	run := func(b *testing.B, h http.Handler, key func(i int) string) {
		req, _ := http.NewRequest(http.MethodPost, "/payments", nil)
		req.Header.Set("Content-Type", "application/json")
		rd := bytes.NewReader(benchBody)
		w := &sink{h: make(http.Header)}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if key != nil {
				req.Header["Idempotency-Key"] = []string{key(i)}
			}
			rd.Reset(benchBody)
			req.Body, req.ContentLength = io.NopCloser(rd), int64(len(benchBody))
			clear(w.h)
			h.ServeHTTP(w, req)
			if w.status != http.StatusCreated {
				b.Fatalf("status %d", w.status)
			}
			i++
		}
	}
	b.Run("Bare", func(b *testing.B) { run(b, bare, nil) })
	b.Run("NewKey", func(b *testing.B) {
		prefix := "new-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
		run(b, guarded, func(i int) string { return prefix + strconv.Itoa(i) })
	})
	b.Run("Replay", func(b *testing.B) {
		run(b, guarded, func(int) string { return "00000000-0000-0000-0000-000000000001" })
	})
}
