package core_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// plainStore hides every optional interface of the store it wraps: a
// user's store that implements core.Store and nothing else.
type plainStore struct{ core.Store }

// forgeFixture is an engine over a memstore whose records a test rewrites
// behind the engine's back, as anyone able to write to the backend could.
type forgeFixture struct {
	t    *testing.T
	mem  *memstore.Store
	e    *core.Engine
	rec  *recorder
	skey string
	fp   core.Fingerprint
}

// newForgeFixture serves one request for key "k" with body "b", so that
// the store holds its completed record, and learns its storage key.
func newForgeFixture(t *testing.T, discard bool, opts ...core.Option) *forgeFixture {
	t.Helper()
	f := &forgeFixture{t: t, mem: newStore(t), rec: &recorder{}}
	var st core.Store = f.mem
	if !discard {
		st = plainStore{f.mem}
	}
	f.e = core.New(st, append(opts, core.WithObserver(f.rec))...)
	x := newFake("k", "b", created)
	f.e.Serve(x)
	hs := f.rec.keyHashes(core.OutcomeExecuted)
	if len(hs) != 1 {
		t.Fatalf("first request: executed %d times; want 1", len(hs))
	}
	f.skey, f.fp = hs[0], core.DefaultFingerprint(x, []byte("b"))
	return f
}

// forge replaces the completed record with resp under fingerprint fp.
func (f *forgeFixture) forge(fp core.Fingerprint, resp *core.Response) {
	f.t.Helper()
	if err := f.mem.Put(context.Background(), f.skey, fp, resp, time.Hour); err != nil {
		f.t.Fatalf("forging the record: %v", err)
	}
}

// retry serves the same request again.
func (f *forgeFixture) retry() *fakeExchange {
	y := newFake("k", "b", created)
	y.cloneHeader = true
	f.e.Serve(y)
	return y
}

func replayed(x *fakeExchange) bool {
	return x.sent != nil && x.sent.Extra.Get(core.DefaultReplayHeader) == "true"
}

// TestForgedRecordsAreRefused writes records no engine stores into the
// store and checks that a retry never replays them: the engine reports
// each (an error wrapping ErrCorruptRecord), discards it through the
// memstore's Discarder and runs the handler again.
func TestForgedRecordsAreRefused(t *testing.T) {
	for name, resp := range map[string]*core.Response{
		"Status100":    {Status: 100, Header: http.Header{}, Body: []byte("x")},
		"Status101":    {Status: 101, Header: http.Header{"Upgrade": {"websocket"}}},
		"Status999":    {Status: 999, Header: http.Header{}, Body: []byte("x")},
		"Status0":      {Status: 0, Header: http.Header{}},
		"SplitValue":   {Status: 200, Header: http.Header{"Location": {"/a\r\nSet-Cookie: s=1"}}},
		"NULValue":     {Status: 200, Header: http.Header{"Location": {"/a\x00"}}},
		"NameNotToken": {Status: 200, Header: http.Header{"Set-Cookie: s=1\r\nX": {"1"}}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newForgeFixture(t, true)
			f.forge(f.fp, resp)
			y := f.retry()
			if replayed(y) || y.runs != 1 || y.sent.Status != 201 {
				t.Errorf("retry over a forged record (status %d): replayed=%v runs=%d status=%d; want it refused, discarded and the handler run again",
					resp.Status, replayed(y), y.runs, y.sent.Status)
			}
			if !f.discarded() {
				t.Errorf("observer saw no %s event wrapping ErrCorruptRecord", core.EventRecordDiscarded)
			}
			// The handler's new record replays as usual.
			if z := f.retry(); !replayed(z) || z.runs != 0 || z.sent.Status != 201 {
				t.Errorf("next retry: replayed=%v runs=%d status=%d; want a replay of the new record", replayed(z), z.runs, z.sent.Status)
			}
		})
	}
}

func (f *forgeFixture) discarded() bool {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	for _, ev := range f.rec.evs {
		if ev.Outcome == core.EventRecordDiscarded && errors.Is(ev.Err, core.ErrCorruptRecord) && ev.KeyHash == f.skey {
			return true
		}
	}
	return false
}

// TestForgedRecordWithoutDiscarderAnswers503 checks a store that cannot
// discard: the corrupt record is refused with 503 store-unavailable, never
// replayed, and reported with an error wrapping ErrCorruptRecord.
func TestForgedRecordWithoutDiscarderAnswers503(t *testing.T) {
	f := newForgeFixture(t, false)
	f.forge(f.fp, &core.Response{Status: 101, Header: http.Header{}})
	for range 2 {
		y := f.retry()
		if replayed(y) || y.runs != 0 || y.sent.Status != http.StatusServiceUnavailable {
			t.Errorf("retry over a status-101 record: replayed=%v runs=%d status=%d; want 503, handler not run", replayed(y), y.runs, y.sent.Status)
		}
	}
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	n := 0
	for _, ev := range f.rec.evs {
		if ev.Outcome == core.OutcomeStoreUnavailable && errors.Is(ev.Err, core.ErrCorruptRecord) && errors.Is(ev.Err, core.ErrStoreUnavailable) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("observer saw %d store-unavailable events wrapping ErrCorruptRecord; want 2", n)
	}
}

// TestReplayFiltersHeaders checks that the hop-by-hop removal and the
// header filter apply to what is replayed, not only to what is stored: a
// record carrying Set-Cookie (forged, or stored before the filter
// changed) never replays it.
func TestReplayFiltersHeaders(t *testing.T) {
	f := newForgeFixture(t, true)
	f.forge(f.fp, &core.Response{Status: 200, Body: []byte("forged"), BodyOmitted: false, Header: http.Header{
		"Set-Cookie":        {"session=attacker"},
		"Transfer-Encoding": {"chunked"},
		"Connection":        {"X-Hop"},
		"X-Hop":             {"1"},
		"Content-Type":      {"text/plain"},
	}})
	y := f.retry()
	if !replayed(y) || y.runs != 0 {
		t.Fatalf("retry: replayed=%v runs=%d; want a replay", replayed(y), y.runs)
	}
	for _, name := range []string{"Set-Cookie", "Transfer-Encoding", "Connection", "X-Hop"} {
		if v, ok := y.sent.Header[name]; ok {
			t.Errorf("replayed %s: %q; want it filtered on replay", name, v)
		}
	}
	if y.sent.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("replayed header %v; want Content-Type kept", y.sent.Header)
	}

	// Names in another case are the same fields to a client.
	f.forge(f.fp, &core.Response{Status: 200, Header: http.Header{
		"set-cookie":        {"session=attacker"},
		"transfer-encoding": {"chunked"},
		"connection":        {"x-hop"},
		"X-Hop":             {"1"},
		"content-type":      {"text/plain"},
	}})
	y = f.retry()
	if !replayed(y) || len(y.sent.Header) != 1 || y.sent.Header["content-type"] == nil {
		t.Errorf("replayed header %v; want only content-type: set-cookie, transfer-encoding, connection and X-Hop filtered", y.sent.Header)
	}

	// An omitted body's record never replays a Content-Length.
	f.forge(f.fp, &core.Response{Status: 201, BodyOmitted: true, Header: http.Header{"Content-Length": {"9"}, "Location": {"/x"}}})
	z := f.retry()
	if _, ok := z.sent.Header["Content-Length"]; ok || z.sent.Header.Get("Location") != "/x" || len(z.sent.Body) != 0 {
		t.Errorf("replay of an omitted body: header %v, %d body bytes; want Location, no Content-Length, no body", z.sent.Header, len(z.sent.Body))
	}
}

// TestRecordsAreAuthenticatedUnderASecret checks the record MAC: a record
// the engine stored under its secret replays (without the MAC field), and
// one that it did not — no MAC, another MAC, another key's, another
// payload's, a changed byte — is refused.
func TestRecordsAreAuthenticatedUnderASecret(t *testing.T) {
	secret := core.WithHMACSecret([]byte("secret"))
	f := newForgeFixture(t, false, secret)
	y := f.retry()
	if !replayed(y) || y.sent.Status != 201 || string(y.sent.Body) != "made" {
		t.Fatalf("retry under a secret: replayed=%v status=%d body=%q; want the stored 201 replayed", replayed(y), y.sent.Status, y.sent.Body)
	}
	if _, ok := y.sent.Header[core.RecordMACHeader]; ok {
		t.Errorf("replay sent the record's MAC field: %v", y.sent.Header)
	}
	good, _ := f.mem.Lookup(context.Background(), f.skey, f.fp)
	if good.Response == nil || len(good.Response.Header[core.RecordMACHeader]) != 1 {
		t.Fatalf("stored record %+v; want one %s field", good.Response, core.RecordMACHeader)
	}
	mac := good.Response.Header[core.RecordMACHeader][0]

	// Another key's record under the same secret: the MAC binds the key.
	other := newForgeFixture(t, false, secret)
	other.e.Serve(newFake("k2", "b", created))
	k2 := other.rec.keyHashes(core.OutcomeExecuted)[1]
	k2rec, _ := other.mem.Lookup(context.Background(), k2, f.fp)

	withMAC := func(h http.Header, m string) http.Header {
		h = h.Clone()
		h[core.RecordMACHeader] = []string{m}
		return h
	}
	base := good.Response.Header
	for name, tc := range map[string]struct {
		otherPayload bool
		resp         *core.Response
	}{
		"NoMAC":          {false, &core.Response{Status: 201, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("made")}},
		"WrongMAC":       {false, &core.Response{Status: 201, Header: withMAC(base, strings.Repeat("A", len(mac))), Body: []byte("made")}},
		"ShortMAC":       {false, &core.Response{Status: 201, Header: withMAC(base, mac[:10]), Body: []byte("made")}},
		"TwoMACs":        {false, &core.Response{Status: 201, Header: http.Header{"Content-Type": {"text/plain"}, core.RecordMACHeader: {mac, mac}}, Body: []byte("made")}},
		"BodyChanged":    {false, &core.Response{Status: 201, Header: base, Body: []byte("mad!")}},
		"StatusChanged":  {false, &core.Response{Status: 200, Header: base, Body: []byte("made")}},
		"HeaderAdded":    {false, &core.Response{Status: 201, Header: withMAC(http.Header{"Content-Type": {"text/plain"}, "X-Extra": {"1"}}, mac), Body: []byte("made")}},
		"OmittedFlagSet": {false, &core.Response{Status: 201, Header: base, BodyOmitted: true}},
		"OtherKeysMAC":   {false, k2rec.Response},
		"OtherPayload":   {true, good.Response},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.resp == nil {
				t.Fatal("no record to forge from")
			}
			x := newFake("k", "b", created)
			if tc.otherPayload {
				// The genuine record, moved under another payload's
				// fingerprint: a request with that payload must get 422
				// or a fresh run, never this response.
				x = newFake("k", "other", created)
				x.cloneHeader = true
				f.forge(core.DefaultFingerprint(x, []byte("other")), tc.resp)
			} else {
				f.forge(f.fp, tc.resp)
			}
			f.e.Serve(x)
			if replayed(x) || x.runs != 0 || x.sent.Status != http.StatusServiceUnavailable {
				t.Errorf("retry over the forged record: replayed=%v runs=%d status=%d; want 503", replayed(x), x.runs, x.sent.Status)
			}
			f.forge(f.fp, good.Response) // the genuine record replays again
			if y := f.retry(); !replayed(y) {
				t.Errorf("genuine record not replayed after restoring it: status %d", y.sent.Status)
			}
		})
	}
}

// TestNonCanonicalNamesAreFilteredWhenStoring checks that a handler's
// header names in another case meet the same filter: "set-cookie" is
// Set-Cookie.
func TestNonCanonicalNamesAreFilteredWhenStoring(t *testing.T) {
	e := core.New(newStore(t))
	h := func([]byte) (*core.Response, error) {
		return &core.Response{Status: 201, Header: http.Header{"set-cookie": {"s=1"}, "keep-alive": {"timeout=5"}, "x-ok": {"1"}}}, nil
	}
	e.Serve(newFake("k", "b", h))
	y := newFake("k", "b", h)
	y.cloneHeader = true
	e.Serve(y)
	if !replayed(y) || len(y.sent.Header) != 1 || y.sent.Header["x-ok"] == nil {
		t.Errorf("replayed header %v; want only x-ok", y.sent.Header)
	}
}

// TestAHandlerCannotSetTheMACField checks that a handler's own field of
// the reserved name is not stored: it could otherwise pass a MAC along.
func TestAHandlerCannotSetTheMACField(t *testing.T) {
	for _, opts := range [][]core.Option{nil, {core.WithHMACSecret([]byte("s"))}} {
		e := core.New(newStore(t), opts...)
		h := func([]byte) (*core.Response, error) {
			return &core.Response{Status: 201, Header: http.Header{core.RecordMACHeader: {"forged"}, "A": {"1"}}}, nil
		}
		e.Serve(newFake("k", "b", h))
		y := newFake("k", "b", h)
		y.cloneHeader = true
		e.Serve(y)
		if !replayed(y) || y.sent.Header.Get(core.RecordMACHeader) != "" || y.sent.Header.Get("A") != "1" {
			t.Errorf("replay (secret %v): replayed=%v header %v; want a replay with A and without %s", opts != nil, replayed(y), y.sent.Header, core.RecordMACHeader)
		}
	}
}

// inFlightStore answers every claim in flight, with the given remaining
// lease, or fails it with err.
type inFlightStore struct {
	core.Store
	ra  time.Duration
	err error
}

func (s inFlightStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if s.err != nil {
		return core.Claim{}, s.err
	}
	return core.Claim{Status: core.ClaimInFlight, RetryAfter: s.ra}, nil
}

// TestRetryAfterIsBounded checks that the Retry-After of a 409 stays
// within [1 s, the lease] whatever remaining lease a store reports: a
// claim without a TTL, or leased until the year 3000, must not overflow
// or send clients away for centuries.
func TestRetryAfterIsBounded(t *testing.T) {
	for _, tc := range []struct {
		ra   time.Duration
		want string
	}{
		{math.MaxInt64, "30"},
		{math.MaxInt64 - 1, "30"},
		{time.Until(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), "30"},
		{time.Hour, "30"},
		{-time.Millisecond, "1"}, // Redis PTTL -1: no expiry
		{0, "1"},
		{time.Millisecond, "1"},
		{2500 * time.Millisecond, "3"},
	} {
		e := core.New(inFlightStore{Store: newStore(t), ra: tc.ra})
		x := newFake("k", "b", created)
		e.Serve(x)
		if x.sent.Status != http.StatusConflict || x.sent.Header.Get("Retry-After") != tc.want {
			t.Errorf("in flight with %v left: status %d Retry-After %q; want 409 with %s", tc.ra, x.sent.Status, x.sent.Header.Get("Retry-After"), tc.want)
		}
	}
}

// corruptingStore reports its key's record corrupt, as redisstore and
// pgxstore do for bytes that do not decode, until it is discarded.
type corruptingStore struct {
	*memstore.Store
	corrupt  bool
	discards []core.DiscardRequest
}

func (s *corruptingStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if s.corrupt {
		return core.Claim{}, errors.Join(core.ErrStoreUnavailable, core.ErrCorruptRecord)
	}
	return s.Store.Claim(ctx, req)
}

func (s *corruptingStore) Discard(ctx context.Context, req core.DiscardRequest) error {
	s.discards = append(s.discards, req)
	s.corrupt = false
	return nil
}

// TestStoreReportedCorruptionIsDiscarded checks a record the store itself
// cannot read: the engine asks the Discarder to remove it (with no
// response: the store compares the bytes it failed on) and claims again.
func TestStoreReportedCorruptionIsDiscarded(t *testing.T) {
	s := &corruptingStore{Store: newStore(t), corrupt: true}
	rec := &recorder{}
	e := core.New(s, core.WithObserver(rec))
	x := newFake("k", "b", created)
	e.Serve(x)
	if x.runs != 1 || x.sent.Status != 201 || len(s.discards) != 1 || s.discards[0].Response != nil || !errors.Is(s.discards[0].Reason, core.ErrCorruptRecord) {
		t.Errorf("claim over an unreadable record: runs=%d status=%d discards=%+v; want one discard without a response, then the handler run", x.runs, x.sent.Status, s.discards)
	}
	if !rec.has(core.EventRecordDiscarded) {
		t.Errorf("observer did not see %s", core.EventRecordDiscarded)
	}

	// A store that stays corrupt is discarded once per request, then 503.
	s.corrupt = true
	s2 := &stuckCorrupt{corruptingStore: s}
	e2 := core.New(s2)
	y := newFake("k2", "b", created)
	e2.Serve(y)
	if y.runs != 0 || y.sent.Status != http.StatusServiceUnavailable || len(s.discards) != 2 {
		t.Errorf("record corrupt again after its discard: runs=%d status=%d discards=%d; want 503 after one more discard", y.runs, y.sent.Status, len(s.discards))
	}
}

// stuckCorrupt discards nothing: the record stays unreadable.
type stuckCorrupt struct{ *corruptingStore }

func (s *stuckCorrupt) Discard(ctx context.Context, req core.DiscardRequest) error {
	s.discards = append(s.discards, req)
	return nil
}

// failingDiscard is a store whose record is unreadable and whose Discard
// fails.
type failingDiscard struct{ *corruptingStore }

var errDiscard = errors.New("discard failed")

func (s failingDiscard) Discard(ctx context.Context, req core.DiscardRequest) error {
	return errDiscard
}

// TestFailedDiscardAnswers503 checks that a record that cannot be removed
// is answered 503 and reported once, with both errors, and never as
// discarded.
func TestFailedDiscardAnswers503(t *testing.T) {
	rec := &recorder{}
	e := core.New(failingDiscard{&corruptingStore{Store: newStore(t), corrupt: true}}, core.WithObserver(rec))
	x := newFake("k", "b", created)
	e.Serve(x)
	if x.runs != 0 || x.sent.Status != http.StatusServiceUnavailable {
		t.Errorf("unreadable record, failing Discard: runs=%d status=%d; want 503", x.runs, x.sent.Status)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ev := range rec.evs {
		switch {
		case ev.Outcome == core.EventRecordDiscarded:
			t.Errorf("observer saw %s for a record that was not removed", ev.Outcome)
		case ev.Outcome == core.OutcomeStoreUnavailable && !(errors.Is(ev.Err, core.ErrCorruptRecord) && errors.Is(ev.Err, errDiscard)):
			t.Errorf("store-unavailable error %v; want it to wrap ErrCorruptRecord and the Discard error", ev.Err)
		}
	}
}

// TestUnauthenticatedRecordsUntil checks the upgrade window: until its
// end a record without a MAC replays; after it, or with a wrong MAC at
// any time, it is refused.
func TestUnauthenticatedRecordsUntil(t *testing.T) {
	secret := core.WithHMACSecret([]byte("secret"))
	legacy := &core.Response{Status: 201, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("before the upgrade")}
	for _, tc := range []struct {
		name   string
		until  time.Time
		resp   *core.Response
		replay bool
	}{
		{"NoMACInWindow", time.Now().Add(time.Hour), legacy, true},
		{"NoMACAfterWindow", time.Now().Add(-time.Second), legacy, false},
		{"WrongMACInWindow", time.Now().Add(time.Hour), &core.Response{Status: 201, Header: http.Header{core.RecordMACHeader: {"forged"}}, Body: []byte("x")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newForgeFixture(t, false, secret, core.WithUnauthenticatedRecordsUntil(tc.until))
			f.forge(f.fp, tc.resp)
			y := f.retry()
			if replayed(y) != tc.replay {
				t.Errorf("retry over the record: replayed=%v status=%d; want replayed=%v", replayed(y), y.sent.Status, tc.replay)
			}
			if tc.replay && string(y.sent.Body) != string(tc.resp.Body) {
				t.Errorf("replayed body %q; want %q", y.sent.Body, tc.resp.Body)
			}
		})
	}
}
