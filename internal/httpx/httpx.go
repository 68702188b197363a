package httpx

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/idemkit/idemkit/core"
)

// RequestWithBody returns a shallow copy of r with context ctx whose body
// is body, with the matching ContentLength and GetBody and no transfer
// encoding: the request a guarded handler sees after the engine has read
// the original body.
func RequestWithBody(ctx context.Context, r *http.Request, body []byte) *http.Request {
	return new(BodyRequest).Init(ctx, r, body)
}

// BodyRequest holds the reader of a request copy's body, so that an
// adapter can keep it inside a larger allocation (with a [Recorder], say)
// instead of allocating it in [RequestWithBody].
type BodyRequest struct {
	body bytesBody
}

// Init returns what [RequestWithBody] returns, with br as the body's
// reader: a shallow copy of r with context ctx whose body is body. GetBody's
// closure is the one allocation besides the copy for a non-empty body. br
// serves one request copy at a time.
func (br *BodyRequest) Init(ctx context.Context, r *http.Request, body []byte) *http.Request {
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

// WriteResponse writes resp to w: every header value of resp.Header, then
// of resp.Extra (the replay markers), the status, the body. It only reads
// resp, which the engine or the store may share between requests: the
// value slices it puts into w's header are copies (one block per
// response), so whatever an outer middleware does to w.Header() — Add,
// or writing into a value slice — never reaches another request.
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
		// net/http's own words, so that a handler fails alike captured or not.
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
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
