package conformance

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// Headers the suite's app reads to decide how to answer. They are request
// headers, so they are not part of the fingerprint.
const (
	hdrStatus      = "X-Test-Status"       // status to answer (default 201)
	hdrDelay       = "X-Test-Delay-Ms"     // sleep before answering
	hdrHold        = "X-Test-Hold"         // wait until the test calls env.release (at most holdLimit)
	hdrPanic       = "X-Test-Panic"        // panic instead of answering
	hdrBytes       = "X-Test-Bytes"        // answer N pseudo-random binary bytes instead of JSON
	hdrCookie      = "X-Test-Cookie"       // add a Set-Cookie header
	hdrGzip        = "X-Test-Gzip"         // gzip the body and set Content-Encoding, as a compression layer would
	hdrDeclare     = "X-Test-Declare"      // "applied" or "not-applied": declare the outcome with core.MarkApplied / MarkNotApplied
	hdrUntilCancel = "X-Test-Until-Cancel" // wait until the request is cancelled (at most cancelLimit), then return writing nothing
	scopeHdr       = "X-Api-Key"
)

// appResult is the JSON body the suite's app answers with.
type appResult struct {
	Execution     int64  `json:"execution"`
	BodyLen       int    `json:"body_len"`
	BodySHA       string `json:"body_sha"`
	ContentLength int64  `json:"content_length"`
	Method        string `json:"method"`
}

// app is the handler the suite mounts behind the middleware under test.
type app struct {
	runs      atomic.Int64
	cancelled atomic.Int64  // requests the app saw cancelled (hdrUntilCancel)
	gate      chan struct{} // closed by env.release: held requests answer
}

// cancelLimit bounds how long an hdrUntilCancel request waits for its
// cancellation: a framework that never cancels a request (fiber) then
// gets a handler that returns without writing, uncancelled.
const cancelLimit = 2 * time.Second

// holdLimit bounds how long a held request waits for env.release, so a
// failing test cannot hang the suite.
const holdLimit = 15 * time.Second

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.runs.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if d, _ := strconv.Atoi(r.Header.Get(hdrDelay)); d > 0 {
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	if r.Header.Get(hdrHold) != "" {
		select {
		case <-a.gate:
		case <-time.After(holdLimit):
		}
	}
	if r.Header.Get(hdrUntilCancel) != "" {
		select {
		case <-r.Context().Done():
			a.cancelled.Add(1)
		case <-time.After(cancelLimit):
		}
		return // nothing written
	}
	if r.Header.Get(hdrPanic) != "" {
		panic("conformance: app panics on purpose")
	}
	switch r.Header.Get(hdrDeclare) {
	case "applied":
		if !core.MarkApplied(r.Context()) {
			http.Error(w, "core.MarkApplied: the request context carries no claim", http.StatusTeapot)
			return
		}
	case "not-applied":
		if !core.MarkNotApplied(r.Context()) {
			http.Error(w, "core.MarkNotApplied: the request context carries no claim", http.StatusTeapot)
			return
		}
	}
	status := http.StatusCreated
	if s, _ := strconv.Atoi(r.Header.Get(hdrStatus)); s != 0 {
		status = s
	}
	h := w.Header()
	h.Set("Location", "/things/"+strconv.FormatInt(n, 10))
	h.Add("X-Multi", "one")
	h.Add("X-Multi", "two, three")
	if r.Header.Get(hdrCookie) != "" {
		h.Set("Set-Cookie", "session=secret; HttpOnly")
	}
	if nb, _ := strconv.Atoi(r.Header.Get(hdrBytes)); nb > 0 {
		h.Set("Content-Type", "application/octet-stream")
		w.WriteHeader(status)
		w.Write(binaryBody(nb, n))
		return
	}
	sum := sha256.Sum256(body)
	out, _ := json.Marshal(appResult{Execution: n, BodyLen: len(body), BodySHA: hex.EncodeToString(sum[:]), ContentLength: r.ContentLength, Method: r.Method})
	h.Set("Content-Type", "application/json")
	if r.Header.Get(hdrGzip) != "" {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(out)
		zw.Close()
		out = zb.Bytes()
		h.Set("Content-Encoding", "gzip")
		h.Set("Vary", "Accept-Encoding")
	}
	w.WriteHeader(status)
	w.Write(out)
}

// binaryBody returns n bytes that include NUL, invalid UTF-8 and every byte
// value, different for every execution.
func binaryBody(n int, seed int64) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	if n >= 4 {
		copy(b, []byte{0x00, 0xff, 0xfe, 0xc3})
	}
	return b
}

// env is one subtest's world: an app, an engine, a server and an event log.
type env struct {
	t      *testing.T
	app    *app
	base   string
	events *eventLog
	store  *faultStore
}

type eventLog struct {
	mu  sync.Mutex
	evs []core.Event
}

func (l *eventLog) Observe(_ context.Context, ev core.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

func (l *eventLog) outcomes() []core.Outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []core.Outcome
	for _, ev := range l.evs {
		out = append(out, ev.Outcome)
	}
	return out
}

func (l *eventLog) all() []core.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]core.Event(nil), l.evs...)
}

// faultStore wraps the store under test and can make its calls fail as an
// unreachable backend would.
type faultStore struct {
	core.Store
	failClaim    atomic.Bool
	lateClaim    atomic.Bool // Claim runs, but its caller gets an error (a timed-out call that landed)
	failComplete atomic.Bool
}

var errInjected = fmt.Errorf("conformance: injected outage: %w", core.ErrStoreUnavailable)

func (s *faultStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if s.failClaim.Load() {
		return core.Claim{}, errInjected
	}
	if s.lateClaim.Load() {
		s.Store.Claim(ctx, req)
		return core.Claim{}, errInjected
	}
	return s.Store.Claim(ctx, req)
}

func (s *faultStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if s.failComplete.Load() {
		return errInjected
	}
	return s.Store.Complete(ctx, key, token, resp, ttl)
}

func newEnv(t *testing.T, h Harness, opts ...core.Option) *env {
	t.Helper()
	e := &env{t: t, app: &app{gate: make(chan struct{})}, events: &eventLog{}}
	e.store = &faultStore{Store: h.NewStore(t)}
	all := append([]core.Option{core.WithHeaderScope(scopeHdr), core.WithObserver(e.events)}, opts...)
	engine := core.New(e.store, all...)
	e.base = strings.TrimRight(h.NewServer(t, engine, e.app), "/")
	return e
}

// reply is a response as the suite reads it.
type reply struct {
	status int
	header http.Header
	body   []byte
	err    error
}

type req struct {
	method string
	path   string // with query
	key    string // Idempotency-Key field value; "" means none
	keys   []string
	body   []byte
	header map[string]string
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 20 * time.Second}

func (e *env) do(r req) reply {
	return e.doCtx(context.Background(), r)
}

// doCtx sends r with ctx, so a test can give up on a request as a client
// with a timeout does.
func (e *env) doCtx(ctx context.Context, r req) reply {
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	path := r.path
	if path == "" {
		path = "/things"
	}
	hr, err := http.NewRequestWithContext(ctx, method, e.base+path, bytes.NewReader(r.body))
	if err != nil {
		e.t.Fatalf("building request: %v", err)
	}
	if r.key != "" {
		hr.Header.Set(core.KeyHeader, r.key)
	}
	for _, k := range r.keys {
		hr.Header.Add(core.KeyHeader, k)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := client.Do(hr)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// raw sends a hand-written HTTP/1.1 request, for header values that Go's
// client refuses to send.
func (e *env) raw(keyLines []string, body string) reply {
	u, err := url.Parse(e.base)
	if err != nil {
		e.t.Fatalf("parsing base URL: %v", err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return reply{err: err}
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "POST /things HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n", u.Host, len(body))
	for _, l := range keyLines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return reply{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: rb, err: err}
}

func newKey() string {
	var b [12]byte
	rand.Read(b[:])
	return "k-" + hex.EncodeToString(b[:])
}

func (e *env) runs() int64 { return e.app.runs.Load() }

// Assertion helpers. Each names the rule of docs/contract.md (by id) a failure breaks.

func (e *env) wantStatus(what string, r reply, want int, rule string) {
	e.t.Helper()
	if r.err != nil {
		e.t.Errorf("%s: transport error %v; want status %d (%s)", what, r.err, want, rule)
		return
	}
	if r.status != want {
		e.t.Errorf("%s: status %d; want %d (%s); body %.300q", what, r.status, want, rule, r.body)
	}
}

func (e *env) wantRuns(what string, want int64, rule string) {
	e.t.Helper()
	if got := e.runs(); got != want {
		e.t.Errorf("%s: handler ran %d times; want %d (%s)", what, got, want, rule)
	}
}

func (e *env) wantProblem(what string, r reply, status int, code, rawKey string) {
	e.t.Helper()
	e.wantStatus(what, r, status, "docs/contract.md C-ERR-1: error status for "+code)
	if r.err != nil {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Errorf("%s: Content-Type %q; want application/problem+json (docs/contract.md C-ERR-1, RFC 9457)", what, ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("%s: Cache-Control %q; want no-store (docs/contract.md C-ERR-1)", what, cc)
	}
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Errorf("%s: problem body %q is not JSON: %v (docs/contract.md C-ERR-1)", what, r.body, err)
		return
	}
	for _, m := range []string{"type", "title", "status", "detail", "code"} {
		if _, ok := p[m]; !ok {
			e.t.Errorf("%s: problem body %s lacks member %q (docs/contract.md C-ERR-1)", what, r.body, m)
		}
	}
	if got, _ := p["code"].(string); got != code {
		e.t.Errorf("%s: problem code %q; want %q (docs/contract.md C-ERR-1: stable codes)", what, got, code)
	}
	if got, _ := p["status"].(float64); int(got) != status {
		e.t.Errorf("%s: problem status member %v; want %d (RFC 9457)", what, p["status"], status)
	}
	if typ, _ := p["type"].(string); !strings.HasSuffix(typ, code) {
		e.t.Errorf("%s: problem type %q does not name code %q (docs/contract.md C-ERR-1)", what, typ, code)
	}
	if rawKey != "" && bytes.Contains(r.body, []byte(rawKey)) {
		e.t.Errorf("%s: problem body %s echoes the raw key (docs/contract.md C-ERR-1: never echo the key)", what, r.body)
	}
}

func (e *env) wantReplay(what string, first, again reply) {
	e.t.Helper()
	e.wantStatus(what, again, first.status, "docs/contract.md C-STATE-3: replay: stored status")
	if again.err != nil || first.err != nil {
		return
	}
	if got := again.header.Get(core.DefaultReplayHeader); got != "true" {
		e.t.Errorf("%s: %s = %q; want \"true\" (docs/contract.md C-STATE-3: replay header)", what, core.DefaultReplayHeader, got)
	}
	if !bytes.Equal(first.body, again.body) {
		e.t.Errorf("%s: replayed body differs from the first (%d vs %d bytes) (docs/contract.md C-STATE-3: replay byte for byte)", what, len(again.body), len(first.body))
	}
	for _, name := range []string{"Location", "Content-Type", "X-Multi"} {
		if f, a := first.header.Values(name), again.header.Values(name); strings.Join(f, "\x00") != strings.Join(a, "\x00") {
			e.t.Errorf("%s: replayed header %s = %q; want %q (docs/contract.md C-REPLAY-1: stored headers, all values)", what, name, a, f)
		}
	}
}

func (e *env) wantFresh(what string, r reply) {
	e.t.Helper()
	if r.err == nil && r.header.Get(core.DefaultReplayHeader) != "" {
		e.t.Errorf("%s: response carries %s; want a fresh execution", what, core.DefaultReplayHeader)
	}
}

// TestMiddleware drives a server built by h through every row of the
// idempotency contract (docs/contract.md, C-REQ-1 to C-ERR-3): which requests are guarded, key
// parsing, fingerprints and scopes, the state machine, the completion
// policy, store failures and the problem+json errors. It checks statuses,
// headers, bodies and how many times the handler ran.
func TestMiddleware(t *testing.T, h Harness) {
	if h.NewStore == nil || h.NewServer == nil {
		t.Fatal("conformance: TestMiddleware needs Harness.NewStore and Harness.NewServer")
	}
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t)
		})
	}

	run("Methods/UnguardedPassThrough", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		for i := 0; i < 2; i++ {
			r := e.do(req{method: http.MethodGet, key: k})
			e.wantStatus("GET with key", r, http.StatusCreated, "docs/contract.md C-REQ-1: unguarded methods pass through")
			e.wantFresh("GET with key", r)
		}
		e.wantRuns("two GETs", 2, "docs/contract.md C-REQ-1: unguarded methods pass through")
	})

	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		run("Methods/Guarded"+m[:1]+strings.ToLower(m[1:]), func(t *testing.T) {
			e := newEnv(t, h)
			k := newKey()
			first := e.do(req{method: m, key: k, body: []byte(`{"a":1}`)})
			e.wantStatus(m+" first", first, http.StatusCreated, "docs/contract.md C-STATE-1: new key runs the handler")
			again := e.do(req{method: m, key: k, body: []byte(`{"a":1}`)})
			e.wantReplay(m+" retry", first, again)
			e.wantRuns(m+" twice", 1, "docs/contract.md C-REQ-1: default guarded methods")
		})
	}

	run("Key/MissingRequired", func(t *testing.T) {
		e := newEnv(t, h)
		r := e.do(req{body: []byte(`{}`)})
		e.wantProblem("POST without key", r, http.StatusBadRequest, core.CodeMissingKey, "")
		e.wantRuns("POST without key", 0, "docs/contract.md C-KEY-3: missing key → 400, handler not run")
	})

	run("Key/MissingOptional", func(t *testing.T) {
		e := newEnv(t, h, core.WithKeyRequired(false))
		for i := 0; i < 2; i++ {
			r := e.do(req{body: []byte(`{}`)})
			e.wantStatus("POST without key, optional", r, http.StatusCreated, "docs/contract.md C-KEY-3: missing optional key passes through")
			e.wantFresh("POST without key, optional", r)
		}
		e.wantRuns("two keyless POSTs", 2, "docs/contract.md C-KEY-3: keyless requests never share a record")
	})

	// serverMayRefuse marks field values that an HTTP server may refuse on
	// its own (RFC 9110 forbids control characters) before any middleware.
	invalid := []struct {
		name, line, secret string
		serverMayRefuse    bool
	}{
		{"EmptyBare", "Idempotency-Key: ", "", false},
		{"EmptyQuoted", `Idempotency-Key: ""`, "", false},
		{"TooLong", "Idempotency-Key: " + strings.Repeat("a", 256), strings.Repeat("a", 256), false},
		{"TooLongQuoted", `Idempotency-Key: "` + strings.Repeat("b", 256) + `"`, strings.Repeat("b", 256), false},
		{"ControlChar", "Idempotency-Key: \"ab\x01cd-secret\"", "cd-secret", true},
		{"NonASCII", "Idempotency-Key: \"caf\xc3\xa9-secret\"", "secret", false},
		{"Unterminated", `Idempotency-Key: "abc-secret`, "abc-secret", false},
		{"BadEscape", `Idempotency-Key: "a\qb-secret"`, "b-secret", false},
		{"Parameters", `Idempotency-Key: "abc-secret";v=1`, "abc-secret", false},
		{"BareSpace", "Idempotency-Key: abc def-secret", "def-secret", false},
		{"List", `Idempotency-Key: "a-secret", "b-secret"`, "a-secret", false},
	}
	for _, tc := range invalid {
		run("Key/Invalid/"+tc.name, func(t *testing.T) {
			e := newEnv(t, h)
			r := e.raw([]string{tc.line}, `{}`)
			if tc.serverMayRefuse && r.err == nil && r.status == http.StatusBadRequest && r.header.Get("Content-Type") != "application/problem+json" {
				e.wantRuns("key "+tc.name+" refused by the server", 0, "docs/contract.md C-KEY-2: invalid key → 400, handler not run")
				return
			}
			e.wantProblem("key "+tc.name, r, http.StatusBadRequest, core.CodeInvalidKey, tc.secret)
			e.wantRuns("key "+tc.name, 0, "docs/contract.md C-KEY-2: invalid key → 400, handler not run")
		})
	}

	run("Key/TwoFields", func(t *testing.T) {
		e := newEnv(t, h)
		r := e.do(req{keys: []string{`"a1"`, `"a2"`}, body: []byte(`{}`)})
		e.wantProblem("two Idempotency-Key fields", r, http.StatusBadRequest, core.CodeInvalidKey, "")
		e.wantRuns("two fields", 0, "docs/contract.md C-KEY-2: more than one field → 400")
	})

	run("Key/MaxLengthAccepted", func(t *testing.T) {
		e := newEnv(t, h)
		k := strings.Repeat("z", core.DefaultMaxKeyLength-8) + newKey()[:8]
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.wantStatus("255-character key", r, http.StatusCreated, "docs/contract.md C-KEY-2: keys up to 255 characters are valid")
	})

	run("Key/QuotedAndBareAreOneKey", func(t *testing.T) {
		e := newEnv(t, h)
		k := "8e03978e-40d5-43e8-bc93-" + newKey()[2:14]
		first := e.do(req{key: core.FormatKey(k), body: []byte(`{"x":1}`)})
		e.wantStatus("quoted key", first, http.StatusCreated, "docs/contract.md C-KEY-1: sf-string key")
		again := e.do(req{key: k, body: []byte(`{"x":1}`)})
		e.wantReplay("bare form of the same key", first, again)
		e.wantRuns("quoted then bare", 1, "docs/contract.md C-KEY-1: \"abc\" and abc are the same key")
	})

	run("Key/QuotedEscapes", func(t *testing.T) {
		e := newEnv(t, h)
		k := `q"uo\te ` + newKey()
		first := e.do(req{key: core.FormatKey(k), body: []byte(`{}`)})
		e.wantStatus("escaped quoted key", first, http.StatusCreated, "docs/contract.md C-KEY-1: \\\" and \\\\ escapes")
		again := e.do(req{key: core.FormatKey(k), body: []byte(`{}`)})
		e.wantReplay("escaped quoted key retry", first, again)
	})

	run("Key/Strict", func(t *testing.T) {
		e := newEnv(t, h, core.WithStrictKeys(true))
		k := newKey()
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.wantProblem("bare key in strict mode", r, http.StatusBadRequest, core.CodeInvalidKey, k)
		r = e.do(req{key: core.FormatKey(k), body: []byte(`{}`)})
		e.wantStatus("quoted key in strict mode", r, http.StatusCreated, "docs/contract.md C-KEY-1: strict mode accepts sf-strings")
	})

	run("Body/TooLarge", func(t *testing.T) {
		e := newEnv(t, h, core.WithMaxBodyBytes(1024))
		k := newKey()
		r := e.do(req{key: k, body: bytes.Repeat([]byte("x"), 2048)})
		e.wantProblem("2 KiB body over a 1 KiB limit", r, http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, k)
		e.wantRuns("oversized body", 0, "docs/contract.md C-FP-2: body over limit → 413, handler not run")
		r = e.do(req{key: k, body: []byte(`{"small":true}`)})
		e.wantStatus("same key, small body", r, http.StatusCreated, "docs/contract.md C-FP-2: 413 stores nothing")
		e.wantFresh("same key, small body", r)
	})

	run("Body/HandlerSeesWholeBody", func(t *testing.T) {
		e := newEnv(t, h)
		body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
		r := e.do(req{key: newKey(), body: body})
		e.wantStatus("64 KiB body", r, http.StatusCreated, "docs/contract.md C-FP-2")
		var res appResult
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatalf("app body %q: %v", r.body, err)
		}
		sum := sha256.Sum256(body)
		if res.BodyLen != len(body) || res.BodySHA != hex.EncodeToString(sum[:]) {
			t.Errorf("handler saw %d bytes (sha %s); want %d bytes (sha %x) (docs/contract.md C-FP-1: the handler sees the whole body)", res.BodyLen, res.BodySHA, len(body), sum)
		}
		if res.ContentLength != int64(len(body)) {
			t.Errorf("handler saw ContentLength %d; want %d (docs/contract.md C-FP-1: the handler sees the body's length)", res.ContentLength, len(body))
		}
	})

	run("Replay/Exact", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		first := e.do(req{key: k, body: []byte(`{"amount":1200}`)})
		e.wantStatus("first", first, http.StatusCreated, "docs/contract.md C-STATE-1: new key")
		e.wantFresh("first", first)
		for i := 0; i < 3; i++ {
			again := e.do(req{key: k, body: []byte(`{"amount":1200}`)})
			e.wantReplay(fmt.Sprintf("retry %d", i+1), first, again)
		}
		e.wantRuns("first and three retries", 1, "docs/contract.md C-STATE-3: replay never re-runs the handler")
	})

	run("Replay/BinaryBody", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		hdr := map[string]string{hdrBytes: "70000"}
		first := e.do(req{key: k, body: []byte("payload"), header: hdr})
		e.wantStatus("binary response", first, http.StatusCreated, "docs/contract.md C-STATE-3")
		if len(first.body) != 70000 {
			t.Errorf("first body %d bytes; want 70000", len(first.body))
		}
		again := e.do(req{key: k, body: []byte("payload"), header: hdr})
		e.wantReplay("binary replay (NUL, invalid UTF-8)", first, again)
	})

	run("Replay/EmptyBody", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		hdr := map[string]string{hdrStatus: "204"}
		first := e.do(req{key: k, header: hdr})
		e.wantStatus("204", first, http.StatusNoContent, "docs/contract.md C-STATE-3")
		again := e.do(req{key: k, header: hdr})
		e.wantReplay("204 replay", first, again)
		e.wantRuns("204 twice", 1, "docs/contract.md C-STATE-3")
	})

	run("Replay/SetCookieNotStored", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		hdr := map[string]string{hdrCookie: "1"}
		first := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		if first.err == nil && first.header.Get("Set-Cookie") == "" {
			t.Errorf("first response lost its Set-Cookie; want it delivered (docs/contract.md C-REPLAY-1: the first response is sent as is)")
		}
		again := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantReplay("replay", first, again)
		if c := again.header.Get("Set-Cookie"); c != "" {
			t.Errorf("replay carries Set-Cookie %q; want none (docs/contract.md C-REPLAY-1: stored headers exclude Set-Cookie)", c)
		}
	})

	run("Replay/CompressedBody", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		// Asking for gzip ourselves keeps Go's client from decompressing, so
		// the raw bytes and Content-Encoding are what we compare.
		hdr := map[string]string{hdrGzip: "1", "Accept-Encoding": "gzip"}
		first := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantStatus("gzip response", first, http.StatusCreated, "docs/contract.md C-STATE-3")
		again := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantReplay("gzip replay", first, again)
		if again.err == nil && (again.header.Get("Content-Encoding") != "gzip" || again.header.Get("Vary") != "Accept-Encoding") {
			t.Errorf("replayed Content-Encoding %q Vary %q; want gzip and Accept-Encoding (docs/contract.md C-STATE-3: a gzip body replayed without its Content-Encoding)", again.header.Get("Content-Encoding"), again.header.Get("Vary"))
		}
		if again.err == nil {
			zr, err := gzip.NewReader(bytes.NewReader(again.body))
			if err != nil {
				t.Errorf("replayed gzip body does not decompress: %v (docs/contract.md C-STATE-3)", err)
			} else if plain, err := io.ReadAll(zr); err != nil || !json.Valid(plain) {
				t.Errorf("replayed gzip body decompresses to %q, %v; want the JSON", plain, err)
			}
		}
	})

	run("Replay/CanonicalQuery", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		first := e.do(req{key: k, path: "/things?a=1&b=2", body: []byte(`{}`)})
		again := e.do(req{key: k, path: "/things?b=2&a=%31", body: []byte(`{}`)})
		e.wantReplay("same query, other order and escaping", first, again)
	})

	run("Replay/OversizedResponseBodyOmitted", func(t *testing.T) {
		e := newEnv(t, h, core.WithMaxResponseBytes(1000))
		k := newKey()
		hdr := map[string]string{hdrBytes: "5000"}
		first := e.do(req{key: k, header: hdr})
		e.wantStatus("5000-byte response over a 1000-byte store limit", first, http.StatusCreated, "docs/contract.md C-REPLAY-2")
		if len(first.body) != 5000 {
			t.Errorf("first response %d bytes; want 5000 (docs/contract.md C-REPLAY-2: an oversized response is delivered as it is)", len(first.body))
		}
		again := e.do(req{key: k, header: hdr})
		e.wantStatus("retry", again, http.StatusCreated, "docs/contract.md C-REPLAY-2: oversized: original status")
		if len(again.body) != 0 {
			t.Errorf("retry body %d bytes; want empty (docs/contract.md C-REPLAY-2: oversized responses stored without body)", len(again.body))
		}
		if again.header.Get(core.DefaultReplayHeader) != "true" || again.header.Get("Idempotency-Replay") != "omitted" {
			t.Errorf("retry headers %v; want Idempotency-Replayed: true and Idempotency-Replay: omitted (docs/contract.md C-REPLAY-2)", again.header)
		}
		if again.header.Get("Location") != first.header.Get("Location") {
			t.Errorf("retry Location %q; want %q (docs/contract.md C-REPLAY-2: oversized: original headers)", again.header.Get("Location"), first.header.Get("Location"))
		}
		e.wantRuns("oversized twice", 1, "docs/contract.md C-REPLAY-2: never a second execution")
	})

	run("Mismatch/Body", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		e.do(req{key: k, body: []byte(`{"amount":1200}`)})
		r := e.do(req{key: k, body: []byte(`{"amount":9999}`)})
		e.wantProblem("same key, other body", r, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, k)
		e.wantRuns("mismatch", 1, "docs/contract.md C-STATE-4: mismatch: handler not run")
	})

	run("Mismatch/Path", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		e.do(req{key: k, path: "/things", body: []byte(`{}`)})
		r := e.do(req{key: k, path: "/other", body: []byte(`{}`)})
		e.wantProblem("same key, other path", r, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, k)
	})

	run("Mismatch/Query", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		e.do(req{key: k, path: "/things?a=1", body: []byte(`{}`)})
		r := e.do(req{key: k, path: "/things?a=2", body: []byte(`{}`)})
		e.wantProblem("same key, other query", r, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, k)
	})

	run("Mismatch/Method", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		e.do(req{key: k, method: http.MethodPost, body: []byte(`{}`)})
		r := e.do(req{key: k, method: http.MethodPut, body: []byte(`{}`)})
		e.wantProblem("same key, other method", r, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, k)
	})

	run("Scope/Isolated", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		a1 := e.do(req{key: k, body: []byte(`{}`), header: map[string]string{scopeHdr: "client-a"}})
		b1 := e.do(req{key: k, body: []byte(`{"other":1}`), header: map[string]string{scopeHdr: "client-b"}})
		e.wantStatus("client A", a1, http.StatusCreated, "docs/contract.md C-SCOPE-2: scopes")
		e.wantStatus("client B, same key", b1, http.StatusCreated, "docs/contract.md C-SCOPE-2: scopes never share records")
		e.wantFresh("client B, same key", b1)
		a2 := e.do(req{key: k, body: []byte(`{}`), header: map[string]string{scopeHdr: "client-a"}})
		e.wantReplay("client A retry", a1, a2)
		if bytes.Equal(a2.body, b1.body) {
			t.Errorf("client A's replay equals client B's response (docs/contract.md C-SCOPE-2: a cross-client replay)")
		}
		e.wantRuns("two clients", 2, "docs/contract.md C-SCOPE-2: scopes")
	})

	run("Security/NoCrossScopeReplay", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		body := []byte(`{"same":"payload"}`)
		as := map[string]string{scopeHdr: "client-a", hdrHold: "1"}
		held := make(chan reply, 1)
		go func() { held <- e.do(req{key: k, body: body, header: as}) }()
		waitRuns(t, e, 1)
		// While A's request runs, B and an unscoped client send A's key
		// and payload: neither is told A's request is in flight.
		b1 := e.do(req{key: k, body: body, header: map[string]string{scopeHdr: "client-b"}})
		e.wantStatus("client B, A's key and payload, A in flight", b1, http.StatusCreated, "docs/contract.md C-SCOPE-2: scopes never share records")
		e.wantFresh("client B, A's key and payload", b1)
		e.release()
		a1 := <-held
		e.wantStatus("client A", a1, http.StatusCreated, "docs/contract.md C-STATE-1: new key")
		n1 := e.do(req{key: k, body: body})
		e.wantStatus("no scope, A's key and payload", n1, http.StatusCreated, "docs/contract.md C-SCOPE-2: scopes never share records")
		e.wantFresh("no scope, A's key and payload", n1)
		// Each replays its own response, never another's.
		for _, c := range []struct {
			who   string
			hdr   map[string]string
			first reply
		}{{"client A", map[string]string{scopeHdr: "client-a"}, a1}, {"client B", map[string]string{scopeHdr: "client-b"}, b1}, {"no scope", nil, n1}} {
			again := e.do(req{key: k, body: body, header: c.hdr})
			e.wantReplay(c.who+" retry", c.first, again)
		}
		if bytes.Equal(a1.body, b1.body) || bytes.Equal(a1.body, n1.body) || bytes.Equal(b1.body, n1.body) {
			t.Errorf("two scopes got the same response body (docs/contract.md C-SCOPE-2: a cross-client replay)")
		}
		e.wantRuns("three scopes, one key and payload", 3, "docs/contract.md C-SCOPE-2: scopes")
	})

	// Every refusal: problem+json with Cache-Control: no-store, and neither
	// its body nor its header fields echo the request's key or body.
	run("Security/RefusalsEchoNothing", func(t *testing.T) {
		e := newEnv(t, h, core.WithMaxBodyBytes(1024))
		k := newKey()
		secret := []byte(`{"card":"4242-SECRET-` + newKey() + `"}`)
		wantNoEcho := func(what string, r reply, keys ...string) {
			t.Helper()
			if r.err != nil {
				return
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s: Cache-Control %q; want no-store (docs/contract.md C-ERR-1)", what, cc)
			}
			var fields strings.Builder
			for name, vals := range r.header {
				fields.WriteString(name + ": " + strings.Join(vals, ", ") + "\n")
			}
			for _, k := range keys {
				if bytes.Contains(r.body, []byte(k)) || strings.Contains(fields.String(), k) {
					t.Errorf("%s: the response echoes the raw key (docs/contract.md C-ERR-1: never echo the key or the body)", what)
				}
			}
			if bytes.Contains(r.body, secret) || bytes.Contains(r.body, []byte("SECRET")) || strings.Contains(fields.String(), "SECRET") {
				t.Errorf("%s: the response echoes the request body: %s (docs/contract.md C-ERR-1: never echo the key or the body)", what, r.body)
			}
		}
		r := e.do(req{body: secret})
		e.wantProblem("missing key", r, http.StatusBadRequest, core.CodeMissingKey, "")
		wantNoEcho("missing key", r)
		bad := "SECRET-" + newKey() + " x"
		r = e.do(req{key: bad, body: secret})
		e.wantProblem("invalid key", r, http.StatusBadRequest, core.CodeInvalidKey, bad)
		wantNoEcho("invalid key", r, bad, "SECRET-")
		big := append(bytes.Repeat([]byte("SECRET "), 200), secret...)
		r = e.do(req{key: k, body: big})
		e.wantProblem("body too large", r, http.StatusRequestEntityTooLarge, core.CodeBodyTooLarge, k)
		wantNoEcho("body too large", r, k)
		held := make(chan reply, 1)
		go func() { held <- e.do(req{key: k, body: secret, header: map[string]string{hdrHold: "1"}}) }()
		waitRuns(t, e, 1)
		r = e.do(req{key: k, body: secret})
		e.wantProblem("in flight", r, http.StatusConflict, core.CodeInFlight, k)
		wantNoEcho("in flight", r, k)
		e.release()
		e.wantStatus("first", <-held, http.StatusCreated, "docs/contract.md C-STATE-1: new key")
		r = e.do(req{key: k, body: append([]byte(`{"SECRET":2}`), secret...)})
		e.wantProblem("fingerprint mismatch", r, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, k)
		wantNoEcho("fingerprint mismatch", r, k)
		e.store.failClaim.Store(true)
		k2 := newKey()
		r = e.do(req{key: k2, body: secret})
		e.store.failClaim.Store(false)
		e.wantProblem("store unavailable", r, http.StatusServiceUnavailable, core.CodeStoreUnavailable, k2)
		wantNoEcho("store unavailable", r, k2)
		e.wantRuns("refusals", 1, "docs/contract.md C-ERR-1: refusals run no handler")
	})

	run("InFlight/Conflict", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		done := make(chan reply, 1)
		go func() { done <- e.do(req{key: k, body: []byte(`{}`), header: map[string]string{hdrHold: "1"}}) }()
		waitRuns(t, e, 1)
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.release()
		e.wantProblem("duplicate while in flight", r, http.StatusConflict, core.CodeInFlight, k)
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > int(core.DefaultLease/time.Second) {
			t.Errorf("409 Retry-After %q; want whole seconds in [1, lease] (docs/contract.md C-STATE-2: in flight)", r.header.Get("Retry-After"))
		}
		first := <-done
		e.wantStatus("first", first, http.StatusCreated, "docs/contract.md C-STATE-1")
		again := e.do(req{key: k, body: []byte(`{}`)})
		e.wantReplay("after completion", first, again)
		e.wantRuns("in-flight duplicate", 1, "docs/contract.md C-STATE-2: exactly one execution")
	})

	run("InFlight/MismatchBeforeConflict", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		done := make(chan reply, 1)
		go func() { done <- e.do(req{key: k, body: []byte(`{"a":1}`), header: map[string]string{hdrHold: "1"}}) }()
		waitRuns(t, e, 1)
		r := e.do(req{key: k, body: []byte(`{"a":2}`)})
		e.release()
		e.wantProblem("other payload while in flight", r, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch, k)
		<-done
	})

	run("InFlight/WaitThenReplay", func(t *testing.T) {
		e := newEnv(t, h, core.WithWaitForInFlight(5*time.Second))
		k := newKey()
		done := make(chan reply, 1)
		go func() { done <- e.do(req{key: k, body: []byte(`{}`), header: map[string]string{hdrDelay: "400"}}) }()
		waitRuns(t, e, 1)
		r := e.do(req{key: k, body: []byte(`{}`)})
		first := <-done
		e.wantReplay("duplicate that waited", first, r)
		e.wantRuns("waiting duplicate", 1, "docs/contract.md C-STATE-2: wait-for-in-flight replays the result")
	})

	run("Concurrency/SameKey32", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		const n = 32
		start := make(chan struct{})
		out := make(chan reply, n)
		for i := 0; i < n; i++ {
			go func() {
				<-start
				out <- e.do(req{key: k, body: []byte(`{"race":true}`), header: map[string]string{hdrDelay: "200"}})
			}()
		}
		close(start)
		var created, conflicts, replays int
		for i := 0; i < n; i++ {
			r := <-out
			switch {
			case r.err != nil:
				t.Errorf("racing request: %v", r.err)
			case r.status == http.StatusConflict:
				conflicts++
			case r.status == http.StatusCreated && r.header.Get(core.DefaultReplayHeader) == "true":
				replays++
			case r.status == http.StatusCreated:
				created++
			default:
				t.Errorf("racing request: status %d body %q; want 201 or 409", r.status, r.body)
			}
		}
		if created != 1 {
			t.Errorf("%d of %d simultaneous requests ran fresh (409s %d, replays %d); want exactly 1 (docs/contract.md C-ONCE-1: exactly one winner)", created, n, conflicts, replays)
		}
		e.wantRuns("32 simultaneous duplicates", 1, "docs/contract.md C-ONCE-1: exactly one winner")
	})

	run("Completion/ServerErrorReleased", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		r := e.do(req{key: k, body: []byte(`{}`), header: map[string]string{hdrStatus: "500"}})
		e.wantStatus("handler answers 500", r, http.StatusInternalServerError, "docs/contract.md C-DONE-1")
		r = e.do(req{key: k, body: []byte(`{}`)})
		e.wantStatus("retry after 500", r, http.StatusCreated, "docs/contract.md C-DONE-1: 5xx releases the claim")
		e.wantFresh("retry after 500", r)
		e.wantRuns("500 then retry", 2, "docs/contract.md C-DONE-1: 5xx is not stored")
	})

	run("Completion/ClientErrorStored", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		hdr := map[string]string{hdrStatus: "409"}
		first := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantStatus("handler answers 409", first, http.StatusConflict, "docs/contract.md C-DONE-1")
		again := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantReplay("retry after handler's 409", first, again)
		e.wantRuns("4xx then retry", 1, "docs/contract.md C-DONE-1: status < 500 is stored")
	})

	run("Completion/PanicReleased", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		r := e.do(req{key: k, body: []byte(`{}`), header: map[string]string{hdrPanic: "1"}})
		if r.err == nil && r.status < 500 {
			t.Errorf("panicking handler: status %d; want a transport error or 5xx", r.status)
		}
		r = e.do(req{key: k, body: []byte(`{}`)})
		e.wantStatus("retry after panic", r, http.StatusCreated, "docs/contract.md C-DONE-1: a panic releases the claim")
		e.wantRuns("panic then retry", 2, "docs/contract.md C-DONE-1: a panic is not stored")
	})

	run("Lease/RenewedWhileRunning", func(t *testing.T) {
		e := newEnv(t, h, core.WithLease(600*time.Millisecond))
		k := newKey()
		done := make(chan reply, 1)
		go func() { done <- e.do(req{key: k, body: []byte(`{}`), header: map[string]string{hdrHold: "1"}}) }()
		waitRuns(t, e, 1)
		time.Sleep(1000 * time.Millisecond) // well past the first lease
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.release()
		e.wantProblem("duplicate after the original lease", r, http.StatusConflict, core.CodeInFlight, k)
		<-done
		e.wantRuns("long handler", 1, "docs/contract.md C-LEASE-1: the lease is renewed while the handler runs")
	})

	run("Store/UnavailableFailsClosed", func(t *testing.T) {
		e := newEnv(t, h)
		e.store.failClaim.Store(true)
		k := newKey()
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.wantProblem("store down", r, http.StatusServiceUnavailable, core.CodeStoreUnavailable, k)
		if r.header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After (docs/contract.md C-STATE-5: store unavailable)")
		}
		e.wantRuns("store down", 0, "docs/contract.md C-STATE-5: fail closed")
		e.store.failClaim.Store(false)
		r = e.do(req{key: k, body: []byte(`{}`)})
		e.wantStatus("store back", r, http.StatusCreated, "docs/contract.md C-STATE-5: service resumes")
	})

	run("Store/FailOpen", func(t *testing.T) {
		e := newEnv(t, h, core.WithFailOpen(true))
		e.store.failClaim.Store(true)
		r := e.do(req{key: newKey(), body: []byte(`{}`)})
		e.wantStatus("store down, fail-open", r, http.StatusCreated, "docs/contract.md C-STATE-5: fail-open is an explicit option")
		e.wantRuns("fail-open", 1, "docs/contract.md C-STATE-5: fail-open runs the handler")
	})

	run("Store/CompleteDeferredThenReplayed", func(t *testing.T) {
		e := newEnv(t, h, core.WithCompleteWait(20*time.Millisecond))
		e.store.failComplete.Store(true)
		k := newKey()
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.wantProblem("storing fails after the handler ran", r, http.StatusServiceUnavailable, core.CodeStoreUnavailable, k)
		r = e.do(req{key: k, body: []byte(`{}`)})
		e.wantProblem("retry while storing goes on", r, http.StatusConflict, core.CodeInFlight, k)
		e.store.failComplete.Store(false) // the store is back within the lease
		first := e.eventually("the deferred response replayed", req{key: k, body: []byte(`{}`)}, func(r reply) bool { return r.status != http.StatusConflict })
		e.wantStatus("retry after the outage", first, http.StatusCreated, ruleNeverLost)
		if first.header.Get(core.DefaultReplayHeader) != "true" {
			t.Errorf("retry after the outage: not a replay; want the stored response (%s)", ruleNeverLost)
		}
		e.wantRuns("outage after the handler", 1, ruleNeverLost)
		// The record can be visible before the engine has the Complete's
		// reply and reports it: wait for the event.
		e.waitEvent(core.EventStoredLate)
	})

	run("Store/CompleteLostPastTheLease", func(t *testing.T) {
		e := newEnv(t, h, core.WithCompleteWait(0), core.WithLease(300*time.Millisecond))
		e.store.failComplete.Store(true)
		k := newKey()
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.wantProblem("storing fails after the handler ran", r, http.StatusServiceUnavailable, core.CodeStoreUnavailable, k)
		e.waitEvent(core.EventCompletionLost)
		e.store.failComplete.Store(false)
		// Released at once, or (should that release fail) by the retried
		// release or the lapse of the 300 ms lease: never stuck.
		r = e.eventually("the key free again", req{key: k, body: []byte(`{}`)}, func(r reply) bool { return r.status != http.StatusConflict })
		e.wantStatus("retry after the window closed", r, http.StatusCreated, "docs/contract.md C-DONE-5: past the lease the key is released, never stuck")
		e.wantFresh("retry after the window closed", r)
	})

	run("Store/ClaimLandedAfterFailure", func(t *testing.T) {
		e := newEnv(t, h)
		e.store.lateClaim.Store(true)
		k := newKey()
		r := e.do(req{key: k, body: []byte(`{}`)})
		e.wantProblem("claim call failed", r, http.StatusServiceUnavailable, core.CodeStoreUnavailable, k)
		e.store.lateClaim.Store(false)
		// The claim landed although its call failed: the engine releases
		// it, so the key is free within moments, not after a 30 s lease.
		r = e.eventually("the key free again", req{key: k, body: []byte(`{}`)}, func(r reply) bool { return r.status != http.StatusConflict })
		e.wantStatus("retry after a failed claim that landed", r, http.StatusCreated, "docs/contract.md C-LEASE-2: an engine that gave up on a claim leaves no lease behind")
		e.wantRuns("failed claim, then retry", 1, "docs/contract.md C-LEASE-2")
	})

	run("Completion/ClientGoneStored", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		// The client gives up once the handler has started; the handler
		// finishes later, as a provider call that does not watch the
		// request context does.
		r := e.cancelOnceRunning(req{key: k, body: []byte(`{}`), header: map[string]string{hdrDelay: "400"}})
		if r.err == nil {
			t.Fatalf("the client should have given up; got status %d", r.status)
		}
		again := e.eventually("the retry answered", req{key: k, body: []byte(`{}`), header: map[string]string{hdrDelay: "400"}}, func(r reply) bool { return r.status != http.StatusConflict })
		e.wantStatus("retry after the client gave up", again, http.StatusCreated, ruleClientGone)
		if again.header.Get(core.DefaultReplayHeader) != "true" {
			t.Errorf("retry after the client gave up: a fresh response; want the first one replayed (%s)", ruleClientGone)
		}
		e.wantRuns("client gave up, then retried", 1, ruleClientGone)
	})

	run("Completion/ClientGoneNothingWritten", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		e.cancelOnceRunning(req{key: k, body: []byte(`{}`), header: map[string]string{hdrUntilCancel: "1"}})
		again := e.eventually("the retry answered", req{key: k, body: []byte(`{}`)}, func(r reply) bool { return r.status != http.StatusConflict })
		if e.app.cancelled.Load() > 0 {
			// The framework cancelled the request, and the handler wrote
			// nothing: it counts as not run.
			e.wantStatus("retry after a cancelled request that wrote nothing", again, http.StatusCreated, ruleNothingWritten)
			e.wantFresh("retry after a cancelled request that wrote nothing", again)
			e.wantRuns("cancelled request, then retry", 2, ruleNothingWritten)
		} else {
			// A framework that never cancels a request: the handler
			// returned uncancelled, and its implicit response is stored.
			e.wantStatus("retry after an uncancelled handler that wrote nothing", again, http.StatusOK, ruleNothingWritten)
			e.wantRuns("uncancelled request, then retry", 1, ruleNothingWritten)
		}
	})

	run("Completion/DeclaredApplied", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		hdr := map[string]string{hdrStatus: "502", hdrDeclare: "applied"}
		first := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantStatus("handler declares applied, answers 502", first, http.StatusBadGateway, ruleDeclared)
		again := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantReplay("retry after a declared-applied 502", first, again)
		e.wantRuns("declared applied", 1, ruleDeclared)
	})

	run("Completion/DeclaredNotApplied", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		hdr := map[string]string{hdrDeclare: "not-applied"}
		first := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantStatus("handler declares not applied, answers 201", first, http.StatusCreated, ruleDeclared)
		again := e.do(req{key: k, body: []byte(`{}`), header: hdr})
		e.wantStatus("retry after a declared-not-applied 201", again, http.StatusCreated, ruleDeclared)
		e.wantFresh("retry after a declared-not-applied 201", again)
		e.wantRuns("declared not applied", 2, ruleDeclared)
	})

	run("Observer/NoRawKey", func(t *testing.T) {
		e := newEnv(t, h)
		k := newKey()
		e.do(req{key: k, body: []byte(`{}`)})
		e.do(req{key: k, body: []byte(`{}`)})
		evs := e.events.all()
		var sawExec, sawReplay bool
		for _, ev := range evs {
			if strings.Contains(ev.KeyHash, k) || (ev.Err != nil && strings.Contains(ev.Err.Error(), k)) {
				t.Errorf("event %+v contains the raw key (docs/contract.md C-OBS-1)", ev)
			}
			sawExec = sawExec || ev.Outcome == core.OutcomeExecuted
			sawReplay = sawReplay || ev.Outcome == core.OutcomeReplayed
			if (ev.Outcome == core.OutcomeExecuted || ev.Outcome == core.OutcomeReplayed) && ev.KeyHash == "" {
				t.Errorf("event %+v has no KeyHash (docs/contract.md C-OBS-1)", ev)
			}
		}
		if !sawExec || !sawReplay {
			t.Errorf("observer saw %v; want executed and replayed (docs/contract.md C-OBS-1: every decision)", e.events.outcomes())
		}
	})
}

// Rules of docs/contract.md that the cases above quote.
const (
	ruleNeverLost      = "docs/contract.md C-DONE-5: a store outage shorter than the lease loses no response"
	ruleClientGone     = "docs/contract.md C-DONE-2: a client that goes away decides nothing"
	ruleNothingWritten = "docs/contract.md C-DONE-2: only a handler that wrote nothing while its request was cancelled is released"
	ruleDeclared       = "docs/contract.md C-DONE-3: a declared outcome overrides the completion policy"
)

// cancelOnceRunning sends r and gives up on it, as a client that times
// out does, once the handler has started (so a slow claim on a loaded
// machine cannot make the client give up before the handler runs); it
// returns what the client saw.
func (e *env) cancelOnceRunning(r req) reply {
	e.t.Helper()
	before := e.runs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan reply, 1)
	go func() { done <- e.doCtx(ctx, r) }()
	waitRuns(e.t, e, before+1)
	cancel()
	return <-done
}

// eventually sends r until done accepts the reply or 10 s pass, and
// returns the last reply.
func (e *env) eventually(what string, r req, done func(reply) bool) reply {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.do(r)
		if got.err == nil && done(got) || time.Now().After(deadline) {
			if !done(got) {
				e.t.Errorf("%s: still status %d after 10s", what, got.status)
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvent waits up to 10 s for the observer to see o.
func (e *env) waitEvent(o core.Outcome) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(e.events.outcomes(), o) {
		if time.Now().After(deadline) {
			e.t.Fatalf("the observer did not see %q within 10s; saw %v", o, e.events.outcomes())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// release lets every request held with hdrHold answer; call it once.
func (e *env) release() { close(e.app.gate) }

// waitRuns waits until the app has started n executions.
func waitRuns(t *testing.T, e *env, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.runs() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the handler did not start %d executions within 5s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
