package idemhttp_test

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func newMemStore(t *testing.T) core.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func newServer(t *testing.T, engine *core.Engine, app http.Handler) string {
	srv := httptest.NewServer(idemhttp.Middleware(engine)(app))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestConformance(t *testing.T) {
	conformance.TestMiddleware(t, conformance.Harness{NewStore: newMemStore, NewServer: newServer})
}

// TestWriterInterfaces pins the exact set of optional interfaces the writer
// of a guarded handler offers (the package documentation lists them):
// those it can honour while buffering, and no others.
func TestWriterInterfaces(t *testing.T) {
	engine := core.New(newMemStore(t))
	var got []string
	h := idemhttp.Middleware(engine)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); ok {
			got = append(got, "Flusher")
		}
		if _, ok := w.(http.Hijacker); ok {
			got = append(got, "Hijacker")
		}
		if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
			got = append(got, "Unwrap")
		}
		if _, ok := w.(http.Pusher); ok {
			got = append(got, "Pusher")
		}
		if _, ok := w.(io.ReaderFrom); ok {
			got = append(got, "ReaderFrom")
		}
		w.WriteHeader(http.StatusCreated)
	}))
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
	req.Header.Set(core.KeyHeader, `"writer-key"`)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d; want 201 (the request was not served)", rec.Code)
	}
	if g, want := strings.Join(got, ","), "Flusher,Hijacker,Unwrap"; g != want {
		t.Errorf("a guarded handler's writer implements %s; want %s (Pusher cannot be replayed, ReaderFrom would bypass the buffer)", g, want)
	}
}

func TestFlushIsBuffered(t *testing.T) {
	engine := core.New(newMemStore(t))
	var runs int
	h := idemhttp.Middleware(engine)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs++
		w.Write([]byte("part1 "))
		http.NewResponseController(w).Flush()
		w.Write([]byte("part2"))
	}))
	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/stream", strings.NewReader("x"))
		req.Header.Set("Idempotency-Key", `"flush-key"`)
		h.ServeHTTP(rec, req)
		if got := rec.Body.String(); got != "part1 part2" {
			t.Errorf("request %d: body %q; want %q", i, got, "part1 part2")
		}
	}
	if runs != 1 {
		t.Errorf("handler ran %d times; want 1", runs)
	}
}

func TestHijackReleasesClaim(t *testing.T) {
	// The client reads the hijacked reply before the engine has released the
	// claim, so the retry waits for the release instead of racing it.
	engine := core.New(newMemStore(t), core.WithWaitForInFlight(5*time.Second))
	var runs int
	srv := httptest.NewServer(idemhttp.Middleware(engine)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs++
		if r.Header.Get("X-Hijack") == "" {
			w.WriteHeader(http.StatusCreated)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		rw.Flush()
	})))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("x"))
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

	req, _ = http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("x"))
	req.Header.Set("Idempotency-Key", "hijack-key")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotency-Replayed") != "" {
		t.Errorf("retry after hijack: status %d replayed %q; want a fresh 201 (a hijacked response is not replayable)", resp.StatusCode, resp.Header.Get("Idempotency-Replayed"))
	}
	if runs != 2 {
		t.Errorf("handler ran %d times; want 2", runs)
	}
}

// TestSharedReplayHeaderIsolation replays one record concurrently under an
// outer middleware that appends to a header field the handler built with
// Add (so its value slice has spare capacity) and overwrites a value in
// place. The stored response is shared by every replay: each request must
// still see only its own values, the record must stay as stored, and the
// race detector must find nothing.
func TestSharedReplayHeaderIsolation(t *testing.T) {
	engine := core.New(newMemStore(t))
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range []string{"a", "b", "c"} {
			w.Header().Add("X-V", v) // len 3, cap 4
		}
		w.WriteHeader(http.StatusCreated)
	})
	guarded := idemhttp.Middleware(engine)(app)
	errs := make(chan string, 64)
	report := func(e string) {
		select {
		case errs <- e:
		default: // enough reported
		}
	}
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guarded.ServeHTTP(w, r)
		id := r.Header.Get("X-Id")
		if got := strings.Join(w.Header()["X-V"], ","); got != "a,b,c" {
			report(got + " before the outer middleware's changes; want a,b,c")
		}
		w.Header()["X-V"][1] = id // in place
		w.Header().Add("X-V", id)
		if got := strings.Join(w.Header()["X-V"], ","); got != "a,"+id+",c,"+id {
			report(got + "; want a," + id + ",c," + id)
		}
	})
	do := func(id string) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
		req.Header.Set(core.KeyHeader, `"shared"`)
		req.Header.Set("X-Id", id)
		outer.ServeHTTP(httptest.NewRecorder(), req)
	}
	do("first")
	done := make(chan struct{})
	for g := range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 200 {
				do(strings.Repeat("x", g+1) + string(rune('0'+i%10)))
			}
		}()
	}
	<-done
	<-done
	close(errs)
	for e := range errs {
		t.Errorf("X-V: %s", e)
	}
}
