package idemhttp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
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

// TestRecorderInterfaces pins the exact set of optional interfaces the
// capturing writer offers: those it can honour, and no others.
func TestRecorderInterfaces(t *testing.T) {
	var w http.ResponseWriter = &idemhttp.Recorder{}
	if _, ok := w.(http.Flusher); !ok {
		t.Error("Recorder does not implement http.Flusher")
	}
	if _, ok := w.(http.Hijacker); !ok {
		t.Error("Recorder does not implement http.Hijacker")
	}
	if _, ok := w.(interface{ Unwrap() http.ResponseWriter }); !ok {
		t.Error("Recorder has no Unwrap for http.ResponseController")
	}
	if _, ok := w.(http.Pusher); ok {
		t.Error("Recorder implements http.Pusher, which it cannot honour while buffering")
	}
	if _, ok := w.(interface{ ReadFrom(r any) }); ok {
		t.Error("Recorder implements io.ReaderFrom, which would bypass the buffer")
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

// TestWriteResponseManyFields writes a response with more header fields
// than WriteResponse keeps on the stack, plus the replay markers.
func TestWriteResponseManyFields(t *testing.T) {
	resp := &core.Response{Status: http.StatusAccepted, Header: http.Header{}, Extra: http.Header{"Idempotency-Replayed": {"true"}}, Body: []byte("ok")}
	for i := range 40 {
		resp.Header[fmt.Sprintf("X-F%02d", i)] = []string{"v", strconv.Itoa(i)}
	}
	rec := httptest.NewRecorder()
	idemhttp.WriteResponse(rec, resp)
	if rec.Code != http.StatusAccepted || rec.Body.String() != "ok" {
		t.Fatalf("got %d %q; want 202 \"ok\"", rec.Code, rec.Body)
	}
	want := resp.Header.Clone()
	want["Idempotency-Replayed"] = []string{"true"}
	if !reflect.DeepEqual(rec.Header(), want) {
		t.Errorf("header = %v; want %v", rec.Header(), want)
	}
	rec.Header()["X-F07"][0] = "changed"
	if resp.Header["X-F07"][0] != "v" {
		t.Errorf("writing into the sent header changed the response: %q", resp.Header["X-F07"])
	}
}

func TestRequestWithBody(t *testing.T) {
	orig := httptest.NewRequest(http.MethodPost, "/p?q=1", strings.NewReader("ignored"))
	orig.TransferEncoding = []string{"chunked"}
	type ctxKey struct{}
	ctx := context.WithValue(orig.Context(), ctxKey{}, "claim")
	for _, body := range []string{"", `{"amount":1}`} {
		r := idemhttp.RequestWithBody(ctx, orig, []byte(body))
		if r == orig || r.URL != orig.URL || r.Method != http.MethodPost {
			t.Fatalf("body %q: not a shallow copy of the original request", body)
		}
		if r.Context().Value(ctxKey{}) != "claim" {
			t.Errorf("body %q: the copy does not carry the given context", body)
		}
		if r.ContentLength != int64(len(body)) || r.TransferEncoding != nil {
			t.Errorf("body %q: ContentLength %d, TransferEncoding %v", body, r.ContentLength, r.TransferEncoding)
		}
		for i := 0; i < 2; i++ { // the body, then a fresh one from GetBody
			b, err := io.ReadAll(r.Body)
			if err != nil || string(b) != body {
				t.Errorf("body %q, read %d: got %q, %v", body, i, b, err)
			}
			if err := r.Body.Close(); err != nil {
				t.Errorf("body %q: Close: %v", body, err)
			}
			if r.Body, err = r.GetBody(); err != nil {
				t.Fatalf("body %q: GetBody: %v", body, err)
			}
		}
	}
	if orig.TransferEncoding == nil || orig.ContentLength != 7 {
		t.Errorf("the original request changed: %+v", orig)
	}
}

// TestEscapedPath checks the fast path against net/url: every byte alone
// and inside a path, paths with a RawPath, and paths parsed from request
// targets, must give what url.URL.EscapedPath gives.
func TestEscapedPath(t *testing.T) {
	check := func(u *url.URL) {
		t.Helper()
		if got, want := idemhttp.EscapedPath(u), u.EscapedPath(); got != want {
			t.Errorf("EscapedPath(Path %q, RawPath %q) = %q; want %q", u.Path, u.RawPath, got, want)
		}
	}
	for c := 0; c < 256; c++ {
		check(&url.URL{Path: string([]byte{byte(c)})})
		check(&url.URL{Path: "/payments/" + string([]byte{byte(c)}) + "/x"})
	}
	check(&url.URL{})
	check(&url.URL{Path: "*"})
	for _, target := range []string{"/payments", "/a%2Fb/c", "/caf%C3%A9", "/a b", "/a;b=c,d", "/x?y=1", "/%7Euser", "/a%3Fb"} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("%q: %v", target, err)
		}
		check(u)
	}
}

// TestHeaderValues checks HeaderValues against http.Header.Values for the
// key header and for other names, canonical or not.
func TestHeaderValues(t *testing.T) {
	h := http.Header{}
	h.Add(core.KeyHeader, `"k"`)
	h.Add("X-Tenant", "a")
	h.Add("X-Tenant", "b")
	h["x-raw"] = []string{"not canonical"}
	for _, name := range []string{core.KeyHeader, "idempotency-key", "X-Tenant", "x-tenant", "x-raw", "X-Raw", "Missing"} {
		if got, want := idemhttp.HeaderValues(h, name), h.Values(name); !reflect.DeepEqual(got, want) {
			t.Errorf("HeaderValues(%q) = %q; want %q", name, got, want)
		}
	}
}
