package tieredstore_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

// These tests compose two memory stores to check the composition rules in
// isolation; tiered_integration_test.go runs the same and more over real
// Redis and Postgres.

func newMem(t *testing.T) *memstore.Store {
	s := memstore.New()
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformanceOverMemory(t *testing.T) {
	conformance.TestStore(t, func(t *testing.T) core.Store {
		return tieredstore.New(newMem(t), newMem(t))
	})
}

// flaky wraps a store and fails every call while down is set.
type flaky struct {
	core.Store
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("flaky: down")

func (f *flaky) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return core.Claim{}, errDown
	}
	return f.Store.Claim(ctx, req)
}

func (f *flaky) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	f.calls.Add(1)
	if f.down.Load() {
		return errDown
	}
	return f.Store.Complete(ctx, key, token, resp, ttl)
}

type events struct {
	mu  sync.Mutex
	out []core.Outcome
}

func (e *events) Observe(_ context.Context, ev core.Event) {
	e.mu.Lock()
	e.out = append(e.out, ev.Outcome)
	e.mu.Unlock()
}

func (e *events) count(o core.Outcome) int {
	n := 0
	for _, x := range e.list() {
		if x == o {
			n++
		}
	}
	return n
}

func (e *events) list() []core.Outcome {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]core.Outcome(nil), e.out...)
}

func claimReq(key string) core.ClaimRequest {
	return core.ClaimRequest{Key: key, Fingerprint: core.Fingerprint{1}, Token: core.Token("tok-" + key + time.Now().String()), Lease: time.Second}
}

func TestHotLossWarmsFromDurable(t *testing.T) {
	ctx := context.Background()
	hot, durable := newMem(t), newMem(t)
	s := tieredstore.New(hot, durable)
	req := claimReq("k")
	if c, err := s.Claim(ctx, req); err != nil || c.Status != core.ClaimAcquired {
		t.Fatalf("Claim = %v, %v; want acquired", c.Status, err)
	}
	resp := &core.Response{Status: 201, Header: http.Header{"A": {"b"}}, Body: []byte("x")}
	if err := s.Complete(ctx, "k", req.Token, resp, time.Hour); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	hot.Close() // the hot tier loses everything and comes back empty
	hot2 := newMem(t)
	s = tieredstore.New(hot2, durable)
	c, err := s.Claim(ctx, claimReq("k"))
	if err != nil || c.Status != core.ClaimReplay || string(c.Response.Body) != "x" {
		t.Fatalf("Claim after hot loss = %v, %v; want replay from the durable tier", c.Status, err)
	}
	hc, err := hot2.Claim(ctx, claimReq("k"))
	if err != nil || hc.Status != core.ClaimReplay {
		t.Errorf("hot tier after warming: %v, %v; want the record warmed", hc.Status, err)
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	ctx := context.Background()
	hot := &flaky{Store: newMem(t)}
	ev := &events{}
	s := tieredstore.New(hot, newMem(t), tieredstore.WithBreaker(2, 100*time.Millisecond), tieredstore.WithObserver(ev))
	hot.down.Store(true)
	for i := 0; i < 10; i++ {
		key := "down-" + string(rune('a'+i))
		c, err := s.Claim(ctx, claimReq(key))
		if err != nil || c.Status != core.ClaimAcquired {
			t.Fatalf("Claim with hot tier down = %v, %v; want the durable tier to serve", c.Status, err)
		}
	}
	if !s.Degraded() {
		t.Fatal("store not degraded after hot failures")
	}
	if n := hot.calls.Load(); n > 3 {
		t.Errorf("hot tier called %d times while the breaker should be open; want at most the threshold", n)
	}
	hot.down.Store(false)
	time.Sleep(150 * time.Millisecond)
	if _, err := s.Claim(ctx, claimReq("probe")); err != nil {
		t.Fatal(err)
	}
	if s.Degraded() {
		t.Error("store still degraded after a successful probe")
	}
	got := ev.list()
	if len(got) != 2 || got[0] != core.EventStoreDegraded || got[1] != core.EventStoreRecovered {
		t.Errorf("observer saw %v; want [store-degraded store-recovered]", got)
	}
}

func TestDurableDownIsUnavailable(t *testing.T) {
	durable := &flaky{Store: newMem(t)}
	durable.down.Store(true)
	s := tieredstore.New(newMem(t), durable)
	_, err := s.Claim(context.Background(), claimReq("k"))
	if err == nil {
		t.Fatal("Claim succeeded with the durable tier down")
	}
}
