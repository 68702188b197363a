package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/idempotency"
	"github.com/labstack/echo/v4"
	"github.com/valyala/fasthttp"

	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/adapters/idemecho"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/adapters/idemgin"
	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// The adapter benchmarks run one JSON handler (a payment in, a small
// receipt out) in-process on every framework, bare and behind its idemkit
// adapter over memstore:
//
//	BenchmarkAdapter/<framework>/Static       no middleware, a handler that
//	                                          ignores the body and writes a
//	                                          constant: the framework's floor
//	BenchmarkAdapter/<framework>/Bare         no middleware, no key
//	BenchmarkAdapter/<framework>/NewKey       a fresh key on every request
//	BenchmarkAdapter/<framework>/Replay       one completed key, replayed
//	BenchmarkAdapter/<framework>/InFlight409  a key held by a running request
//	BenchmarkAdapter/<framework>/Mismatch422  a completed key, another body
//
// and fiber's own middleware/idempotency (memory storage) as the peer:
// BenchmarkAdapter/fiber-peer/{NewKey,Replay}. The net/http frameworks are
// driven through ServeHTTP with an httptest.ResponseRecorder per request;
// fiber through app.Handler() on one reused fasthttp.RequestCtx, as its
// server does. The middleware's new-key overhead is NewKey minus Bare of
// the same framework; a replay's cost (the handler does not run) is Replay
// minus Static.

var (
	payBody   = []byte(`{"amount":1200,"currency":"EUR"}`)
	otherBody = []byte(`{"amount":1300,"currency":"EUR"}`)
)

type payment struct {
	Amount   int    `json:"amount"`
	Currency string `json:"currency"`
}

type receipt struct {
	ID       string `json:"id"`
	Amount   int    `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

// holdHeader makes the handler block until the fixture releases it: the
// request that holds a key for the InFlight409 case.
const holdHeader = "X-Bench-Hold"

// fixture is one benchmark invocation's handler state.
type fixture struct {
	static  bool          // serve staticBody, do not read the request
	started chan struct{} // closed when the holding request entered the handler
	release chan struct{} // closed to let it finish
}

var staticBody = []byte(`{"id":"pay_1","status":"accepted"}`)

func newFixture() *fixture {
	return &fixture{started: make(chan struct{}), release: make(chan struct{})}
}

func (f *fixture) hold() {
	close(f.started)
	<-f.release
}

// client sends the benchmark request to one app and returns the status.
type client interface {
	do(key string, body []byte) int
}

// framework builds the app (bare when g is nil; with the static handler
// when f.static) and returns a maker of clients for it; a holding client
// sends holdHeader.
type framework struct {
	name  string
	build func(g guard, f *fixture) func(hold bool) client
}

// guard is the middleware an app is built with, in each framework's own
// idiom: idemkit's adapters over an engine (adapterGuard) or the floor
// that BenchmarkAdapterFloor measures (adapterFloor, httpfloor_test.go).
type guard interface {
	nethttp() func(http.Handler) http.Handler
	chi() func(http.Handler) http.Handler
	gin() gin.HandlerFunc
	echo() echo.MiddlewareFunc
	fiber() fiber.Handler
}

// adapterGuard guards with idemkit's adapters over eng.
type adapterGuard struct{ eng *core.Engine }

func (g adapterGuard) nethttp() func(http.Handler) http.Handler { return idemhttp.Middleware(g.eng) }
func (g adapterGuard) chi() func(http.Handler) http.Handler     { return idemchi.Middleware(g.eng) }
func (g adapterGuard) gin() gin.HandlerFunc                     { return idemgin.Middleware(g.eng) }
func (g adapterGuard) echo() echo.MiddlewareFunc                { return idemecho.Middleware(g.eng) }
func (g adapterGuard) fiber() fiber.Handler                     { return idemfiber.Middleware(g.eng) }

// httpClient drives an http.Handler through one reused request.
type httpClient struct {
	h    http.Handler
	req  *http.Request
	rd   *bytes.Reader
	body io.ReadCloser
	kv   []string
}

func newHTTPClient(h http.Handler, hold bool) client {
	req := httptest.NewRequest(http.MethodPost, "/payments", nil)
	req.Header.Set("Content-Type", "application/json")
	if hold {
		req.Header.Set(holdHeader, "1")
	}
	rd := bytes.NewReader(nil)
	return &httpClient{h: h, req: req, rd: rd, body: io.NopCloser(rd), kv: make([]string, 1)}
}

func (c *httpClient) do(key string, body []byte) int {
	if key != "" {
		c.kv[0] = key
		c.req.Header[core.KeyHeader] = c.kv
	}
	c.rd.Reset(body)
	c.req.Body, c.req.ContentLength = c.body, int64(len(body))
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, c.req)
	return rec.Code
}

// fiberClient drives a fiber app through one reused fasthttp.RequestCtx.
type fiberClient struct {
	h      fasthttp.RequestHandler
	ctx    *fasthttp.RequestCtx
	header string
}

func newFiberClient(app *fiber.App, header string, hold bool) client {
	ctx := new(fasthttp.RequestCtx)
	ctx.Request.Header.SetMethod(fiber.MethodPost)
	ctx.Request.SetRequestURI("/payments")
	ctx.Request.Header.SetContentType(fiber.MIMEApplicationJSON)
	if hold {
		ctx.Request.Header.Set(holdHeader, "1")
	}
	return &fiberClient{h: app.Handler(), ctx: ctx, header: header}
}

func (c *fiberClient) do(key string, body []byte) int {
	if key != "" {
		c.ctx.Request.Header.Set(c.header, key)
	}
	c.ctx.Request.SetBody(body)
	c.ctx.Response.Reset()
	c.h(c.ctx)
	return c.ctx.Response.StatusCode()
}

// The handlers: decode the payment, answer 201 with a receipt, each in its
// framework's own idiom.

func httpHandler(f *fixture) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(holdHeader) != "" {
			f.hold()
		}
		if f.static {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write(staticBody)
			return
		}
		var p payment
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/payments/pay_1")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(receipt{ID: "pay_1", Amount: p.Amount, Currency: p.Currency, Status: "accepted"})
	}
}

func ginHandler(f *fixture) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.GetHeader(holdHeader) != "" {
			f.hold()
		}
		if f.static {
			c.Data(http.StatusCreated, "application/json", staticBody)
			return
		}
		var p payment
		if err := c.ShouldBindJSON(&p); err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		c.Header("Location", "/payments/pay_1")
		c.JSON(http.StatusCreated, receipt{ID: "pay_1", Amount: p.Amount, Currency: p.Currency, Status: "accepted"})
	}
}

func echoHandler(f *fixture) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Header.Get(holdHeader) != "" {
			f.hold()
		}
		if f.static {
			return c.Blob(http.StatusCreated, "application/json", staticBody)
		}
		var p payment
		if err := c.Bind(&p); err != nil {
			return err
		}
		c.Response().Header().Set("Location", "/payments/pay_1")
		return c.JSON(http.StatusCreated, receipt{ID: "pay_1", Amount: p.Amount, Currency: p.Currency, Status: "accepted"})
	}
}

func fiberHandler(f *fixture) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if c.Get(holdHeader) != "" {
			f.hold()
		}
		if f.static {
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
			return c.Status(fiber.StatusCreated).Send(staticBody)
		}
		var p payment
		if err := c.BodyParser(&p); err != nil {
			return c.Status(fiber.StatusBadRequest).SendString(err.Error())
		}
		c.Location("/payments/pay_1")
		return c.Status(fiber.StatusCreated).JSON(receipt{ID: "pay_1", Amount: p.Amount, Currency: p.Currency, Status: "accepted"})
	}
}

func newFiberApp(mw fiber.Handler, f *fixture) *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	if mw != nil {
		app.Post("/payments", mw, fiberHandler(f))
	} else {
		app.Post("/payments", fiberHandler(f))
	}
	return app
}

var frameworks = []framework{
	{"nethttp", func(g guard, f *fixture) func(bool) client {
		mux := http.NewServeMux()
		var h http.Handler = httpHandler(f)
		if g != nil {
			h = g.nethttp()(h)
		}
		mux.Handle("POST /payments", h)
		return func(hold bool) client { return newHTTPClient(mux, hold) }
	}},
	{"chi", func(g guard, f *fixture) func(bool) client {
		r := chi.NewRouter()
		if g != nil {
			r.Use(g.chi())
		}
		r.Post("/payments", httpHandler(f))
		return func(hold bool) client { return newHTTPClient(r, hold) }
	}},
	{"gin", func(g guard, f *fixture) func(bool) client {
		r := gin.New()
		if g != nil {
			r.POST("/payments", g.gin(), ginHandler(f))
		} else {
			r.POST("/payments", ginHandler(f))
		}
		return func(hold bool) client { return newHTTPClient(r, hold) }
	}},
	{"echo", func(g guard, f *fixture) func(bool) client {
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		if g != nil {
			e.POST("/payments", echoHandler(f), g.echo())
		} else {
			e.POST("/payments", echoHandler(f))
		}
		return func(hold bool) client { return newHTTPClient(e, hold) }
	}},
	{"fiber", func(g guard, f *fixture) func(bool) client {
		var mw fiber.Handler
		if g != nil {
			mw = g.fiber()
		}
		app := newFiberApp(mw, f)
		return func(hold bool) client { return newFiberClient(app, core.KeyHeader, hold) }
	}},
}

func init() { gin.SetMode(gin.ReleaseMode) }

// benchKeys returns n distinct 36-character keys (the length fiber's peer
// middleware insists on) unique to this invocation.
func benchKeys(n int) []string {
	run := time.Now().UnixNano() % 1e12
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08x-0000-4000-8000-%012d", i, run)
	}
	return keys
}

const oneKey = "00000000-0000-4000-8000-000000000001"

// heldKey is the key whose first request a refusal benchmark or test holds
// in the handler, so that its retries get 409.
const heldKey = "00000000-0000-4000-8000-000000000002"

// loop runs c.do b.N times with the key of round i and checks the status.
func loop(b *testing.B, c client, want int, key func(i int) string, body []byte) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got := c.do(key(i), body); got != want {
			b.Fatalf("round %d: status %d; want %d", i, got, want)
		}
	}
	b.StopTimer()
}

// primed sends c's first request for oneKey, which completes it, and
// returns c.
func primed(b *testing.B, c client) client {
	b.Helper()
	if got := c.do(oneKey, payBody); got != http.StatusCreated {
		b.Fatalf("first request: status %d; want 201", got)
	}
	return c
}

func BenchmarkAdapter(b *testing.B) {
	for _, fw := range frameworks {
		b.Run(fw.name, func(b *testing.B) {
			// engine returns our adapter over a memstore sized for b.N keys.
			engine := func(b *testing.B) guard {
				s := memstore.New(memstore.WithMaxEntries(b.N + 1024))
				b.Cleanup(func() { s.Close() })
				return adapterGuard{core.New(s)}
			}
			b.Run("Static", func(b *testing.B) {
				c := fw.build(nil, &fixture{static: true})(false)
				loop(b, c, http.StatusCreated, func(int) string { return "" }, payBody)
			})
			b.Run("Bare", func(b *testing.B) {
				c := fw.build(nil, newFixture())(false)
				loop(b, c, http.StatusCreated, func(int) string { return "" }, payBody)
			})
			b.Run("NewKey", func(b *testing.B) {
				c := fw.build(engine(b), newFixture())(false)
				keys := benchKeys(b.N)
				loop(b, c, http.StatusCreated, func(i int) string { return keys[i] }, payBody)
			})
			b.Run("Replay", func(b *testing.B) {
				c := primed(b, fw.build(engine(b), newFixture())(false))
				loop(b, c, http.StatusCreated, func(int) string { return oneKey }, payBody)
			})
			b.Run("InFlight409", func(b *testing.B) {
				f := newFixture()
				mk := fw.build(engine(b), f)
				done := make(chan int, 1)
				go func() { done <- mk(true).do(oneKey, payBody) }()
				<-f.started
				loop(b, mk(false), http.StatusConflict, func(int) string { return oneKey }, payBody)
				close(f.release)
				if got := <-done; got != http.StatusCreated {
					b.Fatalf("holding request: status %d; want 201", got)
				}
			})
			b.Run("Mismatch422", func(b *testing.B) {
				c := primed(b, fw.build(engine(b), newFixture())(false))
				loop(b, c, http.StatusUnprocessableEntity, func(int) string { return oneKey }, otherBody)
			})
		})
	}
	// The peer: fiber v2's middleware/idempotency with its memory storage
	// (header X-Idempotency-Key), on the same fiber handler. Its Bare is
	// fiber/Bare above.
	b.Run("fiber-peer", func(b *testing.B) {
		peer := func() client {
			return newFiberClient(newFiberApp(idempotency.New(), newFixture()), "X-Idempotency-Key", false)
		}
		b.Run("NewKey", func(b *testing.B) {
			c := peer()
			keys := benchKeys(b.N)
			loop(b, c, http.StatusCreated, func(i int) string { return keys[i] }, payBody)
		})
		b.Run("Replay", func(b *testing.B) {
			c := primed(b, peer())
			loop(b, c, http.StatusCreated, func(int) string { return oneKey }, payBody)
		})
	})
}

// BenchmarkAdapterPair judges the adapter budget lines the way
// BenchmarkStorePair judges the store lines: in one benchmark, in short
// alternating slices, so that ours and the peer meet the same machine. For
// each framework it cycles through eight cases — our NewKey, the
// framework's Bare, our Replay, its Static, the peer's NewKey, fiber's
// Bare, the peer's Replay, fiber's Static — each for 2–4 ms (drawn at
// random, starting at another case every cycle), and takes per cycle our
// new-key overhead (NewKey − Bare), the peer's, our replay cost (Replay −
// Static) and the peer's. It reports the ratios of their medians over
// cycles as newkey-x-peer and replay-x-peer (≤ 1 meets the line). Short
// slices keep a cycle within about 30 ms, so that a burst of the host's
// other work falls on ours and the peer's alike: over runs of 2 s, fiber's
// new-key ratio ranged 0.95–1.50 with 10–20 ms slices and per-cycle
// ratios, and 1.19–1.51 with 2–4 ms slices and ratios of medians, most
// runs within 1.35–1.44. b.N counts the operations of each case at least.
func BenchmarkAdapterPair(b *testing.B) {
	fiberBare := newFiberClient(newFiberApp(nil, newFixture()), "", false)
	fiberStatic := newFiberClient(newFiberApp(nil, &fixture{static: true}), "", false)
	for _, fw := range frameworks {
		b.Run(fw.name, func(b *testing.B) {
			// Both stores start empty at every run of this function (the
			// framework calls it again for each b.N it tries), so that
			// neither side carries a larger store, and its collector
			// work, than the other.
			s := memstore.New(memstore.WithMaxEntries(1 << 21))
			b.Cleanup(func() { s.Close() })
			ours := primed(b, fw.build(adapterGuard{core.New(s)}, newFixture())(false))
			peer := primed(b, newFiberClient(newFiberApp(idempotency.New(), newFixture()), "X-Idempotency-Key", false))
			bare := fw.build(nil, newFixture())(false)
			static := fw.build(nil, &fixture{static: true})(false)
			nk, rp := pairOverheads(b, [2][3]client{{ours, bare, static}, {peer, fiberBare, fiberStatic}})
			b.ReportMetric(nk, "newkey-x-peer")
			b.ReportMetric(rp, "replay-x-peer")
		})
	}
}

// pairOverheads cycles through the eight cases of BenchmarkAdapterPair
// for two sides, each a guarded client, its bare handler and its static
// handler, and returns the ratios of side 0's median new-key overhead and
// median replay cost to side 1's.
func pairOverheads(b *testing.B, sides [2][3]client) (newkey, replay float64) {
	b.Helper()
	keys := newKeySource()
	none := func() string { return "" }
	one := func() string { return oneKey }
	var cases []timedCase
	for _, sd := range sides {
		cases = append(cases,
			timedCase{c: sd[0], key: keys.next, fresh: true}, timedCase{c: sd[1], key: none},
			timedCase{c: sd[0], key: one}, timedCase{c: sd[2], key: none})
	}
	// Per cycle: side 0's new-key overhead, side 1's, side 0's replay
	// cost, side 1's.
	var diffs [4][]float64
	for _, ns := range runCycles(b, keys, cases) {
		for i, d := range [4]float64{ns[0] - ns[1], ns[4] - ns[5], ns[2] - ns[3], ns[6] - ns[7]} {
			diffs[i] = append(diffs[i], d)
		}
	}
	// Ratios of the medians: a cycle's own ratio divides one noisy
	// difference by another, and a slice that a collection lands on can
	// make it anything.
	return medianOf(diffs[0]) / medianOf(diffs[1]), medianOf(diffs[2]) / medianOf(diffs[3])
}

// timedCase is one case of a cycled benchmark: the client, the key of
// each request (fresh when key hands out new keys), the body (payBody when
// nil) and the status every request must get (201 when zero).
type timedCase struct {
	c     client
	key   func() string
	fresh bool
	body  []byte
	want  int
}

// runCycles runs cases in turn, each for 2–4 ms (drawn at random), every
// cycle starting at the next case, until each has run b.N requests. It
// returns, per cycle, the time per request of every case in nanoseconds.
func runCycles(b *testing.B, keys *keySource, cases []timedCase) [][]float64 {
	b.Helper()
	done := make([]int, len(cases))
	var out [][]float64
	b.ResetTimer()
	for cycle := 0; slices.Min(done) < b.N; cycle++ {
		ns := make([]float64, len(cases))
		for k := range cases {
			j := (k + cycle) % len(cases)
			tc := cases[j]
			body, want := tc.body, tc.want
			if body == nil {
				body = payBody
			}
			if want == 0 {
				want = http.StatusCreated
			}
			if tc.fresh {
				keys.fill()
			}
			span := 2*time.Millisecond + mrand.N(2*time.Millisecond)
			n := 0
			start := time.Now()
			for time.Since(start) < span {
				if got := tc.c.do(tc.key(), body); got != want {
					b.Fatalf("case %d: status %d; want %d", j, got, want)
				}
				n++
			}
			ns[j] = float64(time.Since(start)) / float64(n)
			done[j] += n
		}
		out = append(out, ns)
	}
	b.StopTimer()
	return out
}

// BenchmarkAdapterRefusals judges "409 and 422 cheaper than a replay" with
// BenchmarkAdapterPair's cycles, on one app per framework: a replay of a
// completed key, a 409 on a key whose first request is held in the
// handler, and a 422 on the completed key with another body, in
// alternating 2–4 ms slices. It reports the medians over cycles of each
// cycle's 409 / replay and 422 / replay time per request (< 1 meets the
// line). Separate runs of the three (BenchmarkAdapter) are seconds apart
// and flipped these lines from run to run.
//
// <fw>-floor measures the same on the floor (httpfloor_test.go) of the
// net/http frameworks, whose refusals are the contract's problem responses written
// as ours are: where the floor's 409 or 422 is not cheaper than its
// replay, no conforming middleware's is on this fixture.
func BenchmarkAdapterRefusals(b *testing.B) {
	for _, fw := range frameworks {
		b.Run(fw.name, func(b *testing.B) {
			s := memstore.New()
			b.Cleanup(func() { s.Close() })
			benchRefusals(b, func(f *fixture) func(bool) client { return fw.build(adapterGuard{core.New(s)}, f) })
		})
		if fw.name == "fiber" {
			continue // fiber's floor is the peer itself, which has no 409 or 422 of the contract's
		}
		b.Run(fw.name+"-floor", func(b *testing.B) {
			benchRefusals(b, func(f *fixture) func(bool) client { return fw.build(newAdapterFloor(), f) })
		})
	}
}

// benchRefusals runs BenchmarkAdapterRefusals' cycles on the app mk builds.
func benchRefusals(b *testing.B, mk func(f *fixture) func(hold bool) client) {
	f := newFixture()
	app := mk(f)
	c := primed(b, app(false))
	held := make(chan int, 1)
	go func() { held <- app(true).do(heldKey, payBody) }()
	<-f.started
	one := func() string { return oneKey }
	cycles := runCycles(b, nil, []timedCase{
		{c: c, key: one},
		{c: c, key: func() string { return heldKey }, want: http.StatusConflict},
		{c: c, key: one, body: otherBody, want: http.StatusUnprocessableEntity},
	})
	close(f.release)
	if got := <-held; got != http.StatusCreated {
		b.Fatalf("held request: status %d; want 201", got)
	}
	var r409, r422 []float64
	for _, ns := range cycles {
		r409 = append(r409, ns[1]/ns[0])
		r422 = append(r422, ns[2]/ns[0])
	}
	b.ReportMetric(medianOf(r409), "409-x-replay")
	b.ReportMetric(medianOf(r422), "422-x-replay")
}

// BenchmarkAdapterFloor measures, with BenchmarkAdapterPair's cycles, a
// floor for the adapter lines of every framework (adapterFloor,
// httpfloor_test.go). On nethttp, chi, gin and echo it is the cheapest
// middleware that does what the contract asks of an in-memory one — the key's
// grammar, the body read whole, the SHA-256 fingerprint and key digest, a
// fingerprint check (422), a pending record with a fencing token and a
// renewed lease (409), the response buffered, stored without hop-by-hop
// fields and Set-Cookie, and only then sent, the replay marker — in each
// framework's own middleware idiom. On fiber it is the peer itself behind
// the request-side part of that work. <fw>-floor-vs-peer is the floor on
// fw against the peer on fiber, each over its own framework's Bare and
// Static, as the budget lines are; <fw>-vs-floor is how far our adapter on
// fw is from the floor there (the engine and its Store contract, the
// framework-agnostic Exchange, and what the engine does beyond the contract's
// minimum).
func BenchmarkAdapterFloor(b *testing.B) {
	fiberBare := newFiberClient(newFiberApp(nil, newFixture()), "", false)
	fiberStatic := newFiberClient(newFiberApp(nil, &fixture{static: true}), "", false)
	for _, fw := range frameworks {
		bare := fw.build(nil, newFixture())(false)
		static := fw.build(nil, &fixture{static: true})(false)
		b.Run(fw.name+"-floor-vs-peer", func(b *testing.B) {
			floor := primed(b, fw.build(newAdapterFloor(), newFixture())(false))
			peer := primed(b, newFiberClient(newFiberApp(idempotency.New(), newFixture()), "X-Idempotency-Key", false))
			nk, rp := pairOverheads(b, [2][3]client{{floor, bare, static}, {peer, fiberBare, fiberStatic}})
			b.ReportMetric(nk, "newkey-x")
			b.ReportMetric(rp, "replay-x")
		})
		b.Run(fw.name+"-vs-floor", func(b *testing.B) {
			s := memstore.New(memstore.WithMaxEntries(1 << 21))
			b.Cleanup(func() { s.Close() })
			ours := primed(b, fw.build(adapterGuard{core.New(s)}, newFixture())(false))
			floor := primed(b, fw.build(newAdapterFloor(), newFixture())(false))
			nk, rp := pairOverheads(b, [2][3]client{{ours, bare, static}, {floor, bare, static}})
			b.ReportMetric(nk, "newkey-x")
			b.ReportMetric(rp, "replay-x")
		})
	}
}

// BenchmarkAdapterPairControl is a diagnostic, not part of make bench: it
// checks that BenchmarkAdapterFloor's pairs have no side bias, on nethttp.
// It pairs our adapter with itself and the floor with itself (each side
// its own store), then ours with the floor both ways round. The first two
// should read 1 and the last two each other's inverse; docs/performance.md
// says what they read.
func BenchmarkAdapterPairControl(b *testing.B) {
	fw := frameworks[0]
	bare := fw.build(nil, newFixture())(false)
	static := fw.build(nil, &fixture{static: true})(false)
	ours := func(b *testing.B) client {
		s := memstore.New(memstore.WithMaxEntries(1 << 21))
		b.Cleanup(func() { s.Close() })
		return primed(b, fw.build(adapterGuard{core.New(s)}, newFixture())(false))
	}
	floor := func(b *testing.B) client { return primed(b, fw.build(newAdapterFloor(), newFixture())(false)) }
	for _, pc := range []struct {
		name  string
		first func(*testing.B) client
		other func(*testing.B) client
	}{{"ours-vs-ours", ours, ours}, {"floor-vs-floor", floor, floor}, {"ours-vs-floor", ours, floor}, {"floor-vs-ours", floor, ours}} {
		b.Run(pc.name, func(b *testing.B) {
			nk, rp := pairOverheads(b, [2][3]client{{pc.first(b), bare, static}, {pc.other(b), bare, static}})
			b.ReportMetric(nk, "newkey-x")
			b.ReportMetric(rp, "replay-x")
		})
	}
}

var floorSink atomic.Uint64

// keySource hands out fresh 36-character keys, made ahead of each timed
// slice so that formatting them is not timed.
type keySource struct {
	run  string
	seq  int
	keys []string
	i    int
}

func newKeySource() *keySource {
	return &keySource{run: fmt.Sprintf("%012d", time.Now().UnixNano()%1e12)}
}

// fill makes keys ahead of a slice, unless enough are left for one.
func (k *keySource) fill() {
	if len(k.keys)-k.i >= 50000 {
		return
	}
	k.keys = k.keys[:0]
	k.i = 0
	for range 100000 {
		k.keys = append(k.keys, fmt.Sprintf("%08x-0000-4000-8000-%s", k.seq, k.run))
		k.seq++
	}
}

func (k *keySource) next() string {
	if k.i == len(k.keys) {
		k.fill() // more than a slice's worth used: make more (timed, rare)
	}
	s := k.keys[k.i]
	k.i++
	return s
}
