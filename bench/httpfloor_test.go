package bench

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/idempotency"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/labstack/echo/v4"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/internal/httpx"
)

// adapterFloor is the floor of the adapter budget lines ("≤ the fiber
// peer's"), a guard for BenchmarkAdapterFloor: the least a middleware that
// conforms to the contract can cost on each framework. If it is above the peer, no
// conforming middleware on that framework meets the line.
//
// On the net/http frameworks it is the cheapest form of each thing the contract
// asks of an in-memory middleware, in each framework's own middleware
// idiom, and nothing else:
//   - request side (every guarded request): the key's grammar (docs/contract.md C-KEY-2,
//     a length and byte check; quoted keys with escapes are refused rather
//     than decoded), the body read whole and the handler given a fresh
//     reader over it, a SHA-256 of method, path, canonical query (core's
//     CanonicalQuery) and body (C-FP-1), a SHA-256 of the key (stores see no
//     raw key);
//   - one map under one RW lock, read first without the write lock: a live
//     record with another fingerprint is a 422, a pending one a 409 with
//     Retry-After from the remaining lease, each a prebuilt C-ERR-1
//     problem+json response with Cache-Control: no-store; a completed one
//     a replay: its header copied into the response, the marker C-STATE-3
//     requires added, status and body written;
//   - a new key: a pending record with a 128-bit fencing token and a 30 s
//     lease, renewed by a timer while the handler runs (C-LEASE-1); the handler
//     writes into a buffer (its own header map, status and body); a status
//     below 500 is stored (hop-by-hop fields and Set-Cookie left out, with
//     the peer's 30-minute lifetime on the peer's coarse clock) if the
//     token still holds the record, anything else releases it; only then
//     is the buffered response sent (C-DONE-1: stored, then sent).
//
// Every response goes out through httpx.WriteResponse, as our net/http
// adapters send theirs: one block of copied header values per response.
//
// It leaves out what the engine adds beyond the contract's minimum: the Store
// contract and its interface calls, the framework-agnostic Exchange, the
// length prefixes in the fingerprint, the hex storage key, the observer,
// the store timeout, body and stored-size limits, waiting for an in-flight
// result, the other problem responses (400s answer bare statuses) and
// panics.
//
// On fiber it is the peer itself behind the request-side work of the contract; fiber
// buffers every response and the peer stores it before fiber sends it.
// That floor leaves leases and fencing out: it is above the line already.
type adapterFloor struct {
	mu sync.RWMutex
	m  map[string]floorEntry // values: a lookup copies under the lock, an insert allocates no record
}

type floorEntry struct {
	status  int
	header  http.Header
	body    []byte
	fp      [sha256.Size]byte
	token   [2]uint64
	pending bool
	expiry  uint32 // utils.Timestamp seconds: the lease, then the lifetime
}

// floorReplayed is the replay marker docs/contract.md C-STATE-3 requires.
var floorReplayed = http.Header{"Idempotency-Replayed": {"true"}}

const (
	// floorLifetime is the peer's default lifetime, 30 minutes, in seconds.
	floorLifetime = 30 * 60
	// floorLease is the contract's default lease, in seconds, renewed at a third.
	floorLease = 30
	floorRenew = floorLease * time.Second / 3
)

func newAdapterFloor() *adapterFloor {
	utils.StartTimeStampUpdater() // the peer's memory storage starts it too
	return &adapterFloor{m: map[string]floorEntry{}}
}

// floorRequest is what begin derives from a guarded request.
type floorRequest struct {
	sk [sha256.Size]byte // the key's digest: the map is keyed by it, as a store is
	fp [sha256.Size]byte
}

// begin does the request side. It returns ok false for a request the
// floor refuses (400) and guarded false for one it lets through.
func (fl *adapterFloor) begin(r *http.Request) (req floorRequest, guarded, ok bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return req, false, true
	}
	key := r.Header.Get(core.KeyHeader)
	if key == "" {
		return req, false, true
	}
	if !floorKeyOK(key) {
		return req, false, false
	}
	body, err := floorReadBody(r)
	if err != nil {
		return req, false, false
	}
	rd := new(floorBody)
	rd.Reset(body)
	r.Body = rd
	var buf [512]byte
	b := append(buf[:0], r.Method...)
	b = append(b, r.URL.Path...)
	b = append(b, core.CanonicalQuery(r.URL.RawQuery)...)
	req.fp = sha256.Sum256(append(b, body...))
	req.sk = sha256.Sum256([]byte(key))
	return req, true, true
}

// floorReadBody reads the body whole, into one buffer of the announced
// length when there is one.
func floorReadBody(r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= 1<<20 {
		body := make([]byte, n)
		_, err := io.ReadFull(r.Body, body)
		return body, err
	}
	return io.ReadAll(r.Body)
}

// floorBody is the handler's fresh reader over the body, in one
// allocation.
type floorBody struct{ bytes.Reader }

func (*floorBody) Close() error { return nil }

// floorKeyOK is docs/contract.md C-KEY-2's grammar in its cheapest form: 1–255 visible
// ASCII characters, in quotes or bare, without quote or backslash inside.
func floorKeyOK(key string) bool {
	if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
		key = key[1 : len(key)-1]
	}
	if len(key) == 0 || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// serve answers a guarded request from the map, or claims its key, runs
// the handler (run, which buffers its response) and stores and sends what
// it wrote; a zero status means the handler failed and wrote nothing.
func (fl *adapterFloor) serve(req floorRequest, w http.ResponseWriter, run func() floorEntry) {
	fl.mu.RLock()
	e, ok := fl.m[string(req.sk[:])] // a conversion in a map index allocates nothing
	fl.mu.RUnlock()
	now := atomic.LoadUint32(&utils.Timestamp)
	if ok && fl.answer(e, req, now, w) {
		return
	}
	token := [2]uint64{mrand.Uint64(), mrand.Uint64()}
	sk := string(req.sk[:]) // the new record's key
	fl.mu.Lock()
	if e, ok := fl.m[sk]; ok && e.expiry > now {
		fl.mu.Unlock()
		fl.answer(e, req, now, w)
		return
	}
	fl.m[sk] = floorEntry{fp: req.fp, token: token, pending: true, expiry: now + floorLease}
	fl.mu.Unlock()

	var renew *time.Timer
	renew = time.AfterFunc(floorRenew, func() {
		fl.mu.Lock()
		if e, ok := fl.m[sk]; ok && e.pending && e.token == token {
			e.expiry = atomic.LoadUint32(&utils.Timestamp) + floorLease
			fl.m[sk] = e
			renew.Reset(floorRenew)
		}
		fl.mu.Unlock()
	})
	res := run()
	renew.Stop()

	fl.mu.Lock()
	if cur, ok := fl.m[sk]; ok && cur.pending && cur.token == token {
		if res.status > 0 && res.status < 500 {
			fl.m[sk] = floorEntry{status: res.status, header: floorStored(res.header), body: res.body, fp: req.fp,
				expiry: floorLifetime + atomic.LoadUint32(&utils.Timestamp)}
		} else {
			delete(fl.m, sk)
		}
	}
	fl.mu.Unlock()
	if res.status > 0 {
		floorSend(w, res.header, res.status, res.body, nil)
	}
}

// answer answers from e if it is live: 422 for another payload, 409
// while pending (Retry-After from the remaining lease), else a replay. It
// reports whether it did.
func (fl *adapterFloor) answer(e floorEntry, req floorRequest, now uint32, w http.ResponseWriter) bool {
	switch {
	case e.expiry <= now:
		return false
	case e.fp != req.fp:
		httpx.WriteResponse(w, floorMismatch)
	case e.pending:
		httpx.WriteResponse(w, floorInFlight[min(e.expiry-now, floorLease)])
	default:
		floorSend(w, e.header, e.status, e.body, floorReplayed)
	}
	return true
}

// floorSend writes a response with httpx.WriteResponse, as the floor
// writes its refusals: the header values are copied (one block per
// response), so the stored ones stay the store's; extra is the replay
// marker on a replay, nil on the first response.
func floorSend(w http.ResponseWriter, header http.Header, status int, body []byte, extra http.Header) {
	httpx.WriteResponse(w, &core.Response{Status: status, Header: header, Body: body, Extra: extra})
}

// The floor's refusals, built once: docs/contract.md C-ERR-1's problem+json with the
// members it names and Cache-Control: no-store; C-STATE-2's Retry-After on a 409,
// one response per whole second of the lease. The texts are the engine's
// (TestAdapterFloor compares the bodies), so both write the same bytes.
var (
	floorMismatch = floorProblem(http.StatusUnprocessableEntity, core.CodeFingerprintMismatch,
		"Idempotency-Key reused", "This Idempotency-Key was already used with a different request.", 0)
	floorInFlight = func() (rs [floorLease + 1]*core.Response) {
		for s := range rs {
			rs[s] = floorProblem(http.StatusConflict, core.CodeInFlight, "Request in progress",
				"A request with this Idempotency-Key is still being processed; retry later.", max(s, 1))
		}
		return rs
	}()
)

func floorProblem(status int, code, title, detail string, retryAfter int) *core.Response {
	body, err := json.Marshal(core.Problem{Type: core.DefaultProblemTypeBase + code, Title: title, Status: status, Detail: detail, Code: code})
	if err != nil {
		panic(err)
	}
	h := http.Header{"Content-Type": {"application/problem+json"}, "Cache-Control": {"no-store"}}
	if retryAfter > 0 {
		h["Retry-After"] = []string{strconv.Itoa(retryAfter)}
	}
	return &core.Response{Status: status, Header: h, Body: body}
}

// floorStored is what docs/contract.md C-REPLAY-1 stores of a handler's header: all of it but
// the hop-by-hop fields and Set-Cookie. The handler's map is the floor's
// own (its buffer) and is sent as it is, so it is stored as it is unless
// it holds such a field; then the store gets a copy without them.
func floorStored(h http.Header) http.Header {
	for _, name := range floorNotStored {
		if _, ok := h[name]; ok {
			h = h.Clone()
			for _, name := range floorNotStored {
				delete(h, name)
			}
			break
		}
	}
	return h
}

var floorNotStored = [...]string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Set-Cookie"}

// floorRecorder buffers a handler's response: docs/contract.md C-DONE-1 sends it only once
// it is stored.
type floorRecorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *floorRecorder) Header() http.Header { return r.header }

func (r *floorRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *floorRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body = append(r.body, p...)
	return len(p), nil
}

func (r *floorRecorder) entry() floorEntry {
	return floorEntry{status: r.status, header: r.header, body: r.body}
}

func (fl *adapterFloor) nethttp() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			req, guarded, ok := fl.begin(r)
			if !ok {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if !guarded {
				next.ServeHTTP(w, r)
				return
			}
			fl.serve(req, w, func() floorEntry {
				rec := &floorRecorder{header: make(http.Header)}
				next.ServeHTTP(rec, r)
				return rec.entry()
			})
		})
	}
}

func (fl *adapterFloor) chi() func(http.Handler) http.Handler { return fl.nethttp() }

// ginFloorWriter is floorRecorder for gin: a gin.ResponseWriter that
// buffers what the handler writes.
type ginFloorWriter struct {
	gin.ResponseWriter
	floorRecorder
}

func (w *ginFloorWriter) Header() http.Header { return w.header }
func (w *ginFloorWriter) WriteHeader(code int) {
	if code > 0 {
		w.floorRecorder.WriteHeader(code)
	}
}
func (w *ginFloorWriter) WriteHeaderNow()                   {}
func (w *ginFloorWriter) Write(p []byte) (int, error)       { return w.floorRecorder.Write(p) }
func (w *ginFloorWriter) WriteString(s string) (int, error) { return w.floorRecorder.Write([]byte(s)) }
func (w *ginFloorWriter) Written() bool                     { return w.status != 0 }
func (w *ginFloorWriter) Size() int                         { return len(w.body) }
func (w *ginFloorWriter) Status() int                       { return cmp.Or(w.status, http.StatusOK) }
func (w *ginFloorWriter) Flush()                            {}
func (w *ginFloorWriter) Pusher() http.Pusher               { return nil }
func (w *ginFloorWriter) CloseNotify() <-chan bool          { return nil }

func (fl *adapterFloor) gin() gin.HandlerFunc {
	return func(c *gin.Context) {
		req, guarded, ok := fl.begin(c.Request)
		if !ok {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		if !guarded {
			return
		}
		orig := c.Writer
		fl.serve(req, orig, func() floorEntry {
			cw := &ginFloorWriter{ResponseWriter: orig, floorRecorder: floorRecorder{header: make(http.Header)}}
			c.Writer = cw
			c.Next()
			c.Writer = orig
			return cw.entry()
		})
		c.Abort()
	}
}

// echo: a native middleware that swaps the echo.Response's writer for a
// floorRecorder, cheaper than echo.WrapMiddleware of the net/http one,
// which builds a handler and a new echo.Response on every request. The
// buffered response is written to the writer beneath echo's Response,
// which has marked itself committed already.
func (fl *adapterFloor) echo() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			req, guarded, ok := fl.begin(c.Request())
			if !ok {
				return echo.ErrBadRequest
			}
			if !guarded {
				return next(c)
			}
			res := c.Response()
			orig := res.Writer
			fl.serve(req, orig, func() floorEntry {
				rec := &floorRecorder{header: make(http.Header)}
				res.Writer = rec
				err = next(c)
				res.Writer = orig
				if err != nil {
					return floorEntry{}
				}
				return rec.entry()
			})
			if err == nil {
				res.Committed = true
			}
			return err
		}
	}
}

// fiber: the peer itself (reading the key from core.KeyHeader, as our
// adapter and the other floors do) behind the contract's work.
func (fl *adapterFloor) fiber() fiber.Handler {
	peer := idempotency.New(idempotency.Config{KeyHeader: core.KeyHeader})
	return func(c *fiber.Ctx) error {
		fp := sha256.Sum256(c.Body())
		sk := sha256.Sum256([]byte(c.Get(core.KeyHeader)))
		floorSink.Add(uint64(fp[0]^sk[0]) ^ mrand.Uint64() ^ mrand.Uint64())
		return peer(c)
	}
}

// TestAdapterFloor checks that the floor does the job on the net/http
// frameworks: a retry gets the first response (status, header, body) and
// the replay marker without running the handler, a retry with another body
// gets 422, a retry while the first request is in the handler gets 409
// with Retry-After, both as our adapter writes them, and a key that breaks
// docs/contract.md C-KEY-2's grammar is refused.
func TestAdapterFloor(t *testing.T) {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	f := newFixture()
	ours := floorSender(frameworks[0].build(adapterGuard{core.New(s)}, f)(false).(*httpClient).h)
	ours(oneKey, payBody, false)
	want422 := ours(oneKey, otherBody, false)
	want409 := heldConflict(t, f, ours)
	for _, fw := range frameworks {
		f := newFixture()
		c, ok := fw.build(newAdapterFloor(), f)(false).(*httpClient)
		if !ok {
			continue // fiber: the floor is the peer itself
		}
		t.Run(fw.name, func(t *testing.T) {
			send := floorSender(c.h)
			first := send(oneKey, payBody, false)
			if first.Code != http.StatusCreated || !bytes.Contains(first.Body.Bytes(), []byte(`"amount":1200`)) || first.Header().Get("Location") == "" {
				t.Fatalf("first: %d %v %q", first.Code, first.Header(), first.Body)
			}
			again := send(oneKey, payBody, false)
			if got := again.Header().Values("Idempotency-Replayed"); len(got) != 1 || got[0] != "true" {
				t.Errorf("replay: Idempotency-Replayed = %q; want [true]", got)
			}
			again.Header().Del("Idempotency-Replayed")
			if again.Code != first.Code || !bytes.Equal(again.Body.Bytes(), first.Body.Bytes()) || !reflect.DeepEqual(again.Header(), first.Header()) {
				t.Errorf("replay: %d %v %q; want %d %v %q", again.Code, again.Header(), again.Body, first.Code, first.Header(), first.Body)
			}
			sameRefusal(t, "other body", send(oneKey, otherBody, false), want422)
			for _, key := range []string{`""`, "a b", "k\\"} {
				if got := send(key, payBody, false).Code; got != http.StatusBadRequest {
					t.Errorf("key %q: status %d; want 400", key, got)
				}
			}
			sameRefusal(t, "in flight", heldConflict(t, f, send), want409)
		})
	}
}

// floorSender returns a function sending a payment to h.
func floorSender(h http.Handler) func(key string, body []byte, hold bool) *httptest.ResponseRecorder {
	return func(key string, body []byte, hold bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/payments", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(core.KeyHeader, key)
		if hold {
			req.Header.Set(holdHeader, "1")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
}

// heldConflict holds a key's first request in f's handler and returns
// what a retry gets meanwhile; the first request must then end in 201.
func heldConflict(t *testing.T, f *fixture, send func(string, []byte, bool) *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	done := make(chan int, 1)
	go func() { done <- send(heldKey, payBody, true).Code }()
	<-f.started
	rec := send(heldKey, payBody, false)
	close(f.release)
	if got := <-done; got != http.StatusCreated {
		t.Errorf("held request: status %d; want 201", got)
	}
	return rec
}

// sameRefusal checks that the floor's refusal got is our adapter's want:
// status, body, and every header field (Retry-After: a whole number of
// seconds within the lease).
func sameRefusal(t *testing.T, what string, got, want *httptest.ResponseRecorder) {
	t.Helper()
	gh, wh := got.Header().Clone(), want.Header().Clone()
	if ra := gh.Get("Retry-After"); ra != "" || wh.Get("Retry-After") != "" {
		if n, err := strconv.Atoi(ra); err != nil || n < 1 || n > floorLease {
			t.Errorf("%s: Retry-After %q; want 1–%d", what, ra, floorLease)
		}
		gh.Del("Retry-After")
		wh.Del("Retry-After")
	}
	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) || !reflect.DeepEqual(gh, wh) {
		t.Errorf("%s: %d %v %s; want %d %v %s", what, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
	}
}
