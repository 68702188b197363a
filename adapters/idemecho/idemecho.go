package idemecho

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/internal/httpx"
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
			// Exchanges are pooled: the engine never keeps one after Serve.
			// One that a panicking handler leaves behind is left to the
			// collector.
			x := exchanges.Get().(*exchange)
			*x = exchange{c: c, next: next, method: r.Method, path: httpx.EscapedPath(r.URL)}
			engine.Serve(x)
			err := x.err
			*x = exchange{}
			exchanges.Put(x)
			return err
		}
	}
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// exchange presents one echo request to the engine.
//
// Method and Path are read once, up front, so that they name the request
// as it arrived (the path the fingerprint covers) in the events the engine
// reports after the handler has run, whatever the handler did to the
// request meanwhile: it may replace it (a replacement is kept) or rewrite
// the URL the copies share. The path is also escaped once per request.
type exchange struct {
	c      echo.Context
	next   echo.HandlerFunc
	method string
	path   string
	err    error // the handler's error on an unguarded request
}

func (x *exchange) Context() context.Context { return x.c.Request().Context() }
func (x *exchange) Method() string           { return x.method }
func (x *exchange) Path() string             { return x.path }
func (x *exchange) RawQuery() string         { return x.c.Request().URL.RawQuery }
func (x *exchange) Header(name string) []string {
	return httpx.HeaderValues(x.c.Request().Header, name)
}
func (x *exchange) Native() any { return x.c }

func (x *exchange) Body() (io.Reader, int64) {
	r := x.c.Request()
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0
	}
	return r.Body, r.ContentLength
}

func (x *exchange) Next() { x.err = x.next(x.c) }

func (x *exchange) Capture(ctx context.Context, body []byte) (*core.Response, bool, error) {
	c := x.c
	orig, origRes := c.Request(), c.Response()
	r := httpx.RequestWithBody(ctx, orig, body)
	// The recorder writes informational responses and hijacks through the
	// net/http writer under echo's Response: echo would count a 1xx as the
	// committed final status.
	rec := httpx.NewRecorder(origRes.Writer)
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
	if err := x.next(c); err != nil && !rec.Hijacked() {
		// Render the error now, into the capture, so that it is stored or
		// released like any response.
		c.Error(err)
	}
	if rec.Hijacked() {
		return nil, true, fmt.Errorf("idemecho: handler hijacked the connection: %w", core.ErrNotReplayable)
	}
	return rec.Response(), rec.Wrote(), nil
}

func (x *exchange) Send(resp *core.Response) {
	httpx.WriteResponse(x.c.Response(), resp)
}

// MarkApplied declares that c's request had its side effect, whatever the
// handler answers: see [core.MarkApplied]. It reports false for a request
// the middleware does not guard.
func MarkApplied(c echo.Context) bool { return core.MarkApplied(c.Request().Context()) }

// MarkNotApplied declares that c's request had no effect, whatever the
// handler answers: see [core.MarkNotApplied].
func MarkNotApplied(c echo.Context) bool { return core.MarkNotApplied(c.Request().Context()) }
