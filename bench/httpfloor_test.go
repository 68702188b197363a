package bench

import (
	"bytes"
	"crypto/sha256"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/idempotency"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/labstack/echo/v4"

	"github.com/idemkit/idemkit/core"
)

// adapterFloor is the floor of the adapter budget lines ("≤ the fiber
// peer's"), a guard for BenchmarkAdapterFloor: the least a middleware that
// does the peer's job (fiber v2 middleware/idempotency with its memory
// storage) and the request-side work SPEC requires of every guarded
// request can cost on each framework. If it is above the peer, no
// conforming middleware on that framework meets the line.
//
// On fiber it is the peer itself behind that work. On the net/http
// frameworks it is the peer's algorithm in each framework's own
// middleware idiom: unsafe methods with a 36-character key only; a lookup,
// then the peer's own per-key lock (idempotency.MemoryLock) and a second
// lookup under it; on a miss the handler runs with its writes passed
// through and copied, and the status, a copy of the header and the body
// are stored with the peer's expiry on the peer's coarse clock; on a hit
// the stored header is copied into the response, the replay marker SPEC §3
// requires is added, and the status and body are written. The SPEC work,
// on hits and misses alike: the body read whole (net/http streams it;
// fasthttp has it buffered already) and the handler given a fresh reader
// over it, a SHA-256 of method, path, query and body, a SHA-256 of the key
// and a 128-bit random token. It stores the response as Go values where
// the peer encodes msgpack into its []byte storage, checks the key's
// length only (not SPEC §1's grammar), and compares nothing: no leases,
// no fencing, no fingerprint check. On fiber the peer answers a hit
// itself, so the fiber floor adds no marker and hashes the body alone:
// it is the cheaper of the two.
type adapterFloor struct {
	mu   sync.RWMutex
	m    map[string]floorEntry
	lock *idempotency.MemoryLock
}

type floorEntry struct {
	status int
	header http.Header
	body   []byte
	expiry uint32 // utils.Timestamp seconds, as the peer's memory storage
}

var floorReplayed = []string{"true"}

// floorLifetime is the peer's default lifetime, 30 minutes, in seconds.
const floorLifetime = 30 * 60

func newAdapterFloor() *adapterFloor {
	utils.StartTimeStampUpdater() // the peer's memory storage starts it too
	return &adapterFloor{m: map[string]floorEntry{}, lock: idempotency.NewMemoryLock()}
}

// begin does the request side: the peer's checks and the SPEC work. It
// returns the key, "" for a request the peer lets through, and ok false
// for a key the peer refuses.
func (fl *adapterFloor) begin(r *http.Request) (key string, ok bool) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return "", true
	}
	if key = r.Header.Get(core.KeyHeader); key == "" {
		return "", true
	}
	if len(key) != 36 {
		return "", false
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return "", false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	// SPEC §2 fingerprints method, path, query and body.
	var buf [512]byte
	b := append(buf[:0], r.Method...)
	b = append(b, r.URL.Path...)
	b = append(b, r.URL.RawQuery...)
	fp := sha256.Sum256(append(b, body...))
	sk := sha256.Sum256([]byte(key))
	floorSink.Add(uint64(fp[0]^sk[0]) ^ mrand.Uint64() ^ mrand.Uint64())
	return key, true
}

// serve answers a guarded request from the store, or runs the handler
// (run) and stores what it wrote; a zero status is not stored (the
// handler failed, and the peer stores nothing then). It reports a hit.
func (fl *adapterFloor) serve(key string, w http.ResponseWriter, run func() floorEntry) (hit bool) {
	if fl.replay(key, w) {
		return true
	}
	fl.lock.Lock(key)
	defer fl.lock.Unlock(key)
	if fl.replay(key, w) {
		return true
	}
	if e := run(); e.status != 0 {
		e.expiry = floorLifetime + atomic.LoadUint32(&utils.Timestamp)
		fl.mu.Lock()
		fl.m[key] = e
		fl.mu.Unlock()
	}
	return false
}

func (fl *adapterFloor) replay(key string, w http.ResponseWriter) bool {
	fl.mu.RLock()
	e, ok := fl.m[key]
	fl.mu.RUnlock()
	if !ok || e.expiry <= atomic.LoadUint32(&utils.Timestamp) {
		return false
	}
	h := w.Header()
	for k, v := range e.header {
		h[k] = append([]string(nil), v...)
	}
	h["Idempotency-Replayed"] = floorReplayed // SPEC §3 marks a replay
	w.WriteHeader(e.status)
	w.Write(e.body)
	return true
}

// floorRecorder passes a handler's writes through and keeps a copy.
type floorRecorder struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (r *floorRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *floorRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body = append(r.body, p...)
	return r.ResponseWriter.Write(p)
}

func (r *floorRecorder) entry() floorEntry {
	return floorEntry{status: r.status, header: r.Header().Clone(), body: r.body}
}

func (fl *adapterFloor) nethttp() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := fl.begin(r)
			if !ok {
				http.Error(w, "invalid idempotency key", http.StatusBadRequest)
				return
			}
			if key == "" {
				next.ServeHTTP(w, r)
				return
			}
			fl.serve(key, w, func() floorEntry {
				rec := &floorRecorder{ResponseWriter: w}
				next.ServeHTTP(rec, r)
				return rec.entry()
			})
		})
	}
}

func (fl *adapterFloor) chi() func(http.Handler) http.Handler { return fl.nethttp() }

// ginFloorWriter is floorRecorder for gin, whose writer keeps the status
// itself.
type ginFloorWriter struct {
	gin.ResponseWriter
	body []byte
}

func (w *ginFloorWriter) Write(p []byte) (int, error) {
	w.body = append(w.body, p...)
	return w.ResponseWriter.Write(p)
}

func (w *ginFloorWriter) WriteString(s string) (int, error) {
	w.body = append(w.body, s...)
	return w.ResponseWriter.WriteString(s)
}

func (fl *adapterFloor) gin() gin.HandlerFunc {
	return func(c *gin.Context) {
		key, ok := fl.begin(c.Request)
		if !ok {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		if key == "" {
			return
		}
		if fl.serve(key, c.Writer, func() floorEntry {
			orig := c.Writer
			cw := &ginFloorWriter{ResponseWriter: orig}
			c.Writer = cw
			c.Next()
			c.Writer = orig
			return floorEntry{status: orig.Status(), header: orig.Header().Clone(), body: cw.body}
		}) {
			c.Abort()
		}
	}
}

// echo: a native middleware that swaps the echo.Response's writer for a
// floorRecorder, cheaper than echo.WrapMiddleware of the net/http one,
// which builds a handler and a new echo.Response on every request.
func (fl *adapterFloor) echo() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			key, ok := fl.begin(c.Request())
			if !ok {
				return echo.ErrBadRequest
			}
			if key == "" {
				return next(c)
			}
			res := c.Response()
			fl.serve(key, res, func() floorEntry {
				rec := &floorRecorder{ResponseWriter: res.Writer}
				res.Writer = rec
				err = next(c)
				res.Writer = rec.ResponseWriter
				if err != nil {
					return floorEntry{}
				}
				return rec.entry()
			})
			return err
		}
	}
}

// fiber: the peer itself (reading the key from core.KeyHeader, as our
// adapter and the other floors do) behind the SPEC work.
func (fl *adapterFloor) fiber() fiber.Handler {
	peer := idempotency.New(idempotency.Config{KeyHeader: core.KeyHeader})
	return func(c *fiber.Ctx) error {
		fp := sha256.Sum256(c.Body())
		sk := sha256.Sum256([]byte(c.Get(core.KeyHeader)))
		floorSink.Add(uint64(fp[0]^sk[0]) ^ mrand.Uint64() ^ mrand.Uint64())
		return peer(c)
	}
}

// TestAdapterFloor checks that the floor does the peer's job on the
// net/http frameworks: a retry gets the first response (status, header,
// body) and the replay marker without running the handler, even with
// another body (the floor compares no fingerprints), and a key of another
// length is refused.
func TestAdapterFloor(t *testing.T) {
	for _, fw := range frameworks {
		c, ok := fw.build(newAdapterFloor(), newFixture())(false).(*httpClient)
		if !ok {
			continue // fiber: the floor is the peer itself
		}
		t.Run(fw.name, func(t *testing.T) {
			h := c.h
			send := func(key string, body []byte) *httptest.ResponseRecorder {
				req := httptest.NewRequest(http.MethodPost, "/payments", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(core.KeyHeader, key)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			first := send(oneKey, payBody)
			if first.Code != http.StatusCreated || !bytes.Contains(first.Body.Bytes(), []byte(`"amount":1200`)) {
				t.Fatalf("first: %d %q", first.Code, first.Body)
			}
			again := send(oneKey, otherBody)
			if got := again.Header().Values("Idempotency-Replayed"); len(got) != 1 || got[0] != "true" {
				t.Errorf("replay: Idempotency-Replayed = %q; want [true]", got)
			}
			again.Header().Del("Idempotency-Replayed")
			if again.Code != first.Code || !bytes.Equal(again.Body.Bytes(), first.Body.Bytes()) || !reflect.DeepEqual(again.Header(), first.Header()) {
				t.Errorf("replay: %d %v %q; want %d %v %q", again.Code, again.Header(), again.Body, first.Code, first.Header(), first.Body)
			}
			if got := send("short", payBody).Code; got != http.StatusBadRequest {
				t.Errorf("short key: status %d; want 400", got)
			}
		})
	}
}
