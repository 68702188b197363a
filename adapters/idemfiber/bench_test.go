package idemfiber_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/idempotency"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/valyala/fasthttp"
)

var benchBody = []byte(`{"amount":1200,"currency":"EUR"}`)

func benchHandler(c *fiber.Ctx) error {
	c.Location("/payments/pay_1")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"id": "pay_1", "amount": 1200, "currency": "EUR"})
}

func benchApp(guard fiber.Handler) *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	if guard != nil {
		app.Post("/payments", guard, benchHandler)
	} else {
		app.Post("/payments", benchHandler)
	}
	return app
}

// BenchmarkMiddleware compares the bare handler with the same handler
// behind idemfiber over memstore, and behind fiber's own idempotency
// middleware (the peer), for a new key on every request and for a replay
// of one key. It runs in-process: app.Handler() on one reused
// fasthttp.RequestCtx whose response is reset between requests, as the
// server does.
func BenchmarkMiddleware(b *testing.B) {
	store := memstore.New()
	b.Cleanup(func() { store.Close() })
	bare := benchApp(nil)
	guarded := benchApp(idemfiber.Middleware(core.New(store)))
	peer := benchApp(idempotency.New()) // X-Idempotency-Key, 36-character keys, memory storage

	run := func(b *testing.B, app *fiber.App, header string, key func(i int) string) {
		h := app.Handler()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fiber.MethodPost)
		ctx.Request.SetRequestURI("/payments")
		ctx.Request.Header.SetContentType(fiber.MIMEApplicationJSON)
		ctx.Request.SetBody(benchBody)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if key != nil {
				ctx.Request.Header.Set(header, key(i))
			}
			ctx.Response.Reset()
			h(&ctx)
			if ctx.Response.StatusCode() != fiber.StatusCreated {
				b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
			i++
		}
	}
	// 36-character keys, as the peer's default validation requires.
	newKey := func() func(int) string {
		run := time.Now().UnixNano() % 1e12
		return func(i int) string { return fmt.Sprintf("%08x-0000-0000-0000-%012d", i, run) }
	}
	const oneKey = "00000000-0000-0000-0000-000000000001"
	b.Run("Bare", func(b *testing.B) { run(b, bare, "", nil) })
	b.Run("NewKey", func(b *testing.B) { run(b, guarded, core.KeyHeader, newKey()) })
	b.Run("Replay", func(b *testing.B) { run(b, guarded, core.KeyHeader, func(int) string { return oneKey }) })
	b.Run("PeerFiberIdempotency/NewKey", func(b *testing.B) { run(b, peer, "X-Idempotency-Key", newKey()) })
	b.Run("PeerFiberIdempotency/Replay", func(b *testing.B) {
		run(b, peer, "X-Idempotency-Key", func(int) string { return oneKey })
	})
}
