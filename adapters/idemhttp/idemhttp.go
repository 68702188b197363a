package idemhttp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"

	"github.com/idemkit/idemkit/core"
)

// Middleware returns net/http middleware that guards every request through
// engine. Use it around a mux, a route or a single handler.
func Middleware(engine *core.Engine) func(http.Handler) http.Handler {
	if engine == nil {
		panic("idemhttp: Middleware: nil Engine")
	}
	return func(next http.Handler) http.Handler {
		return &handler{engine: engine, next: next}
	}
}

// Scope returns a [core.Option] that scopes keys with f, called with the
// request. Typical scopes are the authenticated user, tenant or API key.
func Scope(f func(r *http.Request) string) core.Option {
	return core.WithKeyScope(func(x core.Exchange) string {
		if r, ok := x.Native().(*http.Request); ok {
			return f(r)
		}
		return ""
	})
}

// Skip returns a [core.Option] that leaves the requests for which f
// returns true unguarded ([core.WithSkip]): they pass straight to the
// handler, as with echo's Skipper or fiber's Next. f is called with the request's *http.Request.
func Skip(f func(r *http.Request) bool) core.Option {
	return core.WithSkip(func(x core.Exchange) bool {
		if r, ok := x.Native().(*http.Request); ok {
			return f(r)
		}
		return false
	})
}

// RouteOptions returns a [core.Option] that chooses the TTL and the key
// requirement of each request with f, called with the request's *http.Request
// ([core.WithRouteOptions]): one engine serves routes with different
// settings.
func RouteOptions(f func(r *http.Request) core.RouteOptions) core.Option {
	return core.WithRouteOptions(func(x core.Exchange) core.RouteOptions {
		if r, ok := x.Native().(*http.Request); ok {
			return f(r)
		}
		return core.RouteOptions{}
	})
}

type handler struct {
	engine *core.Engine
	next   http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Exchanges are pooled: the engine never keeps one after Serve. One
	// that a panicking handler leaves behind is left to the collector.
	x := exchanges.Get().(*exchange)
	*x = exchange{w: w, r: r, next: h.next}
	h.engine.Serve(x)
	*x = exchange{}
	exchanges.Put(x)
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// exchange presents one net/http request to the engine.
type exchange struct {
	w    http.ResponseWriter
	r    *http.Request
	next http.Handler
}

func (x *exchange) Context() context.Context    { return x.r.Context() }
func (x *exchange) Method() string              { return x.r.Method }
func (x *exchange) Path() string                { return EscapedPath(x.r.URL) }
func (x *exchange) RawQuery() string            { return x.r.URL.RawQuery }
func (x *exchange) Header(name string) []string { return HeaderValues(x.r.Header, name) }
func (x *exchange) Native() any                 { return x.r }
func (x *exchange) Body() (io.Reader, int64) {
	if x.r.Body == nil || x.r.Body == http.NoBody {
		return nil, 0
	}
	return x.r.Body, x.r.ContentLength
}

func (x *exchange) Next() { x.next.ServeHTTP(x.w, x.r) }

func (x *exchange) Capture(ctx context.Context, body []byte) (*core.Response, bool, error) {
	// One allocation holds the recorder, the captured response and the
	// reader of the body the handler sees.
	c := new(capture)
	c.rec.Reset(x.w)
	x.next.ServeHTTP(&c.rec, c.req.init(ctx, x.r, body))
	if c.rec.Hijacked() {
		return nil, true, fmt.Errorf("idemhttp: handler hijacked the connection: %w", core.ErrNotReplayable)
	}
	return c.rec.Response(), c.rec.Wrote(), nil
}

// capture is what Capture needs for one handler run.
type capture struct {
	rec Recorder
	req bodyRequest
}

// RequestWithBody returns a shallow copy of r with context ctx whose body
// is body, with the matching ContentLength and GetBody and no transfer
// encoding: the request a guarded handler sees after the engine has read
// the original body. Adapters of net/http-based frameworks share it.
func RequestWithBody(ctx context.Context, r *http.Request, body []byte) *http.Request {
	return new(bodyRequest).init(ctx, r, body)
}

// bodyRequest is the reader of a request copy's body.
type bodyRequest struct {
	body bytesBody
}

// init returns a shallow copy of r with context ctx whose body is body.
// GetBody's closure is the one allocation besides the copy for a
// non-empty body.
func (br *bodyRequest) init(ctx context.Context, r *http.Request, body []byte) *http.Request {
	c := r.WithContext(ctx)
	c.ContentLength = int64(len(body))
	c.TransferEncoding = nil
	if len(body) == 0 {
		c.Body = http.NoBody
		c.GetBody = noBody
	} else {
		br.body.Reset(body)
		c.Body = &br.body
		c.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return c
}

func noBody() (io.ReadCloser, error) { return http.NoBody, nil }

// bytesBody is a request body over a byte slice.
type bytesBody struct{ bytes.Reader }

func (*bytesBody) Close() error { return nil }

func (x *exchange) Send(resp *core.Response) { WriteResponse(x.w, resp) }

// WriteResponse writes resp to w: every header value of resp.Header, then
// of resp.Extra (the replay markers), the status, the body. It only reads
// resp, which the engine or the store may share between requests: the
// value slices it puts into w's header are copies (one block per
// response), so whatever an outer middleware does to w.Header() — Add,
// or writing into a value slice — never reaches another request. Adapters
// of net/http-based frameworks share it.
func WriteResponse(w http.ResponseWriter, resp *core.Response) {
	// One pass over each map, into a list on the stack (a response with
	// more than 16 fields spills it to the heap): iterating a map costs
	// more than the copies.
	var small [16]headerField
	fields := small[:0]
	n := 0
	for k, v := range resp.Header {
		fields = append(fields, headerField{k, v})
		n += len(v)
	}
	for k, v := range resp.Extra {
		fields = append(fields, headerField{k, v})
		n += len(v)
	}
	slab := make([]string, n)
	h := w.Header()
	for _, f := range fields {
		m := copy(slab, f.vals)
		h[f.name], slab = slab[:m:m], slab[m:]
	}
	w.WriteHeader(resp.Status)
	if len(resp.Body) > 0 {
		w.Write(resp.Body)
	}
}

type headerField struct {
	name string
	vals []string
}

// Recorder is the http.ResponseWriter the handler writes to while its
// response is captured. It buffers the status, headers and body; nothing
// reaches the client until the engine has stored the response.
//
// It implements exactly what it can honour: [http.Flusher] (a no-op while
// buffering: the whole response is sent after the handler returns),
// [http.Hijacker] (the connection is handed over, the request becomes
// non-replayable and its claim is released) and Unwrap, so
// [http.ResponseController] reaches the underlying writer for deadlines.
// It does not implement io.ReaderFrom or http.Pusher.
type Recorder struct {
	w        http.ResponseWriter
	header   http.Header
	wrote    bool // anything written: a status, a body byte, a flush
	status   int
	body     bytes.Buffer
	hijacked bool
	resp     core.Response // what Response returns, in rec's own allocation
}

// NewRecorder returns a Recorder for a handler whose response would go to
// w, the real writer: informational responses and hijacking reach w.
func NewRecorder(w http.ResponseWriter) *Recorder {
	rec := new(Recorder)
	rec.Reset(w)
	return rec
}

// Reset discards what rec recorded and readies it, like [NewRecorder], for
// a handler whose response would go to w. It lets an adapter keep a
// Recorder inside a larger allocation (a zero Recorder is not ready until
// Reset). Reset zeroes the response that Response returned: call it only
// when nothing uses that response any more.
func (rec *Recorder) Reset(w http.ResponseWriter) {
	*rec = Recorder{w: w, header: make(http.Header)}
}

// Wrote reports whether the handler wrote anything: a status (an
// informational one included), a body byte, a flush. Headers set without
// a write do not count.
func (rec *Recorder) Wrote() bool { return rec.wrote }

// Hijacked reports whether the handler took over the connection.
func (rec *Recorder) Hijacked() bool { return rec.hijacked }

// Header returns the buffered response header map.
func (rec *Recorder) Header() http.Header { return rec.header }

// WriteHeader records the first final status. Informational statuses
// (1xx other than 101) are sent to the client at once, as net/http does.
func (rec *Recorder) WriteHeader(code int) {
	if rec.status != 0 || rec.hijacked {
		return
	}
	rec.wrote = true
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		dst := rec.w.Header()
		for k, v := range rec.header {
			dst[k] = v
		}
		rec.w.WriteHeader(code)
		for k := range rec.header {
			delete(dst, k)
		}
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("idemhttp: invalid WriteHeader code %v", code))
	}
	rec.status = code
}

// Write buffers b, recording status 200 first if none was written.
func (rec *Recorder) Write(b []byte) (int, error) {
	if rec.hijacked {
		return 0, http.ErrHijacked
	}
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	return rec.body.Write(b)
}

// WriteString buffers s like Write.
func (rec *Recorder) WriteString(s string) (int, error) {
	if rec.hijacked {
		return 0, http.ErrHijacked
	}
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	return rec.body.WriteString(s)
}

// Flush is a no-op: a captured response is sent whole once it is stored.
func (rec *Recorder) Flush() {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
}

// Hijack hands the connection to the handler, if the underlying writer
// allows it. The response is then not replayable: the claim is released.
func (rec *Recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(rec.w).Hijack()
	if err == nil {
		rec.hijacked = true
	}
	return conn, rw, err
}

// Unwrap returns the underlying writer, for [http.ResponseController].
func (rec *Recorder) Unwrap() http.ResponseWriter { return rec.w }

// Response returns the captured response. A handler that wrote nothing
// produced a 200 with an empty body, as net/http would send. The response
// lives in rec: every call returns the same pointer, refreshed, until Reset.
func (rec *Recorder) Response() *core.Response {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	rec.resp = core.Response{Status: status, Header: rec.header, Body: rec.body.Bytes()}
	return &rec.resp
}

// EscapedPath returns u.EscapedPath(), the path an adapter reports to the
// engine. A request path has, almost always, no RawPath and nothing to
// escape; EscapedPath then returns u.Path after one table lookup per byte
// instead of net/url's escaping pass.
func EscapedPath(u *url.URL) string {
	if u.RawPath == "" && plainPath(u.Path) {
		return u.Path
	}
	return u.EscapedPath()
}

func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if !plainPathBytes[p[i]] {
			return false
		}
	}
	return true
}

// plainPathBytes are the bytes net/url leaves unescaped in a path: the
// unreserved characters of RFC 3986 and the reserved ones but '?'.
var plainPathBytes = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~$&+,/:;=@") {
		t[c] = true
	}
	return t
}()

// HeaderValues returns h.Values(name), the values an adapter reports to
// the engine. The engine asks for [core.KeyHeader] on every request; that
// name is canonical already, so it is looked up directly, without
// net/textproto canonicalising it again.
func HeaderValues(h http.Header, name string) []string {
	if name == core.KeyHeader {
		return h[core.KeyHeader]
	}
	return h.Values(name)
}
