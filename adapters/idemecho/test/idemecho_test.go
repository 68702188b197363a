package idemecho_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

func newMemStore(t *testing.T) core.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	return e
}

// newServer mounts the suite's net/http app natively: recovery first, then
// the middleware, then echo.WrapHandler on every path.
func newServer(t *testing.T, engine *core.Engine, app http.Handler) string {
	e := newEcho()
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true}), idemecho.Middleware(engine))
	e.Any("/*", echo.WrapHandler(app))
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestConformance(t *testing.T) {
	conformance.TestMiddleware(t, conformance.Harness{NewStore: newMemStore, NewServer: newServer})
}

func call(h http.Handler, method, target, key, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestNativeHandlers drives handlers written with echo's own API, including
// returned errors, and checks replay bytes, headers and run counts.
func TestNativeHandlers(t *testing.T) {
	type payload struct {
		Amount   int    `json:"amount"`
		Currency string `json:"currency"`
	}
	cases := []struct {
		name     string
		handler  echo.HandlerFunc
		status   int
		body     string
		replayed bool // the retry is a replay (else: the claim was released)
	}{
		{"JSON", func(c echo.Context) error {
			var p payload
			if err := c.Bind(&p); err != nil {
				return err
			}
			c.Response().Header().Set("Location", "/payments/1")
			return c.JSON(http.StatusCreated, p)
		}, http.StatusCreated, "{\"amount\":1200,\"currency\":\"EUR\"}\n", true},
		{"String", func(c echo.Context) error {
			return c.String(http.StatusAccepted, "queued")
		}, http.StatusAccepted, "queued", true},
		{"Blob", func(c echo.Context) error {
			return c.Blob(http.StatusOK, "application/octet-stream", []byte{0, 0xff, 0xfe, 'x'})
		}, http.StatusOK, "\x00\xff\xfex", true},
		{"NoContent", func(c echo.Context) error {
			return c.NoContent(http.StatusNoContent)
		}, http.StatusNoContent, "", true},
		{"ResponseWrite", func(c echo.Context) error {
			c.Response().Header().Set("Content-Type", "text/csv")
			c.Response().WriteHeader(http.StatusCreated)
			_, err := c.Response().Write([]byte("a,b\n1,2\n"))
			return err
		}, http.StatusCreated, "a,b\n1,2\n", true},
		{"HTTPError400Stored", func(c echo.Context) error {
			return echo.NewHTTPError(http.StatusBadRequest, "amount must be positive")
		}, http.StatusBadRequest, "{\"message\":\"amount must be positive\"}\n", true},
		{"HTTPError409Stored", func(c echo.Context) error {
			return echo.ErrConflict
		}, http.StatusConflict, "{\"message\":\"Conflict\"}\n", true},
		{"PlainErrorReleased", func(c echo.Context) error {
			return errors.New("database is down")
		}, http.StatusInternalServerError, "{\"message\":\"Internal Server Error\"}\n", false},
		{"HTTPError503Released", func(c echo.Context) error {
			return echo.NewHTTPError(http.StatusServiceUnavailable, "try later")
		}, http.StatusServiceUnavailable, "{\"message\":\"try later\"}\n", false},
		{"WrittenThenError", func(c echo.Context) error {
			c.String(http.StatusCreated, "made")
			return errors.New("late error after the response was written")
		}, http.StatusCreated, "made", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var runs atomic.Int32
			e := newEcho()
			e.POST("/p", func(c echo.Context) error {
				runs.Add(1)
				h := c.Response().Header()
				h.Add("X-Multi", "a")
				h.Add("X-Multi", "b")
				return tc.handler(c)
			}, idemecho.Middleware(core.New(newMemStore(t))))
			body := `{"amount":1200,"currency":"EUR"}`
			first := call(e, http.MethodPost, "/p", "native-"+tc.name, body)
			again := call(e, http.MethodPost, "/p", "native-"+tc.name, body)
			if first.Code != tc.status || first.Body.String() != tc.body {
				t.Errorf("first: %d %q; want %d %q", first.Code, first.Body.String(), tc.status, tc.body)
			}
			if first.Header().Get("Idempotency-Replayed") != "" {
				t.Errorf("first carries Idempotency-Replayed")
			}
			if !tc.replayed {
				if again.Header().Get("Idempotency-Replayed") != "" || runs.Load() != 2 {
					t.Errorf("retry after %d: replayed %q, runs %d; want a fresh run (5xx releases the claim)", tc.status, again.Header().Get("Idempotency-Replayed"), runs.Load())
				}
				return
			}
			if again.Code != first.Code || !bytes.Equal(again.Body.Bytes(), first.Body.Bytes()) {
				t.Errorf("replay: %d %q; want %d %q", again.Code, again.Body.String(), first.Code, first.Body.String())
			}
			if got := again.Header().Get("Idempotency-Replayed"); got != "true" {
				t.Errorf("replay: Idempotency-Replayed %q; want true", got)
			}
			for _, name := range []string{"Content-Type", "Location", "X-Multi"} {
				if f, a := first.Header().Values(name), again.Header().Values(name); strings.Join(f, "|") != strings.Join(a, "|") {
					t.Errorf("replayed %s = %q; want %q", name, a, f)
				}
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("handler ran %d times; want 1", n)
			}
		})
	}
}

// TestResponseBookkeeping checks that outer middleware sees the real
// response written once: Before hooks run once, Status and Size are the
// final ones, on a fresh run, a replay and a refusal.
func TestResponseBookkeeping(t *testing.T) {
	e := newEcho()
	var before atomic.Int32
	var status, size []int64
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Before(func() {
				before.Add(1)
				c.Response().Header().Add("X-Request-Id", "req")
			})
			err := next(c)
			status = append(status, int64(c.Response().Status))
			size = append(size, c.Response().Size)
			return err
		}
	}, idemecho.Middleware(core.New(newMemStore(t))))
	e.POST("/p", func(c echo.Context) error {
		if !c.Response().Committed && c.Response().Status != 0 && c.Response().Size != 0 {
			t.Errorf("handler sees a used response: %+v", c.Response())
		}
		return c.String(http.StatusCreated, "12345")
	})
	first := call(e, http.MethodPost, "/p", "book", "{}")
	again := call(e, http.MethodPost, "/p", "book", "{}")
	refused := call(e, http.MethodPost, "/p", "", "{}")
	for i, r := range []*httptest.ResponseRecorder{first, again, refused} {
		if got := r.Header().Values("X-Request-Id"); len(got) != 1 {
			t.Errorf("response %d: X-Request-Id %q; want exactly one (the outer Before hook runs once, and is not stored)", i, got)
		}
	}
	if before.Load() != 3 {
		t.Errorf("outer Before hook ran %d times for 3 responses; want 3", before.Load())
	}
	if want := []int64{201, 201, 400}; len(status) != 3 || status[0] != want[0] || status[1] != want[1] || status[2] != want[2] {
		t.Errorf("outer middleware saw statuses %v; want %v", status, want)
	}
	if size[0] != 5 || size[1] != 5 || size[2] != int64(refused.Body.Len()) {
		t.Errorf("outer middleware saw sizes %v; want [5 5 %d]", size, refused.Body.Len())
	}
}

// TestUnguardedErrorReturned checks that an unguarded request's error goes
// back to echo unchanged (echo renders it once, after the middleware).
func TestUnguardedErrorReturned(t *testing.T) {
	e := newEcho()
	var handled atomic.Int32
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		handled.Add(1)
		e.DefaultHTTPErrorHandler(err, c)
	}
	e.Use(idemecho.Middleware(core.New(newMemStore(t), core.WithKeyRequired(false))))
	e.Any("/p", func(c echo.Context) error { return echo.ErrTeapot })
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if r := call(e, m, "/p", "", ""); r.Code != http.StatusTeapot {
			t.Errorf("%s: %d; want 418", m, r.Code)
		}
	}
	if r := call(e, http.MethodPost, "/p", "k-teapot", ""); r.Code != http.StatusTeapot {
		t.Errorf("guarded: %d; want 418", r.Code)
	}
	if handled.Load() != 3 {
		t.Errorf("error handler ran %d times for 3 requests; want 3 (once each)", handled.Load())
	}
}

// TestGroup guards a group with a scope from the echo.Context.
func TestGroup(t *testing.T) {
	e := newEcho()
	var runs atomic.Int32
	auth := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error { c.Set("tenant", c.Request().Header.Get("X-Tenant")); return next(c) }
	}
	g := e.Group("/api", auth, idemecho.Middleware(core.New(newMemStore(t), core.ScopeBy(func(c echo.Context) string {
		s, _ := c.Get("tenant").(string)
		return s
	}))))
	g.POST("/orders", func(c echo.Context) error {
		n := runs.Add(1)
		b, _ := io.ReadAll(c.Request().Body)
		return c.JSON(http.StatusCreated, map[string]any{"run": n, "len": len(b), "cl": c.Request().ContentLength})
	})
	a := call(e, http.MethodPost, "/api/orders", "grp", "hello", "X-Tenant", "a")
	if a.Body.String() != "{\"cl\":5,\"len\":5,\"run\":1}\n" {
		t.Errorf("handler saw %q; want the whole body and its length", a.Body.String())
	}
	if b := call(e, http.MethodPost, "/api/orders", "grp", "hello", "X-Tenant", "b"); b.Header().Get("Idempotency-Replayed") != "" {
		t.Errorf("other tenant got a replay")
	}
	if a2 := call(e, http.MethodPost, "/api/orders", "grp", "hello", "X-Tenant", "a"); a2.Body.String() != a.Body.String() || a2.Header().Get("Idempotency-Replayed") != "true" {
		t.Errorf("tenant a retry %q; want replay of %q", a2.Body.String(), a.Body.String())
	}
	if runs.Load() != 2 {
		t.Errorf("runs %d; want 2", runs.Load())
	}
}

// TestWriterInterfaces pins the interfaces the capturing writer offers.
func TestWriterInterfaces(t *testing.T) {
	e := newEcho()
	e.POST("/p", func(c echo.Context) error {
		w := c.Response().Writer
		if _, ok := w.(http.Flusher); !ok {
			t.Error("capturing writer is not an http.Flusher (echo's Response.Flush would panic)")
		}
		if _, ok := w.(http.Hijacker); !ok {
			t.Error("capturing writer is not an http.Hijacker")
		}
		if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok {
			t.Error("capturing writer has no Unwrap")
		}
		if _, ok := w.(http.Pusher); ok {
			t.Error("capturing writer implements http.Pusher")
		}
		if _, ok := w.(io.ReaderFrom); ok {
			t.Error("capturing writer implements io.ReaderFrom")
		}
		c.Response().Write([]byte("part1 "))
		c.Response().Flush()
		c.Response().Write([]byte("part2"))
		return nil
	}, idemecho.Middleware(core.New(newMemStore(t))))
	for i := 0; i < 2; i++ {
		if r := call(e, http.MethodPost, "/p", "ifaces", ""); r.Body.String() != "part1 part2" {
			t.Errorf("request %d: %q; want buffered part1 part2", i, r.Body.String())
		}
	}
}

func TestHijackReleasesClaim(t *testing.T) {
	var runs atomic.Int32
	e := newEcho()
	e.POST("/h", func(c echo.Context) error {
		runs.Add(1)
		if c.Request().Header.Get("X-Hijack") == "" {
			return c.NoContent(http.StatusCreated)
		}
		conn, rw, err := c.Response().Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return err
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		rw.Flush()
		return nil
	}, idemecho.Middleware(core.New(newMemStore(t), core.WithWaitForInFlight(5*time.Second)))) // the retry waits for the release instead of racing it
	srv := httptest.NewServer(e)
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/h", strings.NewReader("x"))
	req.Header.Set("Idempotency-Key", "hijack-key")
	req.Header.Set("X-Hijack", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("hijacked request: %v", err)
	}
	b, _ := bufio.NewReader(resp.Body).ReadString(0)
	resp.Body.Close()
	if b != "hi" {
		t.Errorf("hijacked body %q; want %q", b, "hi")
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/h", strings.NewReader("x"))
	req.Header.Set("Idempotency-Key", "hijack-key")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotency-Replayed") != "" {
		t.Errorf("retry after hijack: %d replayed %q; want a fresh 201", resp.StatusCode, resp.Header.Get("Idempotency-Replayed"))
	}
	if runs.Load() != 2 {
		t.Errorf("handler ran %d times; want 2", runs.Load())
	}
}

// TestPanicReachesRecover checks that middleware.Recover, registered before
// the middleware, writes its 500 to the real response and the claim is
// released.
func TestPanicReachesRecover(t *testing.T) {
	var runs atomic.Int32
	e := newEcho()
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisablePrintStack: true}))
	e.POST("/p", func(c echo.Context) error {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		return c.String(http.StatusCreated, "ok")
	}, idemecho.Middleware(core.New(newMemStore(t))))
	if r := call(e, http.MethodPost, "/p", "panic", ""); r.Code != http.StatusInternalServerError {
		t.Errorf("panicking handler: %d; want 500 from Recover", r.Code)
	}
	if r := call(e, http.MethodPost, "/p", "panic", ""); r.Code != http.StatusCreated || r.Header().Get("Idempotency-Replayed") != "" {
		t.Errorf("retry: %d; want a fresh 201", r.Code)
	}
}

// TestEventsNameTheArrivedRequest: a handler that rewrites the request's
// URL (which the copy it runs on shares) or replaces the request must not
// change the method and path the engine reports after it ran: the events
// name the request as it arrived, whose path the fingerprint covers.
func TestEventsNameTheArrivedRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(c echo.Context)
	}{
		{"RewritesURL", func(c echo.Context) { c.Request().URL.Path, c.Request().URL.RawPath = "/rewritten", "" }},
		{"ReplacesRequest", func(c echo.Context) {
			c.SetRequest(httptest.NewRequest(http.MethodPut, "/replaced", nil).WithContext(c.Request().Context()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			obs := core.ObserverFunc(func(_ context.Context, ev core.Event) {
				got = append(got, string(ev.Outcome)+" "+ev.Method+" "+ev.Path)
			})
			e := newEcho()
			e.Use(idemecho.Middleware(core.New(newMemStore(t), core.WithObserver(obs))))
			e.POST("/payments/:id", func(c echo.Context) error {
				tc.handler(c)
				return c.String(http.StatusCreated, "ok")
			})
			if rec := call(e, http.MethodPost, "/payments/caf%C3%A9", `"arrived"`, "{}"); rec.Code != http.StatusCreated {
				t.Fatalf("status %d; want 201", rec.Code)
			}
			if want := []string{"executed POST /payments/caf%C3%A9"}; !slices.Equal(got, want) {
				t.Errorf("events %q; want %q: an event names the request as it arrived, not as the handler left it", got, want)
			}
		})
	}
}
