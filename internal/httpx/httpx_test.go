package httpx_test

import (
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

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/internal/httpx"
)

// TestRecorderInterfaces pins the exact set of optional interfaces the
// capturing writer offers: those it can honour, and no others.
func TestRecorderInterfaces(t *testing.T) {
	var w http.ResponseWriter = &httpx.Recorder{}
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
	if _, ok := w.(io.ReaderFrom); ok {
		t.Error("Recorder implements io.ReaderFrom, which would bypass the buffer")
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
	httpx.WriteResponse(rec, resp)
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
		r := httpx.RequestWithBody(ctx, orig, []byte(body))
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
		if got, want := httpx.EscapedPath(u), u.EscapedPath(); got != want {
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
		if got, want := httpx.HeaderValues(h, name), h.Values(name); !reflect.DeepEqual(got, want) {
			t.Errorf("HeaderValues(%q) = %q; want %q", name, got, want)
		}
	}
}
