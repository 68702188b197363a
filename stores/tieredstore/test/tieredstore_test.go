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

// flaky wraps a memstore (a core.Store and a core.Cache) and fails every
// call while down is set.
type flaky struct {
	*memstore.Store
	down  atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("flaky: down")

func (f *flaky) fail() error {
	f.calls.Add(1)
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *flaky) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if err := f.fail(); err != nil {
		return core.Claim{}, err
	}
	return f.Store.Claim(ctx, req)
}

func (f *flaky) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Complete(ctx, key, token, resp, ttl)
}

func (f *flaky) Lookup(ctx context.Context, key string, fp core.Fingerprint) (core.Cached, error) {
	if err := f.fail(); err != nil {
		return core.Cached{}, err
	}
	return f.Store.Lookup(ctx, key, fp)
}

func (f *flaky) Put(ctx context.Context, key string, fp core.Fingerprint, resp *core.Response, ttl time.Duration) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Put(ctx, key, fp, resp, ttl)
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

// complete claims and completes key through s with resp.
func complete(t *testing.T, s core.Store, key string, resp *core.Response) {
	t.Helper()
	ctx := context.Background()
	req := claimReq(key)
	if c, err := s.Claim(ctx, req); err != nil || c.Status != core.ClaimAcquired {
		t.Fatalf("Claim(%s) = %v, %v; want acquired", key, c.Status, err)
	}
	if err := s.Complete(ctx, key, req.Token, resp, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func TestReadThrough(t *testing.T) {
	ctx := context.Background()
	hot, durable := newMem(t), &flaky{Store: newMem(t)}
	s := tieredstore.New(hot, durable)
	complete(t, s, "k", &core.Response{Status: 201, Header: http.Header{"A": {"b"}}, Body: []byte("x")})
	if hot.Len() != 0 {
		t.Fatalf("hot tier holds %d records after a claim and a complete; want none (it learns records from replays)", hot.Len())
	}
	c, err := s.Claim(ctx, claimReq("k"))
	if err != nil || c.Status != core.ClaimReplay || string(c.Response.Body) != "x" {
		t.Fatalf("first replay = %v, %v; want a replay from the durable tier", c.Status, err)
	}
	s.Flush()
	before := durable.calls.Load()
	for range 3 {
		c, err = s.Claim(ctx, claimReq("k"))
		if err != nil || c.Status != core.ClaimReplay || string(c.Response.Body) != "x" || c.Response.Header.Get("A") != "b" {
			t.Fatalf("warmed replay = %v, %v; want the stored response", c.Status, err)
		}
	}
	mismatch := claimReq("k")
	mismatch.Fingerprint = core.Fingerprint{2}
	if c, err := s.Claim(ctx, mismatch); err != nil || c.Status != core.ClaimMismatch {
		t.Fatalf("Claim with another payload = %v, %v; want mismatch", c.Status, err)
	}
	if n := durable.calls.Load() - before; n != 0 {
		t.Errorf("the durable tier was called %d times for warmed keys; want 0 (the hot tier answers replays and mismatches)", n)
	}
}

func TestHotLossWarmsFromDurable(t *testing.T) {
	ctx := context.Background()
	durable := newMem(t)
	s := tieredstore.New(newMem(t), durable)
	complete(t, s, "k", &core.Response{Status: 201, Header: http.Header{"A": {"b"}}, Body: []byte("x")})
	s.Claim(ctx, claimReq("k")) // warms the first hot tier
	s.Flush()
	hot2 := newMem(t) // the hot tier loses everything and comes back empty
	s = tieredstore.New(hot2, durable)
	c, err := s.Claim(ctx, claimReq("k"))
	if err != nil || c.Status != core.ClaimReplay || string(c.Response.Body) != "x" {
		t.Fatalf("Claim after hot loss = %v, %v; want replay from the durable tier", c.Status, err)
	}
	s.Flush()
	hc, err := hot2.Lookup(ctx, "k", core.Fingerprint{1})
	if err != nil || hc.Response == nil {
		t.Errorf("hot tier after warming: %+v, %v; want the record warmed", hc, err)
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
