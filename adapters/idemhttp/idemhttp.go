package idemhttp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/internal/httpx"
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
func (x *exchange) Path() string                { return httpx.EscapedPath(x.r.URL) }
func (x *exchange) RawQuery() string            { return x.r.URL.RawQuery }
func (x *exchange) Header(name string) []string { return httpx.HeaderValues(x.r.Header, name) }
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
	x.next.ServeHTTP(&c.rec, c.req.Init(ctx, x.r, body))
	if c.rec.Hijacked() {
		return nil, true, fmt.Errorf("idemhttp: handler hijacked the connection: %w", core.ErrNotReplayable)
	}
	return c.rec.Response(), c.rec.Wrote(), nil
}

// capture is what Capture needs for one handler run.
type capture struct {
	rec httpx.Recorder
	req httpx.BodyRequest
}

func (x *exchange) Send(resp *core.Response) { httpx.WriteResponse(x.w, resp) }
