package core_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// fakeExchange is a framework-free Exchange for engine unit tests.
type fakeExchange struct {
	ctx     context.Context
	method  string
	path    string
	query   string
	header  http.Header
	body    []byte
	handler func(body []byte) (*core.Response, error)
	// during, when set, runs with the handler's context before handler.
	during func(ctx context.Context)
	// silent makes Capture report that the handler wrote nothing.
	silent bool

	sent   *core.Response
	nexted bool
	runs   int
	// cloneHeader keeps a copy of the sent header, for tests of replays
	// whose header the engine filters into a map it reuses.
	cloneHeader bool
}

func newFake(key string, body string, h func(body []byte) (*core.Response, error)) *fakeExchange {
	x := &fakeExchange{ctx: context.Background(), method: "POST", path: "/p", header: http.Header{}, body: []byte(body), handler: h}
	if key != "" {
		x.header.Set(core.KeyHeader, key)
	}
	return x
}

func (x *fakeExchange) Context() context.Context    { return x.ctx }
func (x *fakeExchange) Method() string              { return x.method }
func (x *fakeExchange) Path() string                { return x.path }
func (x *fakeExchange) RawQuery() string            { return x.query }
func (x *fakeExchange) Header(name string) []string { return x.header.Values(name) }
func (x *fakeExchange) Native() any                 { return x }
func (x *fakeExchange) Body() (io.Reader, int64)    { return bytes.NewReader(x.body), int64(len(x.body)) }
func (x *fakeExchange) Next()                       { x.nexted = true }
func (x *fakeExchange) Send(resp *core.Response) {
	cp := *resp // Send must not keep resp: the Engine reuses the Response of a replay
	if x.cloneHeader {
		cp.Header = resp.Header.Clone() // nor its header, which may be the replay slot's
	}
	x.sent = &cp
}
func (x *fakeExchange) Capture(ctx context.Context, body []byte) (*core.Response, bool, error) {
	x.runs++
	if x.during != nil {
		x.during(ctx)
	}
	resp, err := x.handler(body)
	return resp, !x.silent, err
}

func created(body []byte) (*core.Response, error) {
	return &core.Response{Status: 201, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("made")}, nil
}

func newStore(t *testing.T) *memstore.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

type recorder struct {
	mu  sync.Mutex
	evs []core.Event
}

func (r *recorder) Observe(_ context.Context, ev core.Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
}

func (r *recorder) has(o core.Outcome) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.evs {
		if ev.Outcome == o {
			return true
		}
	}
	return false
}

func (r *recorder) keyHashes(o core.Outcome) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.evs {
		if ev.Outcome == o {
			out = append(out, ev.KeyHash)
		}
	}
	return out
}

func TestNewPanicsOnProgrammerErrors(t *testing.T) {
	for name, f := range map[string]func(){
		"nil store":      func() { core.New(nil) },
		"zero TTL":       func() { core.New(memstore.New(), core.WithTTL(0)) },
		"negative lease": func() { core.New(memstore.New(), core.WithLease(-1)) },
	} {
		func() {
			defer func() {
				p := recover()
				if p == nil || !strings.HasPrefix(p.(string), "core: ") {
					t.Errorf("%s: recovered %v; want a panic with the core: prefix", name, p)
				}
			}()
			f()
		}()
	}
}

func TestPanicIsReraisedAndReleases(t *testing.T) {
	e := core.New(newStore(t))
	x := newFake("k", "b", func([]byte) (*core.Response, error) { panic("boom") })
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v; want the handler's panic value re-raised", p)
			}
		}()
		e.Serve(x)
	}()
	y := newFake("k", "b", created)
	e.Serve(y)
	if y.runs != 1 || y.sent.Status != 201 {
		t.Errorf("retry after panic: runs=%d status=%d; want a fresh 201", y.runs, y.sent.Status)
	}
}

func TestHopByHopHeadersNotStored(t *testing.T) {
	e := core.New(newStore(t))
	h := func([]byte) (*core.Response, error) {
		return &core.Response{Status: 200, Header: http.Header{
			"Connection":        {"X-Private, keep-alive"},
			"X-Private":         {"1"},
			"Keep-Alive":        {"timeout=5"},
			"Transfer-Encoding": {"chunked"},
			"Set-Cookie":        {"a=b"},
			"X-Kept":            {"1", "2"},
		}, Body: []byte("ok")}, nil
	}
	e.Serve(newFake("k", "", h))
	y := newFake("k", "", h)
	e.Serve(y)
	if y.runs != 0 {
		t.Fatalf("retry ran the handler")
	}
	for _, name := range []string{"Connection", "X-Private", "Keep-Alive", "Transfer-Encoding", "Set-Cookie"} {
		if v := y.sent.Header.Values(name); len(v) > 0 {
			t.Errorf("replay carries %s: %q; want it not stored", name, v)
		}
	}
	if v := y.sent.Header.Values("X-Kept"); len(v) != 2 {
		t.Errorf("replay X-Kept = %q; want both values", v)
	}
}

func TestReplayMarksWithoutModifyingTheStoredResponse(t *testing.T) {
	e := core.New(newStore(t), core.WithMaxResponseBytes(8), core.WithReplayHeader("x-replayed"))
	small := func([]byte) (*core.Response, error) {
		return &core.Response{Status: 201, Header: http.Header{"X-Replayed": {"stale"}, "Location": {"/a"}}, Body: []byte("ok")}, nil
	}
	big := func([]byte) (*core.Response, error) {
		return &core.Response{Status: 201, Header: http.Header{"Location": {"/b"}}, Body: []byte("more than eight bytes")}, nil
	}
	for _, tc := range []struct {
		key   string
		h     func([]byte) (*core.Response, error)
		extra http.Header
		body  string
	}{
		{"small", small, http.Header{"X-Replayed": {"true"}}, "ok"},
		{"big", big, http.Header{"X-Replayed": {"true"}, "Idempotency-Replay": {"omitted"}}, ""},
	} {
		first := newFake(tc.key, "", tc.h)
		e.Serve(first)
		if first.sent.Extra != nil {
			t.Errorf("%s: first response Extra = %v; want none", tc.key, first.sent.Extra)
		}
		var sent []*core.Response
		for range 2 {
			y := newFake(tc.key, "", tc.h)
			e.Serve(y)
			if y.runs != 0 {
				t.Fatalf("%s: retry ran the handler", tc.key)
			}
			if !reflect.DeepEqual(y.sent.Extra, tc.extra) || string(y.sent.Body) != tc.body {
				t.Errorf("%s: replay Extra %v, body %q; want %v, %q", tc.key, y.sent.Extra, y.sent.Body, tc.extra, tc.body)
			}
			sent = append(sent, y.sent)
		}
		// The markers ride in Extra: the stored header is left as stored,
		// so the second replay sees exactly what the first did.
		if got := sent[1].Header.Get("X-Replayed"); tc.key == "small" && got != "stale" {
			t.Errorf("%s: stored X-Replayed = %q after a replay; want the handler's %q untouched", tc.key, got, "stale")
		}
		if len(sent[1].Header["Idempotency-Replay"]) != 0 {
			t.Errorf("%s: the omitted marker leaked into the stored header", tc.key)
		}
	}
}

// TestStorageKeyEncoding pins the storage key: stores keep records under
// it, so a change here would orphan every record stored before an upgrade
// (a retry would run the handler again). It is the lowercase hex of
// SHA-256 over the length-prefixed scope and the key, or of HMAC-SHA-256
// under the secret.
func TestStorageKeyEncoding(t *testing.T) {
	scope := func(x core.Exchange) string { return x.Header("X-Tenant")[0] }
	input := binary.AppendUvarint(nil, uint64(len("tenant-7")))
	input = append(input, "tenant-7"+"8e03978e-40d5-43e8-bc93-6894a57f9324"...)
	plain := sha256.Sum256(input)
	m := hmac.New(sha256.New, []byte("secret"))
	m.Write(input)
	for name, tc := range map[string]struct {
		opts []core.Option
		want string
	}{
		"sha256": {nil, hex.EncodeToString(plain[:])},
		"hmac":   {[]core.Option{core.WithHMACSecret([]byte("secret"))}, hex.EncodeToString(m.Sum(nil))},
	} {
		rec := &recorder{}
		e := core.New(newStore(t), append(tc.opts, core.WithKeyScope(scope), core.WithObserver(rec))...)
		x := newFake(`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "", created)
		x.header.Set("X-Tenant", "tenant-7")
		e.Serve(x)
		if hs := rec.keyHashes(core.OutcomeExecuted); len(hs) != 1 || hs[0] != tc.want {
			t.Errorf("%s: storage key %q; want [%s]", name, hs, tc.want)
		}
	}
}

// TestStorageKeyHexDigits checks the storage key's hex digits over many
// digests, so that every nibble value lands in every position.
func TestStorageKeyHexDigits(t *testing.T) {
	rec := &recorder{}
	e := core.New(newStore(t), core.WithObserver(rec))
	var want []string
	for i := range 400 {
		key := "key-" + strconv.Itoa(i)
		e.Serve(newFake(key, "", created))
		sum := sha256.Sum256(append([]byte{0}, key...)) // empty scope: its length prefix
		want = append(want, hex.EncodeToString(sum[:]))
	}
	if got := rec.keyHashes(core.OutcomeExecuted); !slices.Equal(got, want) {
		t.Errorf("storage keys differ from hex(SHA-256): got %d keys, first %q; want first %q", len(got), got[:min(1, len(got))], want[0])
	}
}

func TestScopesAndHMACChangeTheStorageKey(t *testing.T) {
	rec := &recorder{}
	scope := func(x core.Exchange) string { return x.Header("X-Tenant")[0] }
	e := core.New(newStore(t), core.WithKeyScope(scope), core.WithObserver(rec))
	eh := core.New(newStore(t), core.WithKeyScope(scope), core.WithObserver(rec), core.WithHMACSecret([]byte("secret")))
	for _, tenant := range []string{"a", "b"} {
		x := newFake("same-key", "", created)
		x.header.Set("X-Tenant", tenant)
		e.Serve(x)
	}
	x := newFake("same-key", "", created)
	x.header.Set("X-Tenant", "a")
	eh.Serve(x)
	hs := rec.keyHashes(core.OutcomeExecuted)
	if len(hs) != 3 || hs[0] == hs[1] || hs[0] == hs[2] {
		t.Fatalf("storage keys %q; want three different keys (scoped; HMAC differs from plain)", hs)
	}
	for _, h := range hs {
		if len(h) != 64 || strings.Contains(h, "same-key") {
			t.Errorf("storage key %q; want a 64-hex digest without the raw key", h)
		}
	}
}

func TestDefaultFingerprint(t *testing.T) {
	fp := func(method, path, query, body string) core.Fingerprint {
		x := newFake("", body, nil)
		x.method, x.path, x.query = method, path, query
		return core.DefaultFingerprint(x, []byte(body))
	}
	base := fp("POST", "/a", "x=1&y=2", "{}")
	if base != fp("POST", "/a", "y=2&x=%31", "{}") {
		t.Error("query order or escaping changed the fingerprint")
	}
	for name, other := range map[string]core.Fingerprint{
		"method":        fp("PUT", "/a", "x=1&y=2", "{}"),
		"path":          fp("POST", "/b", "x=1&y=2", "{}"),
		"query":         fp("POST", "/a", "x=1&y=3", "{}"),
		"body":          fp("POST", "/a", "x=1&y=2", "{ }"),
		"concatenation": fp("POST", "/ax=1&y=2", "", "{}"),
	} {
		if other == base {
			t.Errorf("changing the %s did not change the fingerprint", name)
		}
	}
}

// TestDefaultFingerprintEncoding pins the bytes DefaultFingerprint hashes:
// stores keep fingerprints, so a change here would turn every retry of a
// request stored before an upgrade into a 422. Every body size, from empty
// to larger than the hasher's scratch buffer, must hash the documented
// encoding.
func TestDefaultFingerprintEncoding(t *testing.T) {
	field := func(b []byte, s string) []byte {
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...)
	}
	for _, n := range []int{0, 1, 32, 127, 128, 511, 512, 513, 64 << 10} {
		body := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		x := newFake("", string(body), nil)
		x.method, x.path, x.query = "POST", "/payments/42", "b=2&a=1"
		want := field(nil, "POST")
		want = field(want, "/payments/42")
		want = field(want, "a=1&b=2")
		want = binary.AppendUvarint(want, uint64(n))
		want = append(want, body...)
		if got := core.DefaultFingerprint(x, body); got != core.Fingerprint(sha256.Sum256(want)) {
			t.Errorf("body of %d bytes: fingerprint %x; want SHA-256 of the documented encoding", n, got)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	for in, want := range map[string]string{
		"":            "",
		"a=1":         "a=1",
		"b=2&a=1":     "a=1&b=2",
		"a=2&a=1":     "a=2&a=1",
		"a=%31&b":     "a=1&b=",
		"q=a+b":       "q=a+b",
		"q=a%20b":     "q=a+b",
		"bad=%zz&a=1": "bad=%zz&a=1",
		// One escaping, whether the query holds one parameter or several.
		"a=/x":   "a=%2Fx",
		"a=%2Fx": "a=%2Fx",
		"= ":     "=+",
		"&= ":    "=+",
		"a=b=c":  "a=b%3Dc",
		"a=~.-_": "a=~.-_",
	} {
		if got := core.CanonicalQuery(in); got != want {
			t.Errorf("CanonicalQuery(%q) = %q; want %q", in, got, want)
		}
	}
}

// leaseLostStore takes the claim over as soon as the holder renews.
type leaseLostStore struct{ core.Store }

func (s leaseLostStore) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	return core.ErrLeaseLost
}

func TestLeaseLossIsObserved(t *testing.T) {
	rec := &recorder{}
	e := core.New(leaseLostStore{newStore(t)}, core.WithLease(30*time.Millisecond), core.WithObserver(rec))
	e.Serve(newFake("k", "", func([]byte) (*core.Response, error) {
		time.Sleep(60 * time.Millisecond)
		return &core.Response{Status: 201, Header: http.Header{}}, nil
	}))
	if !rec.has(core.EventLeaseLost) {
		t.Errorf("observer did not see %q", core.EventLeaseLost)
	}
}

func TestHandlerSeesWholeBodyAndFingerprintIsTakenBefore(t *testing.T) {
	e := core.New(newStore(t))
	var seen []byte
	e.Serve(newFake("k", "payload", func(b []byte) (*core.Response, error) {
		seen = append([]byte(nil), b...)
		b[0] = 'X' // a handler that mutates its input cannot change the fingerprint
		return &core.Response{Status: 201, Header: http.Header{}}, nil
	}))
	if string(seen) != "payload" {
		t.Errorf("handler saw %q; want the whole body", seen)
	}
	y := newFake("k", "payload", created)
	e.Serve(y)
	if y.runs != 0 || y.sent.Status != 201 {
		t.Errorf("retry with the same payload: runs=%d status=%d; want a replay (docs/contract.md C-FP-1: the fingerprint is taken before the handler reads the body)", y.runs, y.sent.Status)
	}
}

// TestCoreRequiresNothing keeps core dependency-free.
func TestCoreRequiresNothing(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "require") {
			t.Fatalf("core/go.mod has a requirement (%q); core must depend on the standard library only", line)
		}
	}
}

// tokenLog records the tokens offered to Claim and fails every third claim
// after the store has acted on it, as a store whose answer is lost does.
type tokenLog struct {
	core.Store
	mu     sync.Mutex
	n      int
	spent  map[core.Token]string // token → the answer that spent it
	reused []core.Token
}

func (s *tokenLog) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	c, err := s.Store.Claim(ctx, req)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.spent[req.Token]; ok {
		s.reused = append(s.reused, req.Token)
	}
	s.n++
	if s.n%3 == 0 {
		c, err = core.Claim{}, core.ErrStoreUnavailable
	}
	switch {
	case err != nil:
		s.spent[req.Token] = "error"
	case c.Status == core.ClaimAcquired:
		s.spent[req.Token] = "acquired"
	}
	return c, err
}

func TestTokenNeverOfferedAgainOnceAStoreMayHoldIt(t *testing.T) {
	log := &tokenLog{Store: newStore(t), spent: map[core.Token]string{}}
	e := core.New(log)
	for i := range 300 {
		key := "k" + string(rune('a'+i%7)) // replays, new keys and mismatches
		body := "b"
		if i%5 == 0 {
			body = "other"
		}
		e.Serve(newFake(key, body, created))
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.spent) == 0 {
		t.Fatal("no claim acquired or failed: the test exercised nothing")
	}
	for _, tok := range log.reused {
		t.Errorf("token %q offered again after a claim that %s with it", tok, log.spent[tok])
	}
}

func (r *recorder) outcomes() []core.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]core.Outcome, len(r.evs))
	for i, ev := range r.evs {
		out[i] = ev.Outcome
	}
	return out
}
