package idemfiber_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func newMemStore(t *testing.T) core.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

// listen serves app on a loopback port until the test ends.
func listen(t *testing.T, app *fiber.App) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go app.Listener(ln)
	t.Cleanup(func() { app.ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String()
}

// newServer mounts the suite's net/http app natively: recover first (the
// panic row needs it outside the middleware), then the middleware, then
// the app through fiber's adaptor.
func newServer(t *testing.T, engine *core.Engine, app http.Handler) string {
	f := fiber.New(fiber.Config{DisableStartupMessage: true})
	f.Use(recover.New(), idemfiber.Middleware(engine))
	f.All("/*", idemfiber.HTTPHandler(app))
	return listen(t, f)
}

func TestConformance(t *testing.T) {
	conformance.TestMiddleware(t, conformance.Harness{NewStore: newMemStore, NewServer: newServer})
}

// do sends one request through app.Test and reads the whole response.
func do(t *testing.T, app *fiber.App, method, target, key, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestNativeHandlers drives handlers written with fiber's own API,
// including returned errors, and checks replay bytes, headers and runs.
func TestNativeHandlers(t *testing.T) {
	type payload struct {
		Amount   int    `json:"amount"`
		Currency string `json:"currency"`
	}
	cases := []struct {
		name     string
		handler  fiber.Handler
		status   int
		body     string
		replayed bool // the retry is a replay (else: the claim was released)
	}{
		{"StatusJSON", func(c *fiber.Ctx) error {
			var p payload
			if err := c.BodyParser(&p); err != nil {
				return err
			}
			c.Location("/payments/1")
			return c.Status(fiber.StatusCreated).JSON(p)
		}, 201, `{"amount":1200,"currency":"EUR"}`, true},
		{"SendString", func(c *fiber.Ctx) error {
			return c.Status(fiber.StatusAccepted).SendString("queued")
		}, 202, "queued", true},
		{"SendBinary", func(c *fiber.Ctx) error {
			c.Type("bin")
			return c.Send([]byte{0, 0xff, 0xfe, 'x'})
		}, 200, "\x00\xff\xfex", true},
		{"SendStatus204", func(c *fiber.Ctx) error {
			return c.SendStatus(fiber.StatusNoContent)
		}, 204, "", true},
		{"EchoRequestBodyRaw", func(c *fiber.Ctx) error {
			// The response body aliases the request buffer: the stored copy
			// must not.
			c.Response().SetBodyRaw(c.Body())
			return c.SendStatus(fiber.StatusCreated)
		}, 201, `{"amount":1200,"currency":"EUR"}`, true},
		{"FiberError400Stored", func(c *fiber.Ctx) error {
			return fiber.NewError(fiber.StatusBadRequest, "amount must be positive")
		}, 400, "amount must be positive", true},
		{"PlainErrorReleased", func(c *fiber.Ctx) error {
			return errors.New("database is down")
		}, 500, "database is down", false},
		{"FiberError503Released", func(c *fiber.Ctx) error {
			return fiber.ErrServiceUnavailable
		}, 503, "Service Unavailable", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var runs atomic.Int32
			app := fiber.New(fiber.Config{DisableStartupMessage: true})
			app.Post("/p", idemfiber.Middleware(core.New(newMemStore(t))), func(c *fiber.Ctx) error {
				runs.Add(1)
				c.Response().Header.Add("X-Multi", "a")
				c.Response().Header.Add("X-Multi", "b, c")
				return tc.handler(c)
			})
			body := `{"amount":1200,"currency":"EUR"}`
			first, fb := do(t, app, http.MethodPost, "/p", "native-"+tc.name, body)
			again, ab := do(t, app, http.MethodPost, "/p", "native-"+tc.name, body)
			if first.StatusCode != tc.status || fb != tc.body {
				t.Errorf("first: %d %q; want %d %q", first.StatusCode, fb, tc.status, tc.body)
			}
			if first.Header.Get("Idempotency-Replayed") != "" {
				t.Errorf("first carries Idempotency-Replayed")
			}
			if !tc.replayed {
				if again.Header.Get("Idempotency-Replayed") != "" || runs.Load() != 2 {
					t.Errorf("retry after %d: replayed %q, runs %d; want a fresh run", tc.status, again.Header.Get("Idempotency-Replayed"), runs.Load())
				}
				return
			}
			if again.StatusCode != first.StatusCode || ab != fb {
				t.Errorf("replay: %d %q; want %d %q", again.StatusCode, ab, first.StatusCode, fb)
			}
			if got := again.Header.Get("Idempotency-Replayed"); got != "true" {
				t.Errorf("replay: Idempotency-Replayed %q; want true", got)
			}
			if got := first.Header.Values("X-Multi"); strings.Join(got, "|") != "a|b, c" {
				t.Errorf("first X-Multi %q; want two field lines", got)
			}
			for _, name := range []string{"Content-Type", "Location", "X-Multi", "Content-Length"} {
				if f, a := first.Header.Values(name), again.Header.Values(name); strings.Join(f, "|") != strings.Join(a, "|") {
					t.Errorf("replayed %s = %q; want %q", name, a, f)
				}
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("handler ran %d times; want 1", n)
			}
		})
	}
}

// TestOuterHeadersNotStored checks that headers outer middleware sets
// before the chain (here a request ID) are neither stored nor duplicated:
// every response, fresh or replayed, carries the current request's ID once.
// Set-Cookie reaches the first response only.
func TestOuterHeadersNotStored(t *testing.T) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	var n atomic.Int64
	app.Use(requestid.New(requestid.Config{Generator: func() string { return "rid-" + strconv.FormatInt(n.Add(1), 10) }}))
	app.Post("/p", idemfiber.Middleware(core.New(newMemStore(t))), func(c *fiber.Ctx) error {
		c.Cookie(&fiber.Cookie{Name: "session", Value: "secret"})
		return c.Status(fiber.StatusCreated).SendString("made")
	})
	for i := 1; i <= 3; i++ {
		resp, body := do(t, app, http.MethodPost, "/p", "outer", "{}")
		if got, want := resp.Header.Values("X-Request-Id"), fmt.Sprintf("rid-%d", i); len(got) != 1 || got[0] != want {
			t.Errorf("request %d: X-Request-Id %q; want [%s]", i, got, want)
		}
		if resp.StatusCode != 201 || body != "made" {
			t.Errorf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if c := resp.Header.Get("Set-Cookie"); (i == 1) != (c != "") {
			t.Errorf("request %d: Set-Cookie %q; want it on the first response only", i, c)
		}
	}
}

// TestUnguardedErrorReturned checks that an unguarded request's error goes
// back to fiber unchanged.
func TestUnguardedErrorReturned(t *testing.T) {
	var handled atomic.Int32
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: func(c *fiber.Ctx, err error) error {
		handled.Add(1)
		return fiber.DefaultErrorHandler(c, err)
	}})
	app.Use(idemfiber.Middleware(core.New(newMemStore(t), core.WithKeyRequired(false))))
	app.All("/p", func(c *fiber.Ctx) error { return fiber.ErrTeapot })
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if r, _ := do(t, app, m, "/p", "", ""); r.StatusCode != http.StatusTeapot {
			t.Errorf("%s: %d; want 418", m, r.StatusCode)
		}
	}
	if r, _ := do(t, app, http.MethodPost, "/p", "teapot", ""); r.StatusCode != http.StatusTeapot {
		t.Errorf("guarded: %d; want 418", r.StatusCode)
	}
	if handled.Load() != 3 {
		t.Errorf("error handler ran %d times for 3 requests; want 3", handled.Load())
	}
}

// TestGroupScope guards a group with a scope read from c.Locals, and checks
// that repeated request header lines reach the engine as separate values.
func TestGroupScope(t *testing.T) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	var runs atomic.Int32
	api := app.Group("/api", func(c *fiber.Ctx) error {
		c.Locals("tenant", string(c.Request().Header.Peek("X-Tenant")))
		return c.Next()
	}, idemfiber.Middleware(core.New(newMemStore(t), core.ScopeBy(func(c *fiber.Ctx) string {
		s, _ := c.Locals("tenant").(string)
		return s
	}))))
	api.Post("/orders", func(c *fiber.Ctx) error {
		return c.Status(201).JSON(fiber.Map{"run": runs.Add(1), "len": len(c.Body())})
	})
	a, ab := do(t, app, http.MethodPost, "/api/orders", "grp", "hello", "X-Tenant", "a")
	if ab != `{"len":5,"run":1}` || a.StatusCode != 201 {
		t.Errorf("first: %d %s", a.StatusCode, ab)
	}
	if b, _ := do(t, app, http.MethodPost, "/api/orders", "grp", "hello", "X-Tenant", "b"); b.Header.Get("Idempotency-Replayed") != "" {
		t.Errorf("other tenant got a replay")
	}
	if a2, a2b := do(t, app, http.MethodPost, "/api/orders", "grp", "hello", "X-Tenant", "a"); a2b != ab || a2.Header.Get("Idempotency-Replayed") != "true" {
		t.Errorf("tenant a retry %q; want replay of %q", a2b, ab)
	}
	two, _ := do(t, app, http.MethodPost, "/api/orders", "", "hello", "Idempotency-Key", "k1", "Idempotency-Key", "k2")
	if two.StatusCode != http.StatusBadRequest {
		t.Errorf("two Idempotency-Key lines: %d; want 400 (every field line is a value)", two.StatusCode)
	}
	if runs.Load() != 2 {
		t.Errorf("runs %d; want 2", runs.Load())
	}
}

// TestPanicReachesRecover checks that fiber's recover middleware, outside
// the middleware, answers 500 and the claim is released.
func TestPanicReachesRecover(t *testing.T) {
	var runs atomic.Int32
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(recover.New())
	app.Post("/p", idemfiber.Middleware(core.New(newMemStore(t))), func(c *fiber.Ctx) error {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		return c.Status(201).SendString("ok")
	})
	if r, _ := do(t, app, http.MethodPost, "/p", "panic", ""); r.StatusCode != 500 {
		t.Errorf("panicking handler: %d; want 500", r.StatusCode)
	}
	if r, _ := do(t, app, http.MethodPost, "/p", "panic", ""); r.StatusCode != 201 || r.Header.Get("Idempotency-Replayed") != "" {
		t.Errorf("retry: %d; want a fresh 201", r.StatusCode)
	}
}

// retainingStore keeps, without copying, the body and headers of every
// response the engine completes, next to a copy taken at that moment, so
// a test can check later that the adapter handed over memory nobody
// reuses. (Real stores copy or serialize, which would hide an alias.)
type retainingStore struct {
	core.Store
	mu   sync.Mutex
	kept []kept
}

type kept struct {
	body, bodyAtComplete []byte
	header               http.Header
	headerAtComplete     string
}

func (s *retainingStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	s.mu.Lock()
	s.kept = append(s.kept, kept{body: resp.Body, bodyAtComplete: bytes.Clone(resp.Body), header: resp.Header, headerAtComplete: fmt.Sprint(resp.Header)})
	s.mu.Unlock()
	return s.Store.Complete(ctx, key, token, resp, ttl)
}

// TestBufferReuse proves that nothing stored aliases fasthttp's reused
// buffers. Many concurrent clients on keep-alive connections send distinct
// keys and bodies; the handler answers with a body that aliases the
// request buffer (SetBodyRaw(c.Body())) and a header copied from the
// request. Then every key is replayed and must return its own bytes.
func TestBufferReuse(t *testing.T) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	store := &retainingStore{Store: newMemStore(t)}
	app.Use(recover.New(), idemfiber.Middleware(core.New(store, core.WithHeaderScope("X-Api-Key"))))
	var runs atomic.Int64
	app.Post("/echo/:n", func(c *fiber.Ctx) error {
		runs.Add(1)
		c.Set("X-Echo", c.Get("X-Payload-Id"))
		c.Set("X-Path", c.Params("n"))
		c.Response().SetBodyRaw(c.Body())
		return c.SendStatus(fiber.StatusCreated)
	})
	base := listen(t, app)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 10 * time.Second}

	const workers, perWorker = 32, 40
	type result struct {
		i      int
		status int
		echo   string
		body   []byte
		err    error
	}
	payload := func(i int) []byte {
		// Different lengths and contents, so a reused buffer shows.
		return bytes.Repeat([]byte(fmt.Sprintf("payload-%04d|", i)), 1+i%17)
	}
	send := func(i int) result {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/echo/%d?q=%d", base, i, i), bytes.NewReader(payload(i)))
		req.Header.Set("Idempotency-Key", fmt.Sprintf("reuse-%04d", i))
		req.Header.Set("X-Api-Key", fmt.Sprintf("client-%d", i%5))
		req.Header.Set("X-Payload-Id", strconv.Itoa(i))
		resp, err := client.Do(req)
		if err != nil {
			return result{i: i, err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return result{i: i, status: resp.StatusCode, echo: resp.Header.Get("X-Echo") + "/" + resp.Header.Get("X-Path") + "/" + resp.Header.Get("Idempotency-Replayed"), body: b, err: err}
	}
	check := func(phase string, r result, replayed string) {
		t.Helper()
		want := payload(r.i)
		switch {
		case r.err != nil:
			t.Errorf("%s %d: %v", phase, r.i, r.err)
		case r.status != http.StatusCreated:
			t.Errorf("%s %d: status %d body %q; want 201", phase, r.i, r.status, r.body)
		case !bytes.Equal(r.body, want):
			t.Errorf("%s %d: body %.60q…; want %.60q… (a stored byte aliased a reused buffer: docs/contract.md C-STATE-3)", phase, r.i, r.body, want)
		case r.echo != fmt.Sprintf("%d/%d/%s", r.i, r.i, replayed):
			t.Errorf("%s %d: headers %q; want %q", phase, r.i, r.echo, fmt.Sprintf("%d/%d/%s", r.i, r.i, replayed))
		}
	}
	run := func(phase, replayed string) {
		out := make(chan result, workers*perWorker)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < perWorker; j++ {
					out <- send(w*perWorker + j)
				}
			}()
		}
		wg.Wait()
		close(out)
		for r := range out {
			check(phase, r, replayed)
		}
	}
	run("first", "")
	run("replay", "true")
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.kept) != workers*perWorker {
		t.Errorf("store completed %d responses; want %d", len(store.kept), workers*perWorker)
	}
	for i, k := range store.kept {
		if !bytes.Equal(k.body, k.bodyAtComplete) {
			t.Errorf("completed body %d changed after the request: %.40q…, was %.40q… (the adapter handed the engine a reused buffer: docs/contract.md C-STATE-3)", i, k.body, k.bodyAtComplete)
		}
		if h := fmt.Sprint(k.header); h != k.headerAtComplete {
			t.Errorf("completed headers %d changed after the request: %s, was %s (docs/contract.md C-STATE-3)", i, h, k.headerAtComplete)
		}
	}
	if got := runs.Load(); got != workers*perWorker {
		t.Errorf("handler ran %d times; want %d (one per key)", got, workers*perWorker)
	}
}
