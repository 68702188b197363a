package core_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// The rows of the state machine (docs/contract.md C-STATE-1 to C-STATE-5)
// at the engine, without
// an adapter: a broken engine fails here, not only in the conformance
// suite of some adapter.

// wantProblemSent checks that x was answered with the problem of code and
// status, and that its handler did not run.
func wantProblemSent(t *testing.T, what string, x *fakeExchange, status int, code string) {
	t.Helper()
	switch {
	case x.sent == nil:
		t.Errorf("%s: nothing sent; want %d %s", what, status, code)
	case x.sent.Status != status || !strings.Contains(string(x.sent.Body), `"`+code+`"`):
		t.Errorf("%s: %d %s; want %d with code %s", what, x.sent.Status, x.sent.Body, status, code)
	case replayed(x):
		t.Errorf("%s: the problem is marked as a replay", what)
	}
	if x.runs != 0 {
		t.Errorf("%s: the handler ran %d times; want 0", what, x.runs)
	}
}

func TestMismatchIsRefusedNeverReplayed(t *testing.T) {
	rec := &recorder{}
	e := core.New(newStore(t), core.WithObserver(rec))
	first := newFake("k", `{"amount":1}`, created)
	e.Serve(first)
	if first.runs != 1 || first.sent.Status != 201 {
		t.Fatalf("first: runs=%d status=%d; want 201", first.runs, first.sent.Status)
	}
	for name, x := range map[string]*fakeExchange{
		"body":  newFake("k", `{"amount":2}`, created),
		"path":  func() *fakeExchange { x := newFake("k", `{"amount":1}`, created); x.path = "/other"; return x }(),
		"query": func() *fakeExchange { x := newFake("k", `{"amount":1}`, created); x.query = "a=1"; return x }(),
	} {
		e.Serve(x)
		wantProblemSent(t, "same key, other "+name, x, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch)
	}
	if n := len(rec.keyHashes(core.OutcomeMismatch)); n != 3 {
		t.Errorf("observer saw %d mismatches; want 3", n)
	}
	again := newFake("k", `{"amount":1}`, created)
	e.Serve(again)
	if !replayed(again) || again.runs != 0 {
		t.Errorf("same payload after the mismatches: replayed=%v runs=%d; want the first response replayed", replayed(again), again.runs)
	}
}

func TestMismatchIsReportedBeforeInFlight(t *testing.T) {
	e := core.New(newStore(t))
	started, finish := make(chan struct{}), make(chan struct{})
	holder := newFake("k", "a", func([]byte) (*core.Response, error) {
		close(started)
		<-finish
		return created(nil)
	})
	done := make(chan struct{})
	go func() { e.Serve(holder); close(done) }()
	<-started
	other := newFake("k", "b", created)
	e.Serve(other)
	wantProblemSent(t, "other payload while in flight", other, http.StatusUnprocessableEntity, core.CodeFingerprintMismatch)
	same := newFake("k", "a", created)
	e.Serve(same)
	wantProblemSent(t, "same payload while in flight", same, http.StatusConflict, core.CodeInFlight)
	close(finish)
	<-done
}

func TestServerErrorIsReleasedNeverStored(t *testing.T) {
	rec := &recorder{}
	e := core.New(newStore(t), core.WithObserver(rec))
	var calls atomic.Int64
	statuses := []int{500, 503} // then 201
	handler := func([]byte) (*core.Response, error) {
		if n := calls.Add(1); n <= int64(len(statuses)) {
			return &core.Response{Status: statuses[n-1], Header: http.Header{}, Body: []byte("down")}, nil
		}
		return created(nil)
	}
	for i, want := range statuses {
		x := newFake("k", "b", handler)
		e.Serve(x)
		if x.runs != 1 || x.sent.Status != want || replayed(x) {
			t.Errorf("attempt %d: runs=%d status=%d replayed=%v; want the handler run and its %d sent (a 5xx is released, never replayed)",
				i+1, x.runs, x.sent.Status, replayed(x), want)
		}
	}
	if n := len(rec.keyHashes(core.OutcomeReleased)); n != 2 {
		t.Errorf("observer saw %d releases; want 2", n)
	}
	x := newFake("k", "b", handler)
	e.Serve(x)
	if x.runs != 1 || x.sent.Status != 201 {
		t.Errorf("third attempt: runs=%d status=%d; want the handler run, 201", x.runs, x.sent.Status)
	}
	y := newFake("k", "b", handler)
	e.Serve(y)
	if !replayed(y) || y.sent.Status != 201 || y.runs != 0 {
		t.Errorf("fourth attempt: replayed=%v status=%d runs=%d; want the 201 replayed", replayed(y), y.sent.Status, y.runs)
	}
}

// downStore fails every claim, as an unreachable backend does.
type downStore struct{ core.Store }

func (downStore) Claim(context.Context, core.ClaimRequest) (core.Claim, error) {
	return core.Claim{}, fmt.Errorf("down: %w", core.ErrStoreUnavailable)
}

func TestStoreDownFailsClosedOrOpen(t *testing.T) {
	for _, open := range []bool{false, true} {
		t.Run(fmt.Sprintf("failOpen=%v", open), func(t *testing.T) {
			rec := &recorder{}
			e := core.New(downStore{newStore(t)}, core.WithObserver(rec), core.WithFailOpen(open))
			t.Cleanup(func() { e.Shutdown(context.Background()) })
			for i := range 2 {
				x := newFake("k", "b", created)
				e.Serve(x)
				switch {
				case open && (x.runs != 1 || x.sent.Status != 201 || replayed(x)):
					t.Errorf("attempt %d, fail-open: runs=%d status=%d; want the handler run unguarded, every time", i+1, x.runs, x.sent.Status)
				case !open:
					wantProblemSent(t, fmt.Sprintf("attempt %d, fail-closed", i+1), x, http.StatusServiceUnavailable, core.CodeStoreUnavailable)
					if x.sent != nil && x.sent.Header.Get("Retry-After") == "" {
						t.Errorf("attempt %d: 503 without Retry-After", i+1)
					}
				}
			}
			want := core.OutcomeStoreUnavailable
			if open {
				want = core.OutcomeFailOpen
			}
			if n := len(rec.keyHashes(want)); n != 2 {
				t.Errorf("observer saw %d %s; want 2", n, want)
			}
		})
	}
}

func TestWaitForInFlight(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wait   time.Duration
		finish bool // the holder finishes while the duplicate waits
	}{
		{"ReplaysWhenDone", 10 * time.Second, true},
		{"ConflictWhenTimeIsUp", 150 * time.Millisecond, false},
		{"Off", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := core.New(newStore(t), core.WithWaitForInFlight(tc.wait))
			started, finish := make(chan struct{}), make(chan struct{})
			holder := newFake("k", "b", func([]byte) (*core.Response, error) {
				close(started)
				<-finish
				return created(nil)
			})
			done := make(chan struct{})
			go func() { e.Serve(holder); close(done) }()
			<-started
			dup := newFake("k", "b", created)
			dupDone := make(chan struct{})
			go func() { e.Serve(dup); close(dupDone) }()
			if tc.finish && tc.wait > 0 {
				time.Sleep(50 * time.Millisecond) // the duplicate is waiting, or about to
				close(finish)
				<-dupDone
			} else {
				<-dupDone
				close(finish)
			}
			<-done
			if tc.finish && tc.wait > 0 {
				if !replayed(dup) || dup.runs != 0 || dup.sent.Status != 201 {
					t.Errorf("duplicate waiting for the holder: replayed=%v runs=%d status=%d; want the holder's 201 replayed", replayed(dup), dup.runs, dup.sent.Status)
				}
				return
			}
			wantProblemSent(t, "duplicate", dup, http.StatusConflict, core.CodeInFlight)
		})
	}
}
