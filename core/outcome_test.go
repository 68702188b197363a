package core_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// These tests check who decides a request's outcome (docs/contract.md
// C-DONE-2, C-DONE-3, C-DONE-5):
// the completion policy and the handler's declaration, never a client that
// went away; and that a store outage after the handler ran loses nothing.

func TestClientGoneAfterHandlerWroteIsStored(t *testing.T) {
	e := core.New(newStore(t))
	ctx, cancel := context.WithCancel(context.Background())
	x := newFake("k", "b", func([]byte) (*core.Response, error) {
		cancel() // the client times out while the provider call finishes
		return &core.Response{Status: 201, Header: http.Header{}, Body: []byte("charged")}, nil
	})
	x.ctx = ctx
	e.Serve(x)
	y := newFake("k", "b", created)
	e.Serve(y)
	if y.runs != 0 || y.sent.Extra.Get(core.DefaultReplayHeader) != "true" || string(y.sent.Body) != "charged" {
		t.Errorf("retry after the client left: runs=%d marks=%v body=%q; want the stored 201 replayed and no second run (docs/contract.md C-DONE-2: a client that goes away decides nothing)", y.runs, y.sent.Extra, y.sent.Body)
	}
}

func TestClientGoneBeforeHandlerWroteIsReleased(t *testing.T) {
	e := core.New(newStore(t))
	ctx, cancel := context.WithCancel(context.Background())
	x := newFake("k", "b", func([]byte) (*core.Response, error) {
		cancel()
		return &core.Response{Status: 200, Header: http.Header{}}, nil
	})
	x.ctx, x.silent = ctx, true
	e.Serve(x)
	y := newFake("k", "b", created)
	e.Serve(y)
	if y.runs != 1 || y.sent.Header.Get(core.DefaultReplayHeader) != "" {
		t.Errorf("retry after a cancelled request whose handler wrote nothing: runs=%d header=%v; want a fresh run (docs/contract.md C-DONE-2: only a handler that wrote nothing while cancelled is released)", y.runs, y.sent.Header)
	}
}

func TestHandlerWroteNothingUncancelledIsStored(t *testing.T) {
	e := core.New(newStore(t))
	x := newFake("k", "b", func([]byte) (*core.Response, error) {
		return &core.Response{Status: 200, Header: http.Header{}}, nil
	})
	x.silent = true
	e.Serve(x)
	y := newFake("k", "b", created)
	e.Serve(y)
	if y.runs != 0 {
		t.Errorf("retry of a request whose handler wrote nothing: ran again; want the implicit 200 replayed")
	}
}

func TestDeclaredOutcomeOverridesPolicy(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		declare  func(context.Context) bool
		wantRuns int // runs of the retry
	}{
		{"AppliedServerError", 502, core.MarkApplied, 0},
		{"NotAppliedSuccess", 201, core.MarkNotApplied, 1},
		{"NoDeclarationServerError", 502, nil, 1},
		{"NoDeclarationSuccess", 201, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := core.New(newStore(t))
			x := newFake("k", "b", func([]byte) (*core.Response, error) {
				return &core.Response{Status: tc.status, Header: http.Header{}, Body: []byte("first")}, nil
			})
			if tc.declare != nil {
				x.during = func(ctx context.Context) {
					if !tc.declare(ctx) {
						t.Errorf("declaring an outcome with the handler's context reported false; want true")
					}
				}
			}
			e.Serve(x)
			y := newFake("k", "b", created)
			e.Serve(y)
			if y.runs != tc.wantRuns {
				t.Errorf("retry after a %d: ran %d times; want %d (docs/contract.md C-DONE-3: a declared outcome overrides the completion policy)", tc.status, y.runs, tc.wantRuns)
			}
			if tc.wantRuns == 0 && (y.sent.Status != tc.status || string(y.sent.Body) != "first") {
				t.Errorf("retry replayed %d %q; want the stored %d %q", y.sent.Status, y.sent.Body, tc.status, "first")
			}
		})
	}
	if core.MarkApplied(context.Background()) || core.MarkNotApplied(context.Background()) {
		t.Errorf("declaring an outcome outside a guarded handler reported true; want false")
	}
}

func TestHeldClaimInHandlerContext(t *testing.T) {
	st := newStore(t)
	e := core.New(st)
	var key string
	var token core.Token
	x := newFake("k", "b", created)
	x.during = func(ctx context.Context) {
		var ok bool
		if key, token, ok = core.HeldClaim(ctx); !ok {
			t.Errorf("HeldClaim in a guarded handler: ok=false; want the claim")
		}
	}
	e.Serve(x)
	if key == "" || token == "" {
		t.Fatalf("HeldClaim = %q, %q; want the storage key and the fencing token", key, token)
	}
	// The token is the one the record was completed with.
	if err := st.Complete(context.Background(), key, token, &core.Response{Status: 201}, time.Hour); err != nil {
		t.Errorf("Complete again with the handler's token = %v; want nil (the record holds that token's completion)", err)
	}
	if _, _, ok := core.HeldClaim(context.Background()); ok {
		t.Errorf("HeldClaim outside a handler: ok=true; want false")
	}
}

// flakyStore fails Complete (and Renew, when asked) as an unreachable
// backend would, until healed.
type flakyStore struct {
	core.Store
	failComplete atomic.Bool
	failRenew    atomic.Bool
	completes    atomic.Int64
	renewals     atomic.Int64 // successful ones
}

var errDown = fmt.Errorf("test: backend down: %w", core.ErrStoreUnavailable)

func (s *flakyStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	s.completes.Add(1)
	if s.failComplete.Load() {
		return errDown
	}
	return s.Store.Complete(ctx, key, token, resp, ttl)
}

func (s *flakyStore) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	if s.failRenew.Load() {
		return errDown
	}
	err := s.Store.Renew(ctx, key, token, lease)
	if err == nil {
		s.renewals.Add(1)
	}
	return err
}

// waitFor polls cond until it holds or the bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStoreOutageAfterHandlerLosesNothing(t *testing.T) {
	st := &flakyStore{Store: newStore(t)}
	st.failComplete.Store(true)
	rec := &recorder{}
	e := core.New(st, core.WithObserver(rec), core.WithCompleteWait(50*time.Millisecond), core.WithLease(3*time.Second))
	x := newFake("k", "b", created)
	e.Serve(x)
	if x.sent.Status != http.StatusServiceUnavailable {
		t.Errorf("store down after the handler ran: sent %d; want 503 (the response is stored before it is sent)", x.sent.Status)
	}
	if !rec.has(core.OutcomeStoreDeferred) {
		t.Errorf("observer saw no %q", core.OutcomeStoreDeferred)
	}
	// A retry during the outage finds the claim held: 409, never a run.
	y := newFake("k", "b", created)
	e.Serve(y)
	if y.runs != 0 || y.sent.Status != http.StatusConflict {
		t.Errorf("retry during the outage: runs=%d status=%d; want 0 runs and 409", y.runs, y.sent.Status)
	}
	st.failComplete.Store(false) // the store is back within the lease
	waitFor(t, "the deferred response being stored", func() bool { return rec.has(core.EventStoredLate) })
	z := newFake("k", "b", created)
	e.Serve(z)
	if z.runs != 0 || z.sent.Status != http.StatusCreated || z.sent.Extra.Get(core.DefaultReplayHeader) != "true" {
		t.Errorf("retry after the outage: runs=%d status=%d; want the handler's 201 replayed, no second run (docs/contract.md C-DONE-5: an outage shorter than the lease loses nothing)", z.runs, z.sent.Status)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v; want nil", err)
	}
}

func TestStoreOutageRenewsTheClaimMeanwhile(t *testing.T) {
	st := &flakyStore{Store: newStore(t)}
	st.failComplete.Store(true)
	rec := &recorder{}
	const lease = time.Second // renewals every third of it; margins for a loaded machine
	e := core.New(st, core.WithObserver(rec), core.WithCompleteWait(0), core.WithLease(lease))
	x := newFake("k", "b", created)
	e.Serve(x) // the handler ends at once: no renewal while it ran
	if x.sent.Status != http.StatusServiceUnavailable {
		t.Fatalf("store refusing records: sent %d; want 503", x.sent.Status)
	}
	waitFor(t, "a renewal while storing", func() bool { return st.renewals.Load() > 0 })
	y := newFake("k", "b", created)
	e.Serve(y)
	if y.runs != 0 || y.sent.Status != http.StatusConflict {
		t.Errorf("retry while storing goes on: runs=%d status=%d; want 409, no run", y.runs, y.sent.Status)
	}
	// A store that answers renewals but refuses the record cannot keep the
	// key in flight past the window: the failure is reported, the claim
	// released, and a retry runs (the documented at-least-once case).
	waitFor(t, "the storing window to close", func() bool { return rec.has(core.EventCompletionLost) })
	z := newFake("k", "b", created)
	e.Serve(z)
	if z.runs != 1 {
		t.Errorf("retry after the window closed: runs=%d status=%d; want 1 (the key is released, never stuck)", z.runs, z.sent.Status)
	}
}

func TestCompleteReplyLostIsNotAFailure(t *testing.T) {
	st := &lostReplyStore{Store: newStore(t)}
	rec := &recorder{}
	e := core.New(st, core.WithObserver(rec))
	x := newFake("k", "b", created)
	e.Serve(x)
	if x.sent.Status != http.StatusCreated || rec.has(core.OutcomeStoreFailed) || rec.has(core.EventLeaseLost) {
		t.Errorf("Complete whose first reply was lost: sent %d, events %v; want 201 and no failure (completing is idempotent for its holder)", x.sent.Status, rec.outcomes())
	}
}

// lostReplyStore stores the first Complete but reports it failed, as when
// the reply is lost on the way back.
type lostReplyStore struct {
	core.Store
	once sync.Once
}

func (s *lostReplyStore) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	err := s.Store.Complete(ctx, key, token, resp, ttl)
	lost := false
	s.once.Do(func() { lost = true })
	if lost && err == nil {
		return errDown
	}
	return err
}

// lateClaimStore fails every Claim as a timed-out backend call, yet lets
// the claim land, as a client library's re-sent copy or a stalled server
// does.
type lateClaimStore struct{ core.Store }

func (s lateClaimStore) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	s.Store.Claim(ctx, req)
	return core.Claim{}, errors.Join(errDown, context.DeadlineExceeded)
}

func TestFailedClaimThatLandedIsReleased(t *testing.T) {
	inner := newStore(t)
	rec := &recorder{}
	e := core.New(lateClaimStore{inner}, core.WithObserver(rec))
	x := newFake("k", "b", created)
	e.Serve(x)
	if x.sent.Status != http.StatusServiceUnavailable {
		t.Fatalf("claim failed: sent %d; want 503", x.sent.Status)
	}
	waitFor(t, "the orphan claim's release", func() bool { return rec.has(core.EventOrphanReleased) })
	// The key is free again at once, not locked for a lease.
	healthy := core.New(inner)
	y := newFake("k", "b", created)
	healthy.Serve(y)
	if y.runs != 1 {
		t.Errorf("request after the failed claim: runs=%d status=%d; want it to run (no lease left behind that the engine cannot see)", y.runs, y.sent.Status)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func TestLeaseRenewedWhileHandlerRuns(t *testing.T) {
	st := newStore(t)
	rec := &recorder{}
	const lease = 600 * time.Millisecond
	e := core.New(st, core.WithObserver(rec), core.WithLease(lease))
	started, finish := make(chan struct{}), make(chan struct{})
	x := newFake("k", "b", func([]byte) (*core.Response, error) {
		close(started)
		<-finish
		return &core.Response{Status: 201, Header: http.Header{}}, nil
	})
	done := make(chan struct{})
	go func() { e.Serve(x); close(done) }()
	<-started
	waitFor(t, "three renewals", func() bool { return len(rec.keyHashes(core.EventLeaseRenewed)) >= 3 })
	// Three renewals in, the original lease is long gone: a duplicate is
	// still in flight.
	y := newFake("k", "b", created)
	e.Serve(y)
	close(finish)
	<-done
	if y.runs != 0 || y.sent.Status != http.StatusConflict {
		t.Errorf("duplicate after three renewals: runs=%d status=%d; want 409 (the lease is renewed while the handler runs)", y.runs, y.sent.Status)
	}
}

// releaseFailsOnce fails the first Release as an unreachable backend would.
type releaseFailsOnce struct {
	core.Store
	failed atomic.Bool
}

func (s *releaseFailsOnce) Release(ctx context.Context, key string, token core.Token) error {
	if s.failed.CompareAndSwap(false, true) {
		return errDown
	}
	return s.Store.Release(ctx, key, token)
}

func TestFailedReleaseIsRetried(t *testing.T) {
	st := &releaseFailsOnce{Store: newStore(t)}
	rec := &recorder{}
	e := core.New(st, core.WithObserver(rec)) // a 30 s lease
	x := newFake("k", "b", func([]byte) (*core.Response, error) {
		return &core.Response{Status: http.StatusBadGateway, Header: http.Header{}}, nil
	})
	e.Serve(x)
	waitFor(t, "the failed release retried", func() bool { return rec.has(core.EventReleasedLate) })
	y := newFake("k", "b", created)
	e.Serve(y)
	if y.runs != 1 || y.sent.Status != http.StatusCreated {
		t.Errorf("retry after a 502 whose release failed once: runs=%d status=%d; want the handler run at once, not 409 for the lease", y.runs, y.sent.Status)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

func TestOrphanReleaseOutlastsItsSchedule(t *testing.T) {
	inner := newStore(t)
	st := &downReleaseStore{lateClaimStore: lateClaimStore{inner}}
	st.down.Store(true)
	rec := &recorder{}
	e := core.New(st, core.WithObserver(rec), core.WithLease(8*time.Second))
	// The store stays down past the whole schedule (100 ms, 1 s, 5 s, and
	// the retries between its points), and comes back while the claim's
	// 8 s lease still runs.
	back := time.AfterFunc(5600*time.Millisecond, func() { st.down.Store(false) })
	defer back.Stop()
	e.Serve(newFake("k", "b", created))
	waitFor(t, "the orphan claim's release after the store came back", func() bool { return rec.has(core.EventReleasedLate) })
	y := newFake("k", "b", created)
	core.New(inner).Serve(y)
	if y.runs != 1 {
		t.Errorf("request after the orphan's releases failed, then succeeded: runs=%d status=%d; want it to run (no lease left behind)", y.runs, y.sent.Status)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// downReleaseStore fails every Release while down is set, counting the
// calls.
type downReleaseStore struct {
	lateClaimStore
	down  atomic.Bool
	calls atomic.Int64
}

func (s *downReleaseStore) Release(ctx context.Context, key string, token core.Token) error {
	s.calls.Add(1)
	if s.down.Load() {
		return errDown
	}
	return s.lateClaimStore.Release(ctx, key, token)
}

// TestOrphanReleaseFollowsTheStoreBack: an orphan claim's scheduled
// releases (100 ms, 1 s, 5 s after the failed Claim) meet a store that is
// down — a Redis failover in progress. Once the store is back, the claim is
// released within about a second, not at the schedule's next point: until
// then every retry of the key gets 409. (Before: released only at the 5 s
// point, 4 s after the store was back; the Sentinel failover scenario's
// slowest keys waited 6–7 s for it.)
func TestOrphanReleaseFollowsTheStoreBack(t *testing.T) {
	inner := newStore(t)
	st := &downReleaseStore{lateClaimStore: lateClaimStore{inner}}
	st.down.Store(true)
	rec := &recorder{}
	e := core.New(st, core.WithObserver(rec))
	begin := time.Now()
	e.Serve(newFake("k", "b", created))
	// The store comes back 2.1 s after the failed Claim: past the
	// schedule's 1 s point, 2.9 s before its 5 s point.
	time.Sleep(time.Until(begin.Add(2100 * time.Millisecond)))
	if st.calls.Load() < 2 {
		t.Fatalf("%d Release calls while the store was down; want the schedule's 100 ms and 1 s points at least", st.calls.Load())
	}
	st.down.Store(false)
	back := time.Now()
	deadline := back.Add(2500 * time.Millisecond)
	for !rec.has(core.EventOrphanReleased) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !rec.has(core.EventOrphanReleased) {
		t.Fatalf("orphan claim not released within 2.5 s of the store coming back (%d Release calls); want it released at the next try, not at the schedule's 5 s point", st.calls.Load())
	}
	y := newFake("k", "b", created)
	core.New(inner).Serve(y)
	if y.runs != 1 {
		t.Errorf("request after the orphan's release: runs=%d status=%d; want it to run", y.runs, y.sent.Status)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}
