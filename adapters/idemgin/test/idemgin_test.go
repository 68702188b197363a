package idemgin_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/idemkit/idemkit/adapters/idemgin"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func init() { gin.SetMode(gin.TestMode) }

func newMemStore(t *testing.T) core.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

// newServer mounts the suite's net/http app natively: recovery first, then
// the middleware, then gin.WrapH on every path.
func newServer(t *testing.T, engine *core.Engine, app http.Handler) string {
	r := gin.New()
	r.Use(gin.RecoveryWithWriter(io.Discard), idemgin.Middleware(engine))
	r.Any("/*path", gin.WrapH(app))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestConformance(t *testing.T) {
	conformance.TestMiddleware(t, conformance.Harness{NewStore: newMemStore, NewServer: newServer})
}

// call sends one request to h and returns the recorded response.
func call(h http.Handler, method, target, key, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestNativeHandlers drives handlers written with gin's own API: each is
// run once, its retry is replayed byte for byte with all headers.
func TestNativeHandlers(t *testing.T) {
	type payload struct {
		Amount   int    `json:"amount"`
		Currency string `json:"currency"`
	}
	cases := []struct {
		name    string
		handler gin.HandlerFunc
		status  int
		body    string
		ctype   string
	}{
		{"JSON", func(c *gin.Context) {
			var p payload
			if err := c.ShouldBindJSON(&p); err != nil {
				c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
				return
			}
			c.Header("Location", "/payments/1")
			c.JSON(http.StatusCreated, p)
		}, http.StatusCreated, `{"amount":1200,"currency":"EUR"}`, "application/json; charset=utf-8"},
		{"String", func(c *gin.Context) {
			c.String(http.StatusAccepted, "queued %d", 7)
		}, http.StatusAccepted, "queued 7", "text/plain; charset=utf-8"},
		{"Data", func(c *gin.Context) {
			c.Data(http.StatusOK, "application/octet-stream", []byte{0, 0xff, 0xfe, 'x'})
		}, http.StatusOK, "\x00\xff\xfex", "application/octet-stream"},
		{"StatusAndWrite", func(c *gin.Context) {
			c.Writer.Header().Set("Content-Type", "text/csv")
			c.Status(http.StatusCreated)
			c.Writer.Write([]byte("a,b\n"))
			c.Writer.WriteString("1,2\n")
		}, http.StatusCreated, "a,b\n1,2\n", "text/csv"},
		{"StatusOnly", func(c *gin.Context) {
			c.Status(http.StatusNoContent)
		}, http.StatusNoContent, "", ""},
		{"AbortWithStatusJSON", func(c *gin.Context) {
			c.AbortWithStatusJSON(http.StatusConflict, gin.H{"error": "duplicate"})
		}, http.StatusConflict, `{"error":"duplicate"}`, "application/json; charset=utf-8"},
		{"AbortWithStatus", func(c *gin.Context) {
			c.AbortWithStatus(http.StatusForbidden)
		}, http.StatusForbidden, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var runs atomic.Int32
			r := gin.New()
			r.Use(idemgin.Middleware(core.New(newMemStore(t))))
			r.POST("/p", func(c *gin.Context) { runs.Add(1); c.Header("X-Multi", "a"); c.Writer.Header().Add("X-Multi", "b") }, tc.handler)
			body := `{"amount":1200,"currency":"EUR"}`
			first := call(r, http.MethodPost, "/p", "native-"+tc.name, body)
			again := call(r, http.MethodPost, "/p", "native-"+tc.name, body)
			if first.Code != tc.status || first.Body.String() != tc.body {
				t.Errorf("first: %d %q; want %d %q", first.Code, first.Body.String(), tc.status, tc.body)
			}
			if again.Code != first.Code || !bytes.Equal(again.Body.Bytes(), first.Body.Bytes()) {
				t.Errorf("replay: %d %q; want %d %q", again.Code, again.Body.String(), first.Code, first.Body.String())
			}
			if got := again.Header().Get("Idempotency-Replayed"); got != "true" {
				t.Errorf("replay: Idempotency-Replayed %q; want true", got)
			}
			if got := first.Header().Get("Idempotency-Replayed"); got != "" {
				t.Errorf("first: Idempotency-Replayed %q; want none", got)
			}
			for _, name := range []string{"Content-Type", "Location", "X-Multi"} {
				if f, a := first.Header().Values(name), again.Header().Values(name); strings.Join(f, "|") != strings.Join(a, "|") {
					t.Errorf("replayed %s = %q; want %q", name, a, f)
				}
			}
			if got := first.Header().Values("X-Multi"); len(got) != 2 {
				t.Errorf("X-Multi = %q; want both values", got)
			}
			if tc.ctype != "" && first.Header().Get("Content-Type") != tc.ctype {
				t.Errorf("Content-Type %q; want %q", first.Header().Get("Content-Type"), tc.ctype)
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("handler ran %d times; want 1", n)
			}
		})
	}
}

// TestAbortOnEngineAnswer checks that a refused or replayed request stops
// the chain: handlers after the middleware do not run, handlers before it
// (and their post-processing) do.
func TestAbortOnEngineAnswer(t *testing.T) {
	var after, runs atomic.Int32
	r := gin.New()
	r.Use(func(c *gin.Context) {
		c.Next()
		c.Header("X-Outer-Saw", "yes") // after the response is written: no effect, must not panic
	})
	r.POST("/p", idemgin.Middleware(core.New(newMemStore(t))), func(c *gin.Context) {
		runs.Add(1)
		c.String(http.StatusCreated, "made")
	}, func(c *gin.Context) {
		after.Add(1)
	})

	if rec := call(r, http.MethodPost, "/p", "", "{}"); rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("missing key: %d %q; want 400 problem+json", rec.Code, rec.Header().Get("Content-Type"))
	}
	if n := runs.Load() + after.Load(); n != 0 {
		t.Errorf("refused request ran %d later handlers; want 0 (c.Abort)", n)
	}
	call(r, http.MethodPost, "/p", "abort-key", "{}")
	if runs.Load() != 1 || after.Load() != 1 {
		t.Errorf("first request: runs %d, after %d; want 1, 1", runs.Load(), after.Load())
	}
	rec := call(r, http.MethodPost, "/p", "abort-key", "{}")
	if rec.Code != http.StatusCreated || rec.Body.String() != "made" || rec.Header().Get("Idempotency-Replayed") != "true" {
		t.Errorf("replay: %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	if runs.Load() != 1 || after.Load() != 1 {
		t.Errorf("replay ran later handlers: runs %d, after %d; want 1, 1 (c.Abort)", runs.Load(), after.Load())
	}
}

// TestRouteGroup guards a group; routes outside it and GETs inside it are
// not guarded, and the handler sees the whole body.
func TestRouteGroup(t *testing.T) {
	var runs atomic.Int32
	r := gin.New()
	api := r.Group("/api", idemgin.Middleware(core.New(newMemStore(t), core.ScopeBy(func(c *gin.Context) string {
		return c.GetHeader("X-Api-Key")
	}))))
	echo := func(c *gin.Context) {
		runs.Add(1)
		b, _ := io.ReadAll(c.Request.Body)
		c.JSON(http.StatusCreated, gin.H{"len": len(b), "cl": c.Request.ContentLength, "run": runs.Load()})
	}
	api.POST("/orders", echo)
	api.GET("/orders", echo)
	r.POST("/open", echo)

	if rec := call(r, http.MethodPost, "/open", "", "{}"); rec.Code != http.StatusCreated {
		t.Errorf("unguarded route: %d; want 201", rec.Code)
	}
	if rec := call(r, http.MethodGet, "/api/orders", "", ""); rec.Code != http.StatusCreated {
		t.Errorf("GET in group: %d; want 201 (unguarded method)", rec.Code)
	}
	a := call(r, http.MethodPost, "/api/orders", "grp", "hello", "X-Api-Key", "alice")
	if a.Body.String() != `{"cl":5,"len":5,"run":3}` {
		t.Errorf("handler saw %s; want the whole body and its length", a.Body.String())
	}
	b := call(r, http.MethodPost, "/api/orders", "grp", "hello", "X-Api-Key", "bob")
	if b.Header().Get("Idempotency-Replayed") != "" {
		t.Errorf("other scope got a replay; want a fresh run")
	}
	a2 := call(r, http.MethodPost, "/api/orders", "grp", "hello", "X-Api-Key", "alice")
	if a2.Body.String() != a.Body.String() || a2.Header().Get("Idempotency-Replayed") != "true" {
		t.Errorf("alice's retry: %q; want replay of %q", a2.Body.String(), a.Body.String())
	}
	if runs.Load() != 4 {
		t.Errorf("runs %d; want 4", runs.Load())
	}
}

// TestRecorderStatusBookkeeping checks that the chain sees gin's usual
// Status, Size and Written answers while writing into the buffer.
func TestRecorderStatusBookkeeping(t *testing.T) {
	r := gin.New()
	var got []any
	r.POST("/p", idemgin.Middleware(core.New(newMemStore(t))), func(c *gin.Context) {
		w := c.Writer
		got = append(got, w.Status(), w.Size(), w.Written())
		c.Status(http.StatusAccepted)
		got = append(got, w.Status(), w.Written())
		w.WriteString("abc")
		c.Status(http.StatusTeapot) // after commit: ignored, as in gin
		got = append(got, w.Status(), w.Size(), w.Written())
	})
	rec := call(r, http.MethodPost, "/p", "book", "")
	want := []any{200, -1, false, 202, false, 202, 3, true}
	if len(got) != len(want) {
		t.Fatalf("got %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bookkeeping %v; want %v", got, want)
			break
		}
	}
	if rec.Code != http.StatusAccepted || rec.Body.String() != "abc" {
		t.Errorf("response %d %q; want 202 abc", rec.Code, rec.Body.String())
	}
}

// TestWriterInterfaces pins the interfaces the capturing writer offers.
func TestWriterInterfaces(t *testing.T) {
	r := gin.New()
	r.POST("/p", idemgin.Middleware(core.New(newMemStore(t))), func(c *gin.Context) {
		var w http.ResponseWriter = c.Writer
		if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok {
			t.Error("capturing writer has no Unwrap for http.ResponseController")
		}
		if _, ok := w.(io.ReaderFrom); ok {
			t.Error("capturing writer implements io.ReaderFrom, which would bypass the buffer")
		}
		if c.Writer.Pusher() != nil {
			t.Error("capturing writer offers a Pusher, which cannot be replayed")
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through ResponseController: %v", err)
		}
		c.String(http.StatusOK, "ok")
	})
	if rec := call(r, http.MethodPost, "/p", "ifaces", ""); rec.Code != http.StatusOK || rec.Body.String() != "ok" {
		t.Errorf("response %d %q", rec.Code, rec.Body.String())
	}
}

func TestFlushIsBuffered(t *testing.T) {
	var runs atomic.Int32
	r := gin.New()
	r.POST("/s", idemgin.Middleware(core.New(newMemStore(t))), func(c *gin.Context) {
		runs.Add(1)
		c.Writer.WriteString("part1 ")
		c.Writer.Flush()
		c.Writer.WriteString("part2")
	})
	for i := 0; i < 2; i++ {
		if rec := call(r, http.MethodPost, "/s", "flush", "x"); rec.Body.String() != "part1 part2" {
			t.Errorf("request %d: body %q; want %q", i, rec.Body.String(), "part1 part2")
		}
	}
	if runs.Load() != 1 {
		t.Errorf("handler ran %d times; want 1", runs.Load())
	}
}

func TestHijackReleasesClaim(t *testing.T) {
	var runs atomic.Int32
	r := gin.New()
	// The client reads the hijacked reply before the engine has released the
	// claim, so the retry waits for the release instead of racing it.
	r.POST("/h", idemgin.Middleware(core.New(newMemStore(t), core.WithWaitForInFlight(5*time.Second))), func(c *gin.Context) {
		runs.Add(1)
		if c.GetHeader("X-Hijack") == "" {
			c.Status(http.StatusCreated)
			return
		}
		conn, rw, err := c.Writer.Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		rw.Flush()
	})
	srv := httptest.NewServer(r)
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

// TestPanicReachesRecovery checks that gin.Recovery, registered before the
// middleware, writes its 500 to the real writer and the claim is released.
func TestPanicReachesRecovery(t *testing.T) {
	var runs atomic.Int32
	r := gin.New()
	r.Use(gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, _ any) { c.AbortWithStatus(http.StatusInternalServerError) }))
	r.POST("/p", idemgin.Middleware(core.New(newMemStore(t))), func(c *gin.Context) {
		if runs.Add(1) == 1 {
			panic("boom")
		}
		c.String(http.StatusCreated, "ok")
	})
	if rec := call(r, http.MethodPost, "/p", "panic", ""); rec.Code != http.StatusInternalServerError {
		t.Errorf("panicking handler: %d; want 500 from recovery", rec.Code)
	}
	if rec := call(r, http.MethodPost, "/p", "panic", ""); rec.Code != http.StatusCreated || rec.Header().Get("Idempotency-Replayed") != "" {
		t.Errorf("retry: %d; want a fresh 201", rec.Code)
	}
}

// TestEventsNameTheArrivedRequest: a handler that rewrites the request's
// URL (which the copy it runs on shares) or replaces the request must not
// change the method and path the engine reports after it ran: the events
// name the request as it arrived, whose path the fingerprint covers.
func TestEventsNameTheArrivedRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(c *gin.Context)
	}{
		{"RewritesURL", func(c *gin.Context) { c.Request.URL.Path, c.Request.URL.RawPath = "/rewritten", "" }},
		{"ReplacesRequest", func(c *gin.Context) {
			c.Request = httptest.NewRequest(http.MethodPut, "/replaced", nil).WithContext(c.Request.Context())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			obs := core.ObserverFunc(func(_ context.Context, ev core.Event) {
				got = append(got, string(ev.Outcome)+" "+ev.Method+" "+ev.Path)
			})
			r := gin.New()
			r.Use(idemgin.Middleware(core.New(newMemStore(t), core.WithObserver(obs))))
			r.POST("/payments/:id", func(c *gin.Context) {
				tc.handler(c)
				c.String(http.StatusCreated, "ok")
			})
			if rec := call(r, http.MethodPost, "/payments/caf%C3%A9", `"arrived"`, "{}"); rec.Code != http.StatusCreated {
				t.Fatalf("status %d; want 201", rec.Code)
			}
			if want := []string{"executed POST /payments/caf%C3%A9"}; !slices.Equal(got, want) {
				t.Errorf("events %q; want %q: an event names the request as it arrived, not as the handler left it", got, want)
			}
		})
	}
}
