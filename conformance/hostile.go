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

// wantProblem checks a against the engine's problem of r (status,
// problem+json with code), or, when r.serverMay, a refusal by the server
// itself.
func (e *hostileEnv) wantProblem(what string, a answer, r refusal) {
	e.t.Helper()
	if r.serverMay && a.refusedByServer() {
		return
	}
	if a.timedOut || a.closed {
		e.t.Errorf("%s: %s; want %d %s (%s)", what, a, r.status, r.code, r.rule)
		return
	}
	e.env.wantProblem(what, reply{status: a.status, header: a.header, body: a.body}, r.status, r.code, "")
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
	run  hostileRun
}

type hostileRun = func(e *hostileEnv, row *hostileRow)

const (
	ruleKeyRefused  = "docs/contract.md C-KEY-2: an invalid key, or more than one field, → 400 invalid-key; the handler does not run"
	ruleBodyRefused = "docs/contract.md C-FP-2, C-FP-3: a body that cannot be read → 400 invalid-body (or the server refuses it); the handler does not run, nothing is stored"
	ruleTooLarge    = "docs/contract.md C-FP-2: a body over the limit → 413 body-too-large; the handler does not run, nothing is stored"
	ruleServerOnly  = "a request the server refuses never reaches the handler or the store"
	rulePipelined   = "docs/contract.md C-FP-3, C-ONCE-1: requests pipelined on one connection are served one after the other, one run per key"
	ruleNewKeyOnce  = "docs/contract.md C-STATE-1: a new key runs the handler once"
	ruleOneRun      = "docs/contract.md C-ONCE-1: one run per key"
	body1           = `{"amount":1200,"currency":"EUR"}`
)

// refusal is the engine's problem a request must get (status, code; rule
// says why), or, when serverMay, a refusal by the server itself.
type refusal struct {
	status    int
	code      string
	serverMay bool
	rule      string
}

var (
	invalidKey  = refusal{http.StatusBadRequest, core.CodeInvalidKey, false, ruleKeyRefused}
	invalidBody = refusal{http.StatusBadRequest, core.CodeInvalidBody, true, ruleBodyRefused}
	tooLarge    = refusal{http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, false, ruleTooLarge}
	mismatch    = refusal{http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, false, "docs/contract.md C-STATE-4: other fingerprint → 422"}
)

// orServer is r, or a refusal by the server itself.
func (r refusal) orServer() refusal {
	r.serverMay = true
	return r
}

// wantRefused checks that a is the refusal r and that the handler has not
// run.
func (e *hostileEnv) wantRefused(what string, a answer, r refusal) {
	e.t.Helper()
	e.wantProblem(what, a, r)
	e.wantRuns(what, 0, r.rule)
}

// wantCreated checks that a is the app's 201 (not a replay, when fresh)
// describing body, byte for byte. It reports whether a is a 201.
func (e *hostileEnv) wantCreated(what string, a answer, body string, fresh bool) bool {
	e.t.Helper()
	if a.status != http.StatusCreated || fresh && a.header.Get(core.DefaultReplayHeader) != "" {
		want := "201"
		if fresh {
			want = "201 fresh"
		}
		e.t.Errorf("%s: %s; want %s", what, a, want)
	} else {
		e.wantResultFor(what, a, body)
	}
	return a.status == http.StatusCreated
}

// wantServedOrRefused checks a request the server may refuse (as
// malformed) or pass on: refused, the handler has not run; passed on, the
// app answered 201 for body, and the handler ran once (rule). Any other
// answer is an error (want names what the case expects). It reports
// whether a response was stored.
func (e *hostileEnv) wantServedOrRefused(what string, a answer, body, rule, want string) bool {
	e.t.Helper()
	switch {
	case a.refusedByServer():
		e.wantRuns(what+", refused by the server", 0, ruleServerOnly)
	case a.status == http.StatusCreated:
		e.wantResultFor(what, a, body)
		e.wantRuns(what, 1, rule)
		return true
	default:
		e.t.Errorf("%s: %s; want %s", what, a, want)
	}
	return false
}

// wantClosed checks that the server closes c, on which it answered a,
// within wait: why says why it must.
func (c *conn) wantClosed(what string, a answer, wait time.Duration, why string) {
	c.e.t.Helper()
	if !a.closed && !a.timedOut && !c.waitClosed(wait) {
		c.e.t.Errorf("%s: answered %s but the connection stays open; want it closed%s", what, a, why)
	}
}

// saw records what a hostile request got, for the table.
func (r *hostileRow) saw(as ...answer) {
	for _, a := range as {
		r.wire = append(r.wire, a.String())
	}
}

// post sends a request with the key k, the field lines extra and body on
// a connection of its own.
func (e *hostileEnv) post(k string, extra []string, body string) *conn {
	e.t.Helper()
	c := e.dial()
	c.send(request([]string{keyLine(k)}, extra, body))
	return c
}

// answer reads the next response, waiting for the server's read deadline
// and margin.
func (c *conn) answer() answer { return c.read(c.e.readTimeout + margin) }

// afterContinue reads the answer to a request sent with Expect:
// 100-continue: if the server asks for the body (100 Continue, recorded in
// row), sendBody runs and the final answer is read.
func (c *conn) afterContinue(row *hostileRow, sendBody func()) answer {
	a := c.answer()
	if a.status == http.StatusContinue {
		row.saw(a)
		sendBody()
		a = c.answer()
	}
	return a
}

// sender sends a hostile request with the key k and returns its answer.
type sender func(e *hostileEnv, k string) answer

// whole sends a request with the field lines extra and all of body,
// declared or not, on a connection of its own.
func whole(extra []string, body string) sender {
	return func(e *hostileEnv, k string) answer { return e.doRaw([]string{keyLine(k)}, extra, body) }
}

// thenWait sends a request with the field lines extra and body, and waits
// for the answer without sending more.
func thenWait(extra []string, body string) sender {
	return func(e *hostileEnv, k string) answer { return e.post(k, extra, body).answer() }
}

// thenEOF sends a request with the field lines extra and body, then
// half-closes the connection: the server reads EOF.
func thenEOF(extra []string, body string) sender {
	return func(e *hostileEnv, k string) answer {
		c := e.post(k, extra, body)
		c.closeWrite()
		return c.answer()
	}
}

// refused is a case whose request, sent by send, must get the refusal r
// and leave nothing behind: the clean retry runs fresh.
func refused(what string, r refusal, send sender) hostileRun {
	return func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		a := send(e, k)
		row.saw(a)
		e.wantRefused(what, a, r)
		row.retry = e.cleanRetry(k, body1, false)
	}
}

// keyRefused is a case whose request carries the key lines lines and must
// be refused before the handler as r says (invalid-key, or also by the
// server). The clean retry uses the key the lines were built from.
func keyRefused(lines func(k string) []string, r refusal) hostileRun {
	return refused("hostile key", r, func(e *hostileEnv, k string) answer { return e.doRaw(lines(k), nil, body1) })
}

// servedOrRefused is a case whose field lines extra the server may refuse
// (a malformed request) or pass on; either way the handler runs at most
// once (rule), and a refused request stores nothing.
func servedOrRefused(what string, extra []string, rule, want string) hostileRun {
	return func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		a := e.doRaw([]string{keyLine(k)}, extra, body1)
		row.saw(a)
		row.retry = e.cleanRetry(k, body1, e.wantServedOrRefused(what, a, body1, rule, want))
	}
}

// badFieldName is a case with the malformed field line line.
func badFieldName(line string) hostileRun {
	return servedOrRefused(fmt.Sprintf("field line %q", line), []string{line}, ruleNewKeyOnce, "a refusal by the server, or 201")
}

// chunkedRefused is a case with a malformed chunked body: refused, by the
// engine (400 invalid-body) or the server, and the connection closed.
func chunkedRefused(chunks string) hostileRun {
	return func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		c := e.post(k, []string{"Transfer-Encoding: chunked"}, chunks)
		a := c.answer()
		row.saw(a)
		e.wantProblem("malformed chunked body", a, invalidBody)
		c.wantClosed("malformed chunked body", a, e.readTimeout+margin, " (the stream cannot be resynchronised)")
		e.wantRuns("malformed chunked body", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}
}

// overLimitChunks is a chunked body of twice the limit, in four chunks.
func overLimitChunks() string {
	var b strings.Builder
	for i := 0; i < 4; i++ {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", hostileMaxBody/2, strings.Repeat("y", hostileMaxBody/2))
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

func contentLength(n int) string { return "Content-Length: " + strconv.Itoa(n) }

var hostileCases = []hostileCase{
	{"Key/DuplicateSameValue", keyRefused(func(k string) []string { return []string{keyLine(k), keyLine(k)} }, invalidKey)},
	{"Key/DuplicateDifferentValues", func(e *hostileEnv, row *hostileRow) {
		k, k2 := newKey(), newKey()
		a := e.doRaw([]string{keyLine(k), keyLine(k2)}, nil, body1)
		row.saw(a)
		e.wantRefused("two Idempotency-Key fields, different values", a, invalidKey)
		row.retry = e.cleanRetry(k, body1, false)
		e.cleanRetry(k2, body1, false)
	}},
	{"Key/DuplicateOneEmpty", keyRefused(func(k string) []string { return []string{keyLine(k), core.KeyHeader + ":"} }, invalidKey)},
	{"Key/InvalidSfString", keyRefused(func(k string) []string { return []string{core.KeyHeader + `: "` + k + `"x"`} }, invalidKey)},
	{"Key/TooLong", keyRefused(func(k string) []string {
		return []string{core.KeyHeader + ": " + k + strings.Repeat("x", core.DefaultMaxKeyLength+1-len(k))}
	}, invalidKey)},
	{"Key/TabInside", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\tx\""} }, invalidKey)},
	{"Key/ControlByte", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\x01x\""} }, invalidKey.orServer())},
	{"Key/NULByte", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\x00x\""} }, invalidKey.orServer())},
	{"Key/DEL", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\x7fx\""} }, invalidKey.orServer())},
	{"Key/ObsFoldContinuation", keyRefused(func(k string) []string {
		return []string{keyLine(k), "  \"continued\""}
	}, invalidKey.orServer())},
	{"Key/Empty", keyRefused(func(k string) []string { return []string{core.KeyHeader + ":"} }, invalidKey)},
	{"Key/BareCR", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": \"" + k + "\rx\""} }, invalidKey.orServer())},
	{"Key/DuplicateCaseVariants", keyRefused(func(k string) []string {
		return []string{"idempotency-key: " + core.FormatKey(k), "IDEMPOTENCY-KEY: " + core.FormatKey(k)}
	}, invalidKey)},
	{"Key/Huge", keyRefused(func(k string) []string { return []string{core.KeyHeader + ": " + k + strings.Repeat("h", 12<<10)} }, invalidKey.orServer())},
	{"Chunked/TrailerKey", func(e *hostileEnv, row *hostileRow) {
		// A key field in the chunked trailer: a server that keeps trailers
		// apart (net/http) guards the request with the header's key; one
		// that merges them into the header (fasthttp) gives the engine two
		// fields, refused. Either way one run at most, and the retry agrees.
		k, other := newKey(), newKey()
		chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n%s\r\n\r\n", len(body1), body1, keyLine(other))
		a := e.doRaw([]string{keyLine(k)}, []string{"Transfer-Encoding: chunked", "Trailer: Idempotency-Key"}, chunked)
		row.saw(a)
		stored := false
		if a.status != http.StatusCreated && !a.refusedByServer() {
			e.wantRefused("key in the trailer", a, invalidKey)
		} else {
			stored = e.wantServedOrRefused("key in the trailer", a, body1, ruleNewKeyOnce, "")
		}
		row.retry = e.cleanRetry(k, body1, stored)
		e.cleanRetry(other, body1, false)
	}},
	{"Header/ContentLengthConflict", func(e *hostileEnv, row *hostileRow) {
		// Two lengths: the server refuses the request (RFC 9112 §6.3), or
		// frames it by one of them; never two runs, and what is stored is
		// the response to the body as framed.
		k := newKey()
		c := e.post(k, []string{"Content-Length: 5", contentLength(len(body1))}, body1)
		a := c.answer()
		row.saw(a)
		framed := body1
		if r, _ := bodyOf(a.body); a.status == http.StatusCreated && r.BodyLen == 5 {
			framed = body1[:5]
		}
		stored := e.wantServedOrRefused("conflicting Content-Length", a, framed, ruleOneRun, "a refusal by the server, or 201 for the body as framed")
		if stored {
			c.waitClosed(e.readTimeout + margin)
		}
		row.retry = e.cleanRetry(k, framed, stored)
	}},
	{"Header/ContentLengthDuplicateSame", servedOrRefused("duplicated Content-Length",
		[]string{contentLength(len(body1)), contentLength(len(body1))}, ruleOneRun, "201 or a refusal by the server")},
	// Within the limit, but larger than a streaming server reads before it
	// calls the handler: the cut reaches the middleware while it reads the
	// stream.
	{"Body/LargeCutThenHalfClose", refused("large body cut short, then EOF", invalidBody,
		thenEOF([]string{contentLength(hostileMaxBody - 1)}, strings.Repeat("c", hostileMaxBody/2)))},
	{"Body/OverLimitDeclaredThenCut", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		a := thenEOF([]string{contentLength(4 * hostileMaxBody)}, strings.Repeat("c", hostileMaxBody/2))(e, k)
		row.saw(a)
		if a.status != http.StatusBadRequest || problemCode(a) != core.CodeInvalidBody {
			e.wantProblem("Content-Length over the limit, body cut short", a, tooLarge.orServer())
		}
		e.wantRuns("declared over the limit, cut short", 0, ruleTooLarge)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	// Content-Type is no part of the fingerprint (docs/contract.md C-FP-1):
	// the request runs once and its response is stored, or the server
	// refuses it.
	{"Header/DuplicateContentType", servedOrRefused("duplicated Content-Type",
		[]string{"Content-Type: application/json", "Content-Type: text/plain"}, ruleNewKeyOnce,
		"201 (Content-Type is no part of the fingerprint) or a refusal by the server")},
	{"Header/NameWithSpace", badFieldName("X Bad: v")},
	{"Header/NameWithNUL", badFieldName("X-B\x00ad: v")},
	{"Header/NameWithColonOnly", badFieldName(": v")},
	{"Header/NameNonASCII", badFieldName("X-Caf\xc3\xa9: v")},
	{"Body/ShortThenHalfClose", refused("body shorter than Content-Length, then EOF", invalidBody,
		thenEOF([]string{contentLength(100)}, body1))},
	{"Body/ShortThenStall", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		start := time.Now()
		c := e.post(k, []string{contentLength(100)}, body1)
		a := c.answer()
		row.saw(a)
		if a.timedOut {
			e.t.Errorf("body shorter than Content-Length, then silence: no answer and the connection still open after %v; want it cut off at the read deadline (%v)", time.Since(start).Round(time.Millisecond), e.readTimeout)
		} else {
			e.wantProblem("body shorter than Content-Length, then silence", a, invalidBody)
			c.wantClosed("body cut off at the read deadline", a, margin, " (the rest of the body can never be told from a next request)")
		}
		e.wantRuns("stalled body", 0, ruleBodyRefused)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/Trickle", func(e *hostileEnv, row *hostileRow) {
		k := newKey()
		start := time.Now()
		big := strings.Repeat(" ", 200) // 200 bytes at one per 50 ms: ten seconds
		c := e.post(k, []string{contentLength(len(big))}, "")
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
		a := c.answer()
		close(stop)
		wg.Wait()
		elapsed := time.Since(start)
		row.wire = append(row.wire, a.String()+" after "+elapsed.Round(100*time.Millisecond).String())
		if a.timedOut {
			e.t.Errorf("a body trickled at 20 bytes/s: still being read after %v; want it cut off at the read deadline (%v)", elapsed.Round(time.Millisecond), e.readTimeout)
		} else {
			e.wantProblem("a body trickled past the read deadline", a, invalidBody)
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
		row.saw(a)
		e.wantCreated("body followed by extra bytes", a, body1, false)
		b := c.answer()
		row.saw(b)
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
		row.saw(a, b)
		e.wantCreated("first of two requests in one write", a, body1, false)
		e.wantProblem("second request, same key, other body", b, mismatch)
		e.wantRuns("two requests in one write", 1, rulePipelined)
		row.retry = e.cleanRetry(k, body1, true)
	}},
	{"Chunked/MalformedSize", chunkedRefused("zz\r\n" + body1 + "\r\n0\r\n\r\n")},
	{"Chunked/NegativeSize", chunkedRefused("-5\r\nhello\r\n0\r\n\r\n")},
	{"Chunked/SizeOverflow", chunkedRefused("fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n")},
	{"Chunked/SizeLargerThanData", refused("chunk cut short, then EOF", invalidBody,
		thenEOF([]string{"Transfer-Encoding: chunked"}, "64\r\n"+body1))},
	{"Chunked/WithContentLength", func(e *hostileEnv, row *hostileRow) {
		// The request smuggling shape: a server that read the body by
		// Content-Length would take the second request for body bytes, one
		// that reads it chunked serves two requests. Either way, or
		// refused: never two runs for the key, never a record of the
		// other reading.
		k := newKey()
		second := request([]string{keyLine(k)}, nil, body1)
		chunked := "0\r\n\r\n" + second
		c := e.post(k, []string{contentLength(len(chunked)), "Transfer-Encoding: chunked"}, chunked)
		a := c.answer()
		row.saw(a)
		switch {
		case a.refusedByServer():
			e.wantRuns("Content-Length with Transfer-Encoding, refused", 0, ruleServerOnly)
			c.wantClosed("Content-Length with Transfer-Encoding", a, margin, "")
		case a.status == http.StatusCreated:
			// Read as chunked: an empty body, then the smuggled request,
			// another body under the same key: 422.
			e.wantResultFor("Content-Length with Transfer-Encoding, read chunked", a, "")
			b := c.answer()
			row.saw(b)
			if !b.closed {
				e.wantProblem("the smuggled request", b, mismatch)
			}
			e.wantRuns("Content-Length with Transfer-Encoding", 1, ruleOneRun)
			row.retry = e.cleanRetry(k, "", true) + " (empty body)"
			return
		default:
			e.t.Errorf("Content-Length with Transfer-Encoding: %s; want a refusal by the server, or 201 for the chunked reading", a)
		}
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Body/OverLimitDeclared", refused("body over the limit, declared", tooLarge,
		whole(nil, strings.Repeat("x", 2*hostileMaxBody)))},
	// The length alone is over the limit: refused before a body byte is
	// read.
	{"Body/OverLimitDeclaredNotSent", refused("Content-Length over the limit, body not sent", tooLarge.orServer(),
		thenWait([]string{contentLength(100 * hostileMaxBody)}, ""))},
	{"Body/OverLimitChunked", refused("chunked body over the limit", tooLarge,
		whole([]string{"Transfer-Encoding: chunked"}, overLimitChunks()))},
	{"Body/ChunkedWithinLimit", func(e *hostileEnv, row *hostileRow) {
		// A chunked body the limit allows is fingerprinted as its
		// de-chunked bytes: a retry sending them with Content-Length
		// replays it.
		k := newKey()
		a := e.doRaw([]string{keyLine(k)}, []string{"Transfer-Encoding: chunked"}, "5\r\n"+body1[:5]+"\r\n"+strconv.FormatInt(int64(len(body1)-5), 16)+"\r\n"+body1[5:]+"\r\n0\r\n\r\n")
		row.saw(a)
		row.retry = e.cleanRetry(k, body1, e.wantCreated("chunked body within the limit", a, body1, false))
	}},
	{"Expect/ContinueThenCut", func(e *hostileEnv, row *hostileRow) {
		// The client waits for 100 Continue, which the server sends when
		// the body is first read, then sends part of the body and goes.
		k := newKey()
		c := e.post(k, []string{"Expect: 100-continue", contentLength(100)}, "")
		a := c.afterContinue(row, func() {
			c.send(body1)
			c.closeWrite()
		})
		row.saw(a)
		e.wantRefused("100 Continue, then a body cut short", a, invalidBody)
		row.retry = e.cleanRetry(k, body1, false)
	}},
	{"Expect/ContinueOverLimit", func(e *hostileEnv, row *hostileRow) {
		// A length over the limit is refused before the body is asked for
		// (a server that sends 100 Continue on its own then waits for the
		// body the client never sends).
		k := newKey()
		c := e.post(k, []string{"Expect: 100-continue", contentLength(4 * hostileMaxBody)}, "")
		a := c.afterContinue(row, func() {})
		row.saw(a)
		e.wantRefused("Expect: 100-continue with a length over the limit", a, tooLarge.orServer())
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
			a := c.answer()
			row.saw(a)
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
		row.saw(first)
		e.wantCreated("first of three pipelined duplicates", first, body1, true)
		for i := 2; i <= 3; i++ {
			a := c.read(10 * time.Second)
			row.saw(a)
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
		row.saw(a, b)
		e.wantProblem("duplicated key, pipelined", a, invalidKey)
		e.wantCreated("clean request pipelined after a refused one", b, body1, true)
		e.wantRuns("refused then clean", 1, rulePipelined)
		row.retry = e.cleanRetry(k, body1, true)
	}},
}
