package idemgin

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/internal/httpx"
)

// Middleware returns a gin handler that guards the rest of the chain through
// engine. Use it with [gin.Engine.Use], on a route group, or before the
// handlers of a single route.
func Middleware(engine *core.Engine) gin.HandlerFunc {
	if engine == nil {
		panic("idemgin: Middleware: nil Engine")
	}
	return func(c *gin.Context) {
		// Exchanges are pooled: the engine never keeps one after Serve. One
		// that a panicking handler leaves behind is left to the collector.
		x := exchanges.Get().(*exchange)
		*x = exchange{c: c, method: c.Request.Method, path: httpx.EscapedPath(c.Request.URL)}
		engine.Serve(x)
		ran := x.ran
		*x = exchange{}
		exchanges.Put(x)
		if !ran {
			// The engine answered by itself: nothing after us may run.
			c.Abort()
		}
	}
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// exchange presents one gin request to the engine.
//
// Method and Path are read once, up front, so that they name the request
// as it arrived (the path the fingerprint covers) in the events the engine
// reports after the chain has run, whatever the chain did to c.Request
// meanwhile: it may replace it (a replacement is kept) or rewrite the URL
// the copies share. The path is also escaped once per request.
type exchange struct {
	c      *gin.Context
	method string
	path   string
	ran    bool // the rest of the chain ran (Next or Capture)
}

func (x *exchange) Context() context.Context { return x.c.Request.Context() }
func (x *exchange) Method() string           { return x.method }
func (x *exchange) Path() string             { return x.path }
func (x *exchange) RawQuery() string         { return x.c.Request.URL.RawQuery }
func (x *exchange) Header(name string) []string {
	return httpx.HeaderValues(x.c.Request.Header, name)
}
func (x *exchange) Native() any { return x.c }

func (x *exchange) Body() (io.Reader, int64) {
	r := x.c.Request
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0
	}
	return r.Body, r.ContentLength
}

func (x *exchange) Next() {
	x.ran = true
	x.c.Next()
}

func (x *exchange) Capture(ctx context.Context, body []byte) (*core.Response, bool, error) {
	c := x.c
	orig, origW := c.Request, c.Writer
	r := httpx.RequestWithBody(ctx, orig, body)
	rec := newRecorder(origW)
	c.Request, c.Writer = r, rec
	defer func() {
		// Also on panic, so that the recovery handler writes to the real
		// writer. A request the chain replaced is kept.
		c.Writer = origW
		if c.Request == r {
			c.Request = orig
		}
	}()
	x.ran = true
	c.Next()
	if rec.hijacked {
		return nil, true, fmt.Errorf("idemgin: handler hijacked the connection: %w", core.ErrNotReplayable)
	}
	return rec.response(), rec.wrote, nil
}

func (x *exchange) Send(resp *core.Response) {
	httpx.WriteResponse(x.c.Writer, resp)
	// gin's WriteHeader only records the status: send it for an empty body.
	x.c.Writer.WriteHeaderNow()
}

const noWritten = -1

// recorder is the [gin.ResponseWriter] the chain writes to while its
// response is captured. It buffers status, headers and body, following
// gin's own writer: WriteHeader only records the status until the body or
// WriteHeaderNow commits it, and Status, Size and Written answer as gin's
// writer would. Nothing reaches the client until the engine has stored the
// response.
//
// The real writer is embedded to satisfy the interface. Every method of
// gin.ResponseWriter but CloseNotify is overridden below: Flush is a no-op
// while buffering, Hijack hands the connection over and makes the response
// non-replayable, Pusher returns nil (a push cannot be replayed), and
// Unwrap returns the real writer so [http.ResponseController] reaches it
// for deadlines. CloseNotify ([http.CloseNotifier], deprecated in net/http
// for the request's context) is the real writer's: the client it reports
// on is the same. It does not implement io.ReaderFrom.
type recorder struct {
	gin.ResponseWriter
	header   http.Header
	status   int
	size     int
	body     bytes.Buffer
	hijacked bool
	wrote    bool          // anything written: a status, a body byte, a flush
	resp     core.Response // what response returns, in rec's allocation
}

var _ gin.ResponseWriter = (*recorder)(nil)

func newRecorder(w gin.ResponseWriter) *recorder {
	return &recorder{ResponseWriter: w, header: make(http.Header), status: http.StatusOK, size: noWritten}
}

// Header returns the buffered response header map.
func (rec *recorder) Header() http.Header { return rec.header }

// WriteHeader records code until the response is committed, as gin does.
// Informational statuses (1xx other than 101) go to the client at once.
func (rec *recorder) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rec.informational(code)
		return
	}
	if code > 0 && !rec.Written() && !rec.hijacked {
		rec.status = code
		rec.wrote = true
	}
}

// informational sends a 1xx response with the buffered headers through the
// underlying net/http writer, when gin's writer exposes it.
func (rec *recorder) informational(code int) {
	u, ok := rec.ResponseWriter.(interface{ Unwrap() http.ResponseWriter })
	if !ok || rec.hijacked {
		return
	}
	rec.wrote = true
	w := u.Unwrap()
	dst := w.Header()
	for k, v := range rec.header {
		dst[k] = v
	}
	w.WriteHeader(code)
	for k := range rec.header {
		delete(dst, k)
	}
}

// WriteHeaderNow commits the recorded status.
func (rec *recorder) WriteHeaderNow() {
	if !rec.Written() {
		rec.size = 0
		rec.wrote = true
	}
}

// Write buffers b.
func (rec *recorder) Write(b []byte) (int, error) {
	if rec.hijacked {
		return 0, http.ErrHijacked
	}
	rec.WriteHeaderNow()
	n, err := rec.body.Write(b)
	rec.size += n
	return n, err
}

// WriteString buffers s.
func (rec *recorder) WriteString(s string) (int, error) {
	if rec.hijacked {
		return 0, http.ErrHijacked
	}
	rec.WriteHeaderNow()
	n, err := rec.body.WriteString(s)
	rec.size += n
	return n, err
}

// Status returns the recorded status (200 until another is written).
func (rec *recorder) Status() int { return rec.status }

// Size returns the number of body bytes buffered, -1 before the response
// is committed.
func (rec *recorder) Size() int { return rec.size }

// Written reports whether the response is committed.
func (rec *recorder) Written() bool { return rec.size != noWritten }

// Flush commits the status; the buffered response is sent whole once it
// is stored.
func (rec *recorder) Flush() { rec.WriteHeaderNow() }

// Hijack hands the connection to the handler, if the real writer allows
// it. The response is then not replayable: the claim is released.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if rec.size > 0 {
		return nil, nil, fmt.Errorf("idemgin: hijack after the response body was written")
	}
	conn, rw, err := rec.ResponseWriter.Hijack()
	if err == nil {
		rec.hijacked = true
	}
	return conn, rw, err
}

// Pusher returns nil: a server push cannot be captured or replayed.
func (rec *recorder) Pusher() http.Pusher { return nil }

// Unwrap returns the real writer, for [http.ResponseController].
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

func (rec *recorder) response() *core.Response {
	rec.resp = core.Response{Status: rec.status, Header: rec.header, Body: rec.body.Bytes()}
	return &rec.resp
}

// MarkApplied declares that c's request had its side effect, whatever the
// handler answers: see [core.MarkApplied]. It reports false for a request
// the middleware does not guard.
func MarkApplied(c *gin.Context) bool { return core.MarkApplied(c.Request.Context()) }

// MarkNotApplied declares that c's request had no effect, whatever the
// handler answers: see [core.MarkNotApplied].
func MarkNotApplied(c *gin.Context) bool { return core.MarkNotApplied(c.Request.Context()) }
