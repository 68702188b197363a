package conformance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// HostileHarness tells [TestHostileInput] how to serve the adapter under
// test: as for [TestMiddleware], but NewServer must start the adapter's
// usual server on a real loopback listener (net/http's http.Server, fiber's
// own), not a test recorder, with a read deadline of ReadTimeout for the
// whole request (http.Server's ReadHeaderTimeout and ReadTimeout, fiber's
// Config.ReadTimeout).
type HostileHarness struct {
	Harness
	// ReadTimeout is the time the server gives a client to send a whole
	// request, headers and body. Keep it short (half a second to two) so
	// that the cases that stall past it end quickly; zero is refused: a
	// server without one holds a stalled client forever.
	ReadTimeout time.Duration
}

// ServeWithDeadlines serves h on a loopback port with an http.Server set up
// as a production net/http service should be — a read deadline of
// readTimeout for the headers and for the whole request, a write deadline,
// an idle timeout and a header size limit — and returns its base URL; the
// server is closed when t ends. It is NewServer's usual end for a net/http
// adapter under [TestHostileInput].
func ServeWithDeadlines(t *testing.T, h http.Handler, readTimeout time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("conformance: listen: %v", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      5 * time.Second,
		IdleTimeout:       5 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// hostileMaxBody is the body limit (core.WithMaxBodyBytes) of every
// TestHostileInput engine: small, so that the over-limit cases send little,
// but over the 8 KiB a streaming server (fiber's StreamRequestBody) reads
// before it calls the handler, so that a body cut past that reaches the
// middleware as a stream.
const hostileMaxBody = 16 << 10

// TestHostileInput drives a server built by h over raw TCP connections
// with requests no well-behaved client sends: duplicated (also with the
// name in other letter case), malformed, oversized, empty and control-byte
// Idempotency-Key fields, obs-fold continuations, a key in a chunked
// trailer, duplicated Content-Type and Content-Length, header names with
// invalid bytes, a lower-case method, bodies shorter or longer than their
// Content-Length (cut by a half-close, a stall or an Expect: 100-continue
// client), malformed chunked bodies, Content-Length with
// Transfer-Encoding, bodies trickled past the read deadline, bodies over
// the limit (declared, cut, chunked), and requests pipelined on one
// connection.
//
// Each case checks what the client got (the status and problem+json where
// the engine answers; a refusal by the server, or the connection closed,
// where the server must act), how many times the handler ran and whether
// a response was stored, then sends a clean request with the same key:
// it must run the handler once and be stored, or replay a response whose
// request body is byte for byte the clean one — never a response to a
// truncated or mixed body, and never 409 from a claim left behind
// (docs/contract.md C-FP-3, C-KEY-2, C-STATE-1–4). The outcome of every case is logged as a table.
func TestHostileInput(t *testing.T, h HostileHarness) {
	if h.NewStore == nil || h.NewServer == nil {
		t.Fatal("conformance: TestHostileInput needs HostileHarness.NewStore and HostileHarness.NewServer")
	}
	if h.ReadTimeout <= 0 {
		t.Fatal("conformance: TestHostileInput needs HostileHarness.ReadTimeout, the server's read deadline")
	}
	var (
		mu   sync.Mutex
		rows []hostileRow
	)
	// The table is logged once every case, run in parallel, is done.
	t.Cleanup(func() {
		slices.SortFunc(rows, func(a, b hostileRow) int { return strings.Compare(a.name, b.name) })
		var b strings.Builder
		fmt.Fprintf(&b, "hostile input, %d cases (runs and stored count the clean retries too):\n", len(rows))
		fmt.Fprintf(&b, "%-36s %-44s %4s %6s  %s\n", "case", "hostile request →", "runs", "stored", "clean retry →")
		for _, r := range rows {
			fmt.Fprintf(&b, "%-36s %-44s %4d %6d  %s\n", r.name, strings.Join(r.wire, ", "), r.runs, r.stored, r.retry)
		}
		t.Log(b.String())
	})
	for _, c := range hostileCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newHostileEnv(t, h)
			row := hostileRow{name: c.name}
			defer func() { // also after a t.Fatal
				row.runs = e.runs()
				row.stored = e.rec.completes.Load()
				mu.Lock()
				rows = append(rows, row)
				mu.Unlock()
			}()
			c.run(e, &row)
		})
	}
}

type hostileRow struct {
	name   string
	wire   []string // what each hostile request got
	runs   int64
	stored int64
	retry  string
}

// recordingStore counts the responses the engine stores.
type recordingStore struct {
	core.Store
	completes atomic.Int64
}

func (s *recordingStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	err := s.Store.Complete(ctx, key, token, resp, ttl)
	if err == nil {
		s.completes.Add(1)
	}
	return err
}

type hostileEnv struct {
	*env
	rec         *recordingStore
	addr        string
	readTimeout time.Duration
}

func newHostileEnv(t *testing.T, h HostileHarness) *hostileEnv {
	t.Helper()
	var rec *recordingStore
	hh := h.Harness
	hh.NewStore = func(t *testing.T) core.Store {
		rec = &recordingStore{Store: h.NewStore(t)}
		return rec
	}
	e := newEnv(t, hh, core.WithMaxBodyBytes(hostileMaxBody))
	u, err := url.Parse(e.base)
	if err != nil {
		t.Fatalf("parsing base URL %q: %v", e.base, err)
	}
	return &hostileEnv{env: e, rec: rec, addr: u.Host, readTimeout: h.ReadTimeout}
}

// answer is what one request on a raw connection got: a response, or the
// connection ended (closed) or stayed silent (timeout) instead.
type answer struct {
	status   int
	header   http.Header
	body     []byte
	closed   bool
	timedOut bool
	err      error
}

func (a answer) String() string {
	switch {
	case a.timedOut:
		return "no answer"
	case a.closed:
		return "closed"
	}
	s := strconv.Itoa(a.status)
	if code := problemCode(a); code != "" {
		s += " " + code
	} else if a.status >= 400 {
		s += " (server)"
	}
	if a.header.Get(core.DefaultReplayHeader) == "true" {
		s += " replayed"
	}
	return s
}

// problemCode returns the code of a problem+json answer, or "".
func problemCode(a answer) string {
	if a.header == nil || a.header.Get("Content-Type") != "application/problem+json" {
		return ""
	}
	var p struct {
		Code string `json:"code"`
	}
	json.Unmarshal(a.body, &p)
	if p.Code == "" {
		return "problem"
	}
	return p.Code
}

// refusedByServer reports whether a is a refusal that never reached the engine:
// a non-problem 4xx from the server, or the connection closed.
func (a answer) refusedByServer() bool {
	return a.closed || a.status >= 400 && a.status < 500 && problemCode(a) == ""
}

// conn is one raw client connection.
type conn struct {
	e  *hostileEnv
	c  net.Conn
	br *bufio.Reader
}

func (e *hostileEnv) dial() *conn {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatalf("dial %s: %v", e.addr, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return &conn{e: e, c: c, br: bufio.NewReader(c)}
}

// send writes s; a server that has closed its side may refuse it, which
// the answers then show.
func (c *conn) send(s string) {
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c.c, s)
}

// closeWrite half-closes the connection: the server reads EOF.
func (c *conn) closeWrite() {
	if cw, ok := c.c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// read reads one response, waiting at most wait.
func (c *conn) read(wait time.Duration) answer {
	c.c.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return answer{timedOut: true, err: err}
		}
		return answer{closed: true, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{closed: true, err: err}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// waitClosed reports whether the server closes the connection within
// wait (reading and discarding anything it still sends).
func (c *conn) waitClosed(wait time.Duration) bool {
	c.c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// request builds a POST /things with key lines (already formatted field
// lines, or none), extra field lines and body, declaring len(body) unless
// a field line sets Content-Length or Transfer-Encoding.
func request(keyLines []string, extra []string, body string) string {
	var b strings.Builder
	b.WriteString("POST /things HTTP/1.1\r\nHost: conformance\r\n")
	declared := false
	for _, l := range extra {
		lower := strings.ToLower(l)
		if strings.HasPrefix(lower, "content-length:") || strings.HasPrefix(lower, "transfer-encoding:") {
			declared = true
		}
	}
	if !declared {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	for _, l := range keyLines {
		b.WriteString(l + "\r\n")
	}
	for _, l := range extra {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

func keyLine(k string) string { return core.KeyHeader + ": " + core.FormatKey(k) }

// wantProblem checks a against the engine's problem (status, problem+json
// with code), or, when serverMay is set, a refusal by the server itself.
func (e *hostileEnv) wantProblem(what string, a answer, status int, code string, serverMay bool, rule string) {
	e.t.Helper()
	if serverMay && a.refusedByServer() {
		return
	}
	if a.timedOut || a.closed {
		e.t.Errorf("%s: %s; want %d %s (%s)", what, a, status, code, rule)
		return
	}
	e.env.wantProblem(what, reply{status: a.status, header: a.header, body: a.body}, status, code, "")
}

// bodyOf decodes the app's answer to a request.
func bodyOf(b []byte) (appResult, bool) {
	var r appResult
	return r, json.Unmarshal(b, &r) == nil
}

func sha(b string) string {
	s := sha256.Sum256([]byte(b))
	return hex.EncodeToString(s[:])
}

// wantResultFor checks that an answer from the app describes the request
// body body, byte for byte.
func (e *hostileEnv) wantResultFor(what string, a answer, body string) {
	e.t.Helper()
	r, ok := bodyOf(a.body)
	if !ok {
		e.t.Errorf("%s: answer %s with body %.200q is not the app's JSON", what, a, a.body)
		return
	}
	if r.BodyLen != len(body) || r.BodySHA != sha(body) {
		e.t.Errorf("%s: the answer describes a %d-byte request body (sha %.12s); want the %d-byte body sent (sha %.12s): "+
			"docs/contract.md C-FP-3: the fingerprint and the handler see the body as framed, nothing more, nothing less", what, r.BodyLen, r.BodySHA, len(body), sha(body))
	}
}

// cleanRetry sends a well-formed request with key and body, as a client's
// retry would, twice: the first must be answered 201 for exactly this body
// (fresh when stored is false, a replay of a response to this very body
// when stored is true), never 409 from a claim left behind; the second
// must replay it. It returns the row's description.
func (e *hostileEnv) cleanRetry(key, body string, stored bool) string {
	e.t.Helper()
	before, storedBefore := e.runs(), e.rec.completes.Load()
	first := e.doRaw([]string{keyLine(key)}, nil, body)
	rule := "docs/contract.md C-FP-3, C-STATE-1, C-STATE-3: a clean retry after a hostile request runs once and is stored, or replays the response to this very body; the key is never left locked"
	if first.status != http.StatusCreated {
		e.t.Errorf("clean retry with key %s: %s %.200q; want 201 (%s)", short(key), first, first.body, rule)
		return first.String()
	}
	e.wantResultFor("clean retry", first, body)
	replayed := first.header.Get(core.DefaultReplayHeader) == "true"
	switch {
	case stored && !replayed:
		e.t.Errorf("clean retry with key %s: a fresh execution; want the stored response replayed (%s)", short(key), rule)
	case !stored && replayed:
		e.t.Errorf("clean retry with key %s: replayed; want a fresh execution: the hostile request must not have stored a response (%s)", short(key), rule)
	}
	wantRuns, wantStored := before, storedBefore
	if !replayed {
		wantRuns, wantStored = before+1, storedBefore+1
	}
	if got := e.runs(); got != wantRuns {
		e.t.Errorf("clean retry with key %s: the handler ran %d more times; want %d (%s)", short(key), got-before, wantRuns-before, rule)
	}
	if got := e.rec.completes.Load(); got != wantStored {
		e.t.Errorf("clean retry with key %s: %d more responses stored; want %d (%s)", short(key), got-storedBefore, wantStored-storedBefore, rule)
	}
	again := e.doRaw([]string{keyLine(key)}, nil, body)
	if again.status != first.status || again.header.Get(core.DefaultReplayHeader) != "true" || !bytes.Equal(again.body, first.body) {
		e.t.Errorf("second clean retry with key %s: %s; want the response to the first replayed byte for byte (docs/contract.md C-STATE-3)", short(key), again)
	}
	if replayed {
		return first.String()
	}
	return first.String() + " fresh"
}

// doRaw sends one request on a connection of its own and reads its answer.
func (e *hostileEnv) doRaw(keyLines, extra []string, body string) answer {
	e.t.Helper()
	c := e.dial()
	c.send(request(keyLines, extra, body))
	return c.read(10 * time.Second)
}

// margin is how much later than the server's read deadline a cut-off
// connection may end on a loaded machine.
const margin = 3 * time.Second

type hostileCase struct {
	name string
	run  func(e *hostileEnv, row *hostileRow)
}

const (
	ruleKeyRefused  = "docs/contract.md C-KEY-2: an invalid key, or more than one field, → 400 invalid-key; the handler does not run"
	ruleBodyRefused = "docs/contract.md C-FP-2, C-FP-3: a body that cannot be read → 400 invalid-body (or the server refuses it); the handler does not run, nothing is stored"
	ruleTooLarge    = "docs/contract.md C-FP-2: a body over the limit → 413 body-too-large; the handler does not run, nothing is stored"
	ruleServerOnly  = "a request the server refuses never reaches the handler or the store"
	rulePipelined   = "docs/contract.md C-FP-3, C-ONCE-1: requests pipelined on one connection are served one after the other, one run per key"
	body1           = `{"amount":1200,"currency":"EUR"}`
)

// keyRefused is a case whose request carries the key lines lines and must
// be refused before the handler: by the engine (400 invalid-key), or, when
// serverMay, by the server. The clean retries use keys.
func keyRefused(lines func(k string) []string, serverMay bool) func(e *hostileEnv, row *hostileRow) {
	return func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		a := e.doRaw(lines(k), nil, body1)
		row.wire = append(row.wire, a.String())
		e.wantProblem("hostile key", a, http.StatusBadRequest, core.CodeInvalidKey, serverMay, ruleKeyRefused)
		e.wantRuns("hostile key", 0, ruleKeyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}
}

var hostileCases = []hostileCase{
	{"Key/DuplicateSameValue", keyRefused(func(k string) []string { return []string{keyLine(k), keyLine(k)} }, false)},
	{"Key/DuplicateDifferentValues", func(e *hostileEnv, row *hostileRow) {
		k, k2 := newKey(), newKey()
		a := e.doRaw([]string{keyLine(k), keyLine(k2)}, nil, body1)
		row.wire = append(row.wire, a.String())
		e.wantProblem("two Idempotency-Key fields, different values", a, http.StatusBadRequest, core.CodeInvalidKey, false, ruleKeyRefused)
		e.wantRuns("two different keys", 0, ruleKeyRefused)
		row.retry = e.cleanRetry(k, body1, false)
		e.cleanRetry(k2, body1, false)
	}},
	{"Key/DuplicateOneEmpty", keyRefused(func(k string) []string { return []string{keyLine(k), core.KeyHeader + ":"} }, false)},
	{"Key/InvalidSfString", keyRefused(func(k string) []string { return []string{core.KeyHeader + `: "` + k + `"x"`} }, false)},
	{"Key/TooLong", keyRefused(func(k string) []string {
		return []string{core.KeyHeader + ": " + k + strings.Repeat("x", core.DefaultMaxKeyLength+1-len(k))}
	}, false)},
	{"Key/TabInside", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\tx\""} }, false)},
	{"Key/ControlByte", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\x01x\""} }, true)},
	{"Key/NULByte", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\x00x\""} }, true)},
	{"Key/DEL", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\x7fx\""} }, true)},
	{"Key/ObsFoldContinuation", keyRefused(func(k string) []string {
		return []string{keyLine(k), "  \"continued\""}
	}, true)},
	{"Key/Empty", keyRefused(func(k string) []string { return []string{core.KeyHeader + ":"} }, false)},
	{"Key/BareCR", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\rx\""} }, true)},
	{"Key/DuplicateCaseVariants", keyRefused(func(k string) []string {
		return []string{"idempotency-key: " + core.FormatKey(k), "IDEMPOTENCY-KEY: " + core.FormatKey(k)}
	}, false)},
	{"Key/Huge", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": " + k + strings.Repeat("h", 12<<10)} }, true)},
	{"Chunked/TrailerKey", func(e *hostileEnv, row *hostileRow) {
		// A key field in the chunked trailer: a server that keeps trailers
		// apart (net/http) guards the request with the header's key; one
		// that merges them into the header (fasthttp) gives the engine two
		// fields, refused. Either way one run at most, and the retry agrees.
		k, other := newKey(), newKey()
		chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n%s\r\n\r\n", len(body1), body1, keyLine(other))
		a := e.doRaw([]string{keyLine(k)}, []string{"Transfer-Encoding: chunked", "Trailer: Idempotency-Key"}, chunked)
		row.wire = append(row.wire, a.String())
		stored := false
		switch {
		case a.status == http.StatusCreated:
			e.wantResultFor("key in the trailer", a, body1)
			e.wantRuns("key in the trailer, header key used", 1, "docs/contract.md C-STATE-1: a new key runs the handler once")
			stored = true
		case a.refusedByServer():
			e.wantRuns("key in the trailer, refused by the server", 0, ruleServerOnly)
		default:
			e.wantProblem("key in the trailer", a, http.StatusBadRequest, core.CodeInvalidKey, false, ruleKeyRefused)
			e.wantRuns("key in the trailer, refused", 0, ruleKeyRefused)
		}
		row.retry = e.cleanRetry(k, body1, stored)
		e.cleanRetry(other, body1, false)
	}},
	{"Header/ContentLengthConflict", func(e *hostileEnv, row *hostileRow) {
		// Two lengths: the server refuses the request (RFC 9112 §6.3), or
		// frames it by one of them; never two runs, and what is stored is
		// the response to the body as framed.
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: 5", "Content-Length: " + strconv.Itoa(len(body1))}, body1))
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		switch {
		case a.refusedByServer():
			e.wantRuns("conflicting Content-Length, refused", 0, ruleServerOnly)
			row.retry = e.cleanRetry(k, body1, false)
		case a.status == http.StatusCreated:
			r, _ := bodyOf(a.body)
			framed := body1
			if r.BodyLen == 5 {
				framed = body1[:5]
			}
			e.wantResultFor("conflicting Content-Length", a, framed)
			e.wantRuns("conflicting Content-Length", 1, "docs/contract.md C-ONCE-1: one run per key")
			c.waitClosed(e.readTimeout + margin)
			row.retry = e.cleanRetry(k, framed, true)
		default:
			e.t.Errorf("conflicting Content-Length: %s; want a refusal by the server, or 201 for the body as framed", a)
			row.retry = e.cleanRetry(k, body1, false)
		}
	}},
	{"Header/ContentLengthDuplicateSame", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		a := e.doRaw([]string{keyLine(k)}, []string{"Content-Length: " + strconv.Itoa(len(body1)), "Content-Length: " + strconv.Itoa(len(body1))}, body1)
		row.wire = append(row.wire, a.String())
		stored := false
		switch {
		case a.refusedByServer():
			e.wantRuns("duplicated Content-Length, refused", 0, ruleServerOnly)
		case a.status == http.StatusCreated:
			e.wantResultFor("duplicated Content-Length", a, body1)
			e.wantRuns("duplicated Content-Length", 1, "docs/contract.md C-ONCE-1: one run per key")
			stored = true
		default:
			e.t.Errorf("duplicated Content-Length: %s; want 201 or a refusal by the server", a)
		}
		row.retry = e.cleanRetry(k, body1, stored)
	}},
	{"Body/LargeCutThenHalfClose", func(e *hostileEnv, row *hostileRow) {
		// Within the limit, but larger than a streaming server reads
		// before it calls the handler: the cut reaches the middleware
		// while it reads the stream.
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: " + strconv.Itoa(hostileMaxBody-1)}, strings.Repeat("c", hostileMaxBody/2)))
		c.closeWrite()
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		e.wantProblem("large body cut short, then EOF", a, http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused)
		e.wantRuns("large body cut short", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/OverLimitDeclaredThenCut", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: " + strconv.Itoa(4*hostileMaxBody)}, strings.Repeat("c", hostileMaxBody/2)))
		c.closeWrite()
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		if a.status != http.StatusBadRequest || problemCode(a) != core.CodeInvalidBody {
			e.wantProblem("Content-Length over the limit, body cut short", a, http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, true, ruleTooLarge)
		}
		e.wantRuns("declared over the limit, cut short", 0, ruleTooLarge)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Header/DuplicateContentType", func(e *hostileEnv, row *hostileRow) {
		// Content-Type is no part of the fingerprint (docs/contract.md C-FP-1): the
		// request runs once and its response is stored, or the server
		// refuses it.
		k := newKey()
		a := e.doRaw([]string{keyLine(k)}, []string{"Content-Type: application/json", "Content-Type: text/plain"}, body1)
		row.wire = append(row.wire, a.String())
		stored := false
		switch {
		case a.refusedByServer():
			e.wantRuns("duplicated Content-Type refused by the server", 0, ruleServerOnly)
		case a.status == http.StatusCreated:
			e.wantResultFor("duplicated Content-Type", a, body1)
			e.wantRuns("duplicated Content-Type", 1, "docs/contract.md C-STATE-1: a new key runs the handler once")
			stored = true
		default:
			e.t.Errorf("duplicated Content-Type: %s; want 201 (Content-Type is no part of the fingerprint) or a refusal by the server", a)
		}
		row.retry = e.cleanRetry(k, body1, stored)
	}},
	{"Header/NameWithSpace", serverRefused([]string{"X Bad: v"})},
	{"Header/NameWithNUL", serverRefused([]string{"X-B\x00ad: v"})},
	{"Header/NameWithColonOnly", serverRefused([]string{": v"})},
	{"Header/NameNonASCII", serverRefused([]string{"X-Caf\xc3\xa9: v"})},
	{"Body/ShortThenHalfClose", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: 100"}, body1))
		c.closeWrite()
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		e.wantProblem("body shorter than Content-Length, then EOF", a, http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused)
		e.wantRuns("body cut short", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/ShortThenStall", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.dial()
		start := time.Now()
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: 100"}, body1))
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		if a.timedOut {
			e.t.Errorf("body shorter than Content-Length, then silence: no answer and the connection still open after %v; want it cut off at the read deadline (%v)", time.Since(start).Round(time.Millisecond), e.readTimeout)
		} else {
			e.wantProblem("body shorter than Content-Length, then silence", a, http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused)
			if !a.closed && !c.waitClosed(margin) {
				e.t.Errorf("body cut off at the read deadline: answered %s but the connection stays open; want it closed (the rest of the body can never be told from a next request)", a)
			}
		}
		e.wantRuns("stalled body", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/Trickle", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.dial()
		start := time.Now()
		big := strings.Repeat(" ", 200) // 200 bytes at one per 50 ms: ten seconds
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: " + strconv.Itoa(len(big))}, ""))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := 0; i < len(big); i++ {
				if _, err := c.c.Write([]byte{' '}); err != nil {
					return
				}
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		}()
		a := c.read(e.readTimeout + margin)
		close(stop)
		wg.Wait()
		elapsed := time.Since(start)
		row.wire = append(row.wire, a.String()+" after "+elapsed.Round(100*time.Millisecond).String())
		if a.timedOut {
			e.t.Errorf("a body trickled at 20 bytes/s: still being read after %v; want it cut off at the read deadline (%v)", elapsed.Round(time.Millisecond), e.readTimeout)
		} else {
			e.wantProblem("a body trickled past the read deadline", a, http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused)
		}
		e.wantRuns("trickled body", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/LongerThanDeclared", func(e *hostileEnv, row *hostileRow) {
		// The bytes past Content-Length are the start of a next request
		// (here garbage): they are no part of the first one's fingerprint
		// or stored response.
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, nil, body1) + "GARBAGE-NOT-A-REQUEST\r\n\r\n")
		a := c.read(10 * time.Second)
		row.wire = append(row.wire, a.String())
		if a.status != http.StatusCreated {
			e.t.Errorf("body followed by extra bytes: %s; want 201 for the declared body", a)
		} else {
			e.wantResultFor("body followed by extra bytes", a, body1)
		}
		b := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, b.String())
		if !b.refusedByServer() {
			e.t.Errorf("extra bytes after the body: %s; want the server to refuse them as a malformed request, or close", b)
		}
		e.wantRuns("body with extra bytes", 1, "docs/contract.md C-FP-3: one request, one run")
		row.retry = e.cleanRetry(k, body1, true)
	}},
	{"Body/LongerIsPipelinedRequest", func(e *hostileEnv, row *hostileRow) {
		// The extra bytes are a whole second request with the same key and
		// another body: it is a request of its own, refused as a mismatch,
		// and the first request's record holds its own body only.
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, nil, body1) + request([]string{keyLine(k)}, nil, `{"amount":1}`))
		a, b := c.read(10*time.Second), c.read(10*time.Second)
		row.wire = append(row.wire, a.String(), b.String())
		if a.status != http.StatusCreated {
			e.t.Errorf("first of two requests in one write: %s; want 201", a)
		} else {
			e.wantResultFor("first of two requests in one write", a, body1)
		}
		e.wantProblem("second request, same key, other body", b, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, false, "docs/contract.md C-STATE-4: other fingerprint → 422")
		e.wantRuns("two requests in one write", 1, rulePipelined)
		row.retry = e.cleanRetry(k, body1, true)
	}},
	{"Chunked/MalformedSize", chunkedRefused("zz\r\n" + body1 + "\r\n0\r\n\r\n")},
	{"Chunked/NegativeSize", chunkedRefused("-5\r\nhello\r\n0\r\n\r\n")},
	{"Chunked/SizeOverflow", chunkedRefused("fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n")},
	{"Chunked/SizeLargerThanData", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Transfer-Encoding: chunked"}, "64\r\n"+body1))
		c.closeWrite()
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		e.wantProblem("chunk cut short, then EOF", a, http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused)
		e.wantRuns("chunk cut short", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Chunked/WithContentLength", func(e *hostileEnv, row *hostileRow) {
		// The request smuggling shape: a server that read the body by
		// Content-Length would take the second request for body bytes, one
		// that reads it chunked serves two requests. Either way, or
		// refused: never two runs for the key, never a record of the
		// other reading.
		k := newKey()
		second := request([]string{keyLine(k)}, nil, body1)
		chunked := "0\r\n\r\n" + second
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: " + strconv.Itoa(len(chunked)), "Transfer-Encoding: chunked"}, chunked))
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		var stored bool
		switch {
		case a.refusedByServer():
			e.wantRuns("Content-Length with Transfer-Encoding, refused", 0, ruleServerOnly)
			if !a.closed && !c.waitClosed(margin) {
				e.t.Errorf("Content-Length with Transfer-Encoding: refused with %s but the connection stays open; want it closed", a)
			}
		case a.status == http.StatusCreated:
			// Read as chunked: an empty body, then the smuggled request,
			// another body under the same key: 422.
			e.wantResultFor("Content-Length with Transfer-Encoding, read chunked", a, "")
			b := c.read(e.readTimeout + margin)
			row.wire = append(row.wire, b.String())
			if !b.closed {
				e.wantProblem("the smuggled request", b, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, false, "docs/contract.md C-STATE-4: other fingerprint → 422")
			}
			e.wantRuns("Content-Length with Transfer-Encoding", 1, "docs/contract.md C-ONCE-1: one run per key")
			c2 := e.cleanRetry(k, "", true)
			row.retry = c2 + " (empty body)"
			stored = true
		default:
			e.t.Errorf("Content-Length with Transfer-Encoding: %s; want a refusal by the server, or 201 for the chunked reading", a)
		}
		if !stored {
			row.retry = e.cleanRetry(k, body1, false)
		}
	}},
	{"Body/OverLimitDeclared", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		a := e.doRaw([]string{keyLine(k)}, nil, strings.Repeat("x", 2*hostileMaxBody))
		row.wire = append(row.wire, a.String())
		e.wantProblem("body over the limit, declared", a, http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, false, ruleTooLarge)
		e.wantRuns("body over the limit", 0, ruleTooLarge)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/OverLimitDeclaredNotSent", func(e *hostileEnv, row *hostileRow) {
		// The length alone is over the limit: refused before a body byte
		// is read.
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Content-Length: " + strconv.Itoa(100*hostileMaxBody)}, ""))
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		e.wantProblem("Content-Length over the limit, body not sent", a, http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, true, ruleTooLarge)
		e.wantRuns("declared over the limit", 0, ruleTooLarge)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/OverLimitChunked", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		var b strings.Builder
		for i := 0; i < 4; i++ {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", hostileMaxBody/2, strings.Repeat("y", hostileMaxBody/2))
		}
		b.WriteString("0\r\n\r\n")
		a := e.doRaw([]string{keyLine(k)}, []string{"Transfer-Encoding: chunked"}, b.String())
		row.wire = append(row.wire, a.String())
		e.wantProblem("chunked body over the limit", a, http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, false, ruleTooLarge)
		e.wantRuns("chunked body over the limit", 0, ruleTooLarge)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/ChunkedWithinLimit", func(e *hostileEnv, row *hostileRow) {
		// A chunked body the limit allows is fingerprinted as its
		// de-chunked bytes: a retry sending them with Content-Length
		// replays it.
		k := newKey()
		a := e.doRaw([]string{keyLine(k)}, []string{"Transfer-Encoding: chunked"}, "5\r\n"+body1[:5]+"\r\n"+strconv.FormatInt(int64(len(body1)-5), 16)+"\r\n"+body1[5:]+"\r\n0\r\n\r\n")
		row.wire = append(row.wire, a.String())
		if a.status != http.StatusCreated {
			e.t.Errorf("chunked body within the limit: %s; want 201", a)
		} else {
			e.wantResultFor("chunked body within the limit", a, body1)
		}
		row.retry = e.cleanRetry(k, body1, a.status == http.StatusCreated)
	}},
	{"Expect/ContinueThenCut", func(e *hostileEnv, row *hostileRow) {
		// The client waits for 100 Continue, which the server sends when
		// the body is first read, then sends part of the body and goes.
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Expect: 100-continue", "Content-Length: 100"}, ""))
		a := c.read(e.readTimeout + margin)
		if a.status == http.StatusContinue {
			row.wire = append(row.wire, a.String())
			c.send(body1)
			c.closeWrite()
			a = c.read(e.readTimeout + margin)
		}
		row.wire = append(row.wire, a.String())
		e.wantProblem("100 Continue, then a body cut short", a, http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused)
		e.wantRuns("100 Continue, then a body cut short", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Expect/ContinueOverLimit", func(e *hostileEnv, row *hostileRow) {
		// A length over the limit is refused before the body is asked for
		// (a server that sends 100 Continue on its own then waits for the
		// body the client never sends).
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Expect: 100-continue", "Content-Length: " + strconv.Itoa(4*hostileMaxBody)}, ""))
		a := c.read(e.readTimeout + margin)
		if a.status == http.StatusContinue {
			row.wire = append(row.wire, a.String())
			a = c.read(e.readTimeout + margin)
		}
		row.wire = append(row.wire, a.String())
		e.wantProblem("Expect: 100-continue with a length over the limit", a, http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, true, ruleTooLarge)
		e.wantRuns("Expect: 100-continue over the limit", 0, ruleTooLarge)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Method/LowerCase", func(e *hostileEnv, row *hostileRow) {
		// Methods are case-sensitive (RFC 9110 §9.1): "post" is not POST
		// and is not guarded. The server refuses it, or the handler sees
		// "post"; a framework that ran it as POST while the engine let it
		// through would run a POST twice.
		k := newKey()
		for i := 0; i < 2; i++ {
			c := e.dial()
			c.send(strings.Replace(request([]string{keyLine(k)}, nil, body1), "POST ", "post ", 1))
			a := c.read(e.readTimeout + margin)
			row.wire = append(row.wire, a.String())
			if r, ok := bodyOf(a.body); ok && a.status < 300 && r.Method != "post" {
				e.t.Errorf("request %d with method \"post\": the handler saw method %q; want \"post\" (unguarded) or a refusal: a framework that serves it as POST must have it guarded (docs/contract.md C-REQ-1)", i+1, r.Method)
			}
		}
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Pipeline/DuplicateSameKey", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.dial()
		one := request([]string{keyLine(k)}, nil, body1)
		c.send(one + one + one)
		first := c.read(10 * time.Second)
		row.wire = append(row.wire, first.String())
		if first.status != http.StatusCreated || first.header.Get(core.DefaultReplayHeader) != "" {
			e.t.Errorf("first of three pipelined duplicates: %s; want 201 fresh", first)
		} else {
			e.wantResultFor("first pipelined request", first, body1)
		}
		for i := 2; i <= 3; i++ {
			a := c.read(10 * time.Second)
			row.wire = append(row.wire, a.String())
			if a.status != http.StatusCreated || a.header.Get(core.DefaultReplayHeader) != "true" || !bytes.Equal(a.body, first.body) {
				e.t.Errorf("pipelined duplicate %d: %s; want the first response replayed (%s)", i, a, rulePipelined)
			}
		}
		e.wantRuns("three pipelined duplicates", 1, rulePipelined)
		row.retry = e.cleanRetry(k, body1, true)
	}},
	{"Pipeline/RefusedThenClean", func(e *hostileEnv, row *hostileRow) {
		// A refused request on a kept-alive connection leaves nothing
		// behind for the next one with the same key.
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k), keyLine(k)}, nil, body1) + request([]string{keyLine(k)}, nil, body1))
		a, b := c.read(10*time.Second), c.read(10*time.Second)
		row.wire = append(row.wire, a.String(), b.String())
		e.wantProblem("duplicated key, pipelined", a, http.StatusBadRequest, core.CodeInvalidKey, false, ruleKeyRefused)
		if b.status != http.StatusCreated || b.header.Get(core.DefaultReplayHeader) != "" {
			e.t.Errorf("clean request pipelined after a refused one: %s; want 201 fresh", b)
		} else {
			e.wantResultFor("clean pipelined request", b, body1)
		}
		e.wantRuns("refused then clean", 1, rulePipelined)
		row.retry = e.cleanRetry(k, body1, true)
	}},
}

// serverRefused is a case whose field lines the server may refuse (a
// malformed request) or pass on; either way the handler runs at most once
// and a refused request stores nothing.
func serverRefused(extra []string) func(e *hostileEnv, row *hostileRow) {
	return func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		a := e.doRaw([]string{keyLine(k)}, extra, body1)
		row.wire = append(row.wire, a.String())
		stored := false
		switch {
		case a.refusedByServer():
			e.wantRuns("refused by the server", 0, ruleServerOnly)
		case a.status == http.StatusCreated:
			e.wantResultFor("passed on by the server", a, body1)
			e.wantRuns("passed on by the server", 1, "docs/contract.md C-STATE-1: a new key runs the handler once")
			stored = true
		default:
			e.t.Errorf("field line %q: %s; want a refusal by the server, or 201", extra, a)
		}
		row.retry = e.cleanRetry(k, body1, stored)
	}
}

// chunkedRefused is a case with a malformed chunked body: refused, by the
// engine (400 invalid-body) or the server, and the connection closed.
func chunkedRefused(chunks string) func(e *hostileEnv, row *hostileRow) {
	return func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.dial()
		c.send(request([]string{keyLine(k)}, []string{"Transfer-Encoding: chunked"}, chunks))
		a := c.read(e.readTimeout + margin)
		row.wire = append(row.wire, a.String())
		e.wantProblem("malformed chunked body", a, http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused)
		if !a.closed && !a.timedOut && !c.waitClosed(e.readTimeout+margin) {
			e.t.Errorf("malformed chunked body: answered %s but the connection stays open; want it closed (the stream cannot be resynchronised)", a)
		}
		e.wantRuns("malformed chunked body", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}
}
