package idemecho

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/idemkit/idemkit/core"
	"github.com/labstack/echo/v4"
)

// Middleware returns echo middleware that guards the handler through
// engine. Use it with [echo.Echo.Use], on a group, or on a single route.
// For guarded requests a handler's error is rendered (and stored, under the
// completion policy) inside the middleware, which then returns nil; see the
// package documentation.
func Middleware(engine *core.Engine) echo.MiddlewareFunc {
	if engine == nil {
		panic("idemecho: Middleware: nil Engine")
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			x := &exchange{c: c, next: next, method: r.Method, path: r.URL.EscapedPath()}
			engine.Serve(x)
			return x.err
		}
	}
}

// Scope returns a [core.Option] that scopes keys with f, called with the
// request's [echo.Context]. Typical scopes are the authenticated user,
// tenant or API key (for example a value an auth middleware put in the
// context with c.Set).
func Scope(f func(c echo.Context) string) core.Option {
	return core.WithKeyScope(func(x core.Exchange) string {
		if c, ok := x.Native().(echo.Context); ok {
			return f(c)
		}
		return ""
	})
}

// exchange presents one echo request to the engine.
//
// Method and Path are read once, up front: the engine's lease renewer
// reports events (and so calls Method and Path) from its timer goroutine
// while the handler runs, and the handler may replace the request.
type exchange struct {
	c      echo.Context
	next   echo.HandlerFunc
	method string
	path   string
	err    error // the handler's error on an unguarded request
}

func (x *exchange) Context() context.Context    { return x.c.Request().Context() }
func (x *exchange) Method() string              { return x.method }
func (x *exchange) Path() string                { return x.path }
func (x *exchange) RawQuery() string            { return x.c.Request().URL.RawQuery }
func (x *exchange) Header(name string) []string { return x.c.Request().Header.Values(name) }
func (x *exchange) Native() any                 { return x.c }

func (x *exchange) Body() (io.Reader, int64) {
	r := x.c.Request()
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0
	}
	return r.Body, r.ContentLength
}

func (x *exchange) Next() { x.err = x.next(x.c) }

func (x *exchange) Capture(body []byte) (*core.Response, error) {
	c := x.c
	orig, origRes := c.Request(), c.Response()
	r := new(http.Request)
	*r = *orig
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	if len(body) == 0 {
		r.Body = http.NoBody
		r.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	} else {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	rec := &recorder{w: origRes, header: make(http.Header)}
	c.SetRequest(r)
	c.SetResponse(echo.NewResponse(rec, c.Echo()))
	defer func() {
		// Also on panic, so that the recovery middleware writes to the real
		// response. A request the handler replaced is kept.
		c.SetResponse(origRes)
		if c.Request() == r {
			c.SetRequest(orig)
		}
	}()
	if err := x.next(c); err != nil && !rec.hijacked {
		// Render the error now, into the capture, so that it is stored or
		// released like any response.
		c.Error(err)
	}
	if rec.hijacked {
		return nil, fmt.Errorf("idemecho: handler hijacked the connection: %w", core.ErrNotReplayable)
	}
	return rec.response(), nil
}

func (x *exchange) Send(resp *core.Response) {
	res := x.c.Response()
	h := res.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	res.WriteHeader(resp.Status)
	if len(resp.Body) > 0 {
		res.Write(resp.Body)
	}
}

// recorder is the http.ResponseWriter under the [echo.Response] the
// handler writes to while its response is captured. It buffers the status,
// headers and body; nothing reaches the client until the engine has stored
// the response.
//
// It implements exactly what it can honour: [http.Flusher] (a no-op while
// buffering, so echo's Response.Flush does not panic), [http.Hijacker]
// (the connection is handed over, the request becomes non-replayable and
// its claim is released) and Unwrap, so [http.ResponseController] reaches
// the real writer for deadlines. It does not implement io.ReaderFrom or
// http.Pusher.
type recorder struct {
	w        http.ResponseWriter
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

// Header returns the buffered response header map.
func (rec *recorder) Header() http.Header { return rec.header }

// WriteHeader records the first final status. Informational statuses
// (1xx other than 101) are sent to the client at once, as net/http does.
func (rec *recorder) WriteHeader(code int) {
	if rec.status != 0 || rec.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// Through the net/http writer: echo's Response would count a 1xx
		// as the committed final status.
		w := rec.w
		if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
			w = u.Unwrap()
		}
		dst := w.Header()
		for k, v := range rec.header {
			dst[k] = v
		}
		w.WriteHeader(code)
		for k := range rec.header {
			delete(dst, k)
		}
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("idemecho: invalid WriteHeader code %v", code))
	}
	rec.status = code
}

// Write buffers b, recording status 200 first if none was written.
func (rec *recorder) Write(b []byte) (int, error) {
	if rec.hijacked {
		return 0, http.ErrHijacked
	}
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	return rec.body.Write(b)
}

// Flush is a no-op: a captured response is sent whole once it is stored.
func (rec *recorder) Flush() {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
}

// Hijack hands the connection to the handler, if the real writer allows
// it. The response is then not replayable: the claim is released.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(rec.w).Hijack()
	if err == nil {
		rec.hijacked = true
	}
	return conn, rw, err
}

// Unwrap returns the real writer, for [http.ResponseController].
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// response returns the captured response. A handler that wrote nothing
// produced a 200 with an empty body, as net/http would send.
func (rec *recorder) response() *core.Response {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	return &core.Response{Status: status, Header: rec.header, Body: rec.body.Bytes()}
}
