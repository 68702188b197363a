package tieredstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
)

// hotReads is a hot tier that counts the replays it answers and can run a
// hook (cancelling its caller's request) as a lookup starts.
type hotReads struct {
	core.Cache
	replays atomic.Int64
	mu      sync.Mutex
	onCall  func()
}

func (h *hotReads) Lookup(ctx context.Context, key string, fp core.Fingerprint) (core.Cached, error) {
	h.mu.Lock()
	hook := h.onCall
	h.onCall = nil
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	c, err := h.Cache.Lookup(ctx, key, fp)
	if err == nil && c.Response != nil {
		h.replays.Add(1)
	}
	return c, err
}

// outcomes records the observer's events.
type outcomes struct {
	mu  sync.Mutex
	got map[core.Outcome]int
}

func (o *outcomes) Observe(_ context.Context, ev core.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.got == nil {
		o.got = map[core.Outcome]int{}
	}
	o.got[ev.Outcome]++
}

func (o *outcomes) count(x core.Outcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got[x]
}

// TestBreakerProbeCancelled: Redis stops, the breaker opens, Redis comes
// back, and the request that carries the half-open probe is cancelled —
// before it starts, or while its lookup runs. The probe's outcome must
// still be recorded, or the breaker waits for it forever: the breaker
// closes, the recovered event is emitted and the next replays are read from
// Redis again.
func TestBreakerProbeCancelled(t *testing.T) {
	const cooldown = 200 * time.Millisecond
	for _, when := range []string{"Before", "During"} {
		t.Run(when, func(t *testing.T) {
			rs := svctest.StartRedis(t)
			hot := &hotReads{Cache: redisstore.New(redisClient(t, rs.URL()))}
			obs := &outcomes{}
			st := tieredstore.New(hot, pgStore(t, svctest.PostgresURL(t)),
				tieredstore.WithHotTimeout(100*time.Millisecond), tieredstore.WithBreaker(2, cooldown), tieredstore.WithObserver(obs))
			req := core.ClaimRequest{Key: randHex(16), Fingerprint: core.Fingerprint{7}, Token: core.Token(randHex(8)), Lease: 10 * time.Second}
			ctx := context.Background()
			if c, err := st.Claim(ctx, req); err != nil || c.Status != core.ClaimAcquired {
				t.Fatalf("Claim = %v, %v; want acquired", c.Status, err)
			}
			if err := st.Complete(ctx, req.Key, req.Token, &core.Response{Status: 201, Body: []byte("stored")}, time.Hour); err != nil {
				t.Fatal(err)
			}
			replay := func(ctx context.Context) (core.Claim, error) {
				r := req
				r.Token = core.Token(randHex(8))
				return st.Claim(ctx, r)
			}
			if _, err := replay(ctx); err != nil { // warms Redis
				t.Fatal(err)
			}
			st.Flush()
			if _, err := replay(ctx); err != nil || hot.replays.Load() != 1 {
				t.Fatalf("warmed replay: %v, %d hot reads; want the record read from Redis", err, hot.replays.Load())
			}

			rs.Stop()
			for i := 0; i < 5 && !st.Degraded(); i++ {
				if c, err := replay(ctx); err != nil || c.Status != core.ClaimReplay {
					t.Fatalf("replay with Redis down = %v, %v; want Postgres to answer", c.Status, err)
				}
			}
			if !st.Degraded() || obs.count(core.EventStoreDegraded) != 1 {
				t.Fatalf("after Redis stopped: degraded=%v, %d degraded events; want the breaker open and one event", st.Degraded(), obs.count(core.EventStoreDegraded))
			}
			rs.Start()
			time.Sleep(cooldown + 50*time.Millisecond)

			// The probe's request is cancelled.
			pctx, cancel := context.WithCancel(ctx)
			if when == "Before" {
				cancel()
			} else {
				hot.mu.Lock()
				hot.onCall = cancel
				hot.mu.Unlock()
			}
			replay(pctx) // its answer does not matter: its request is gone
			cancel()

			// Then live requests, spread over a few cool-downs.
			const n = 20
			hot.replays.Store(0)
			for i := 0; i < n; i++ {
				if c, err := replay(ctx); err != nil || c.Status != core.ClaimReplay || string(c.Response.Body) != "stored" {
					t.Fatalf("replay %d = %v, %v; want the stored response", i, c.Status, err)
				}
				time.Sleep(cooldown / 4)
			}
			got := hot.replays.Load()
			t.Logf("after Redis came back and the probe's request was cancelled %s its lookup: %d of %d replays read from Redis, recovered events %d",
				map[string]string{"Before": "before", "During": "during"}[when], got, n, obs.count(core.EventStoreRecovered))
			if got != n || st.Degraded() || obs.count(core.EventStoreRecovered) != 1 {
				t.Errorf("%d of %d replays read from Redis, degraded=%v, %d recovered events; want %d, false, 1: a cancelled probe must not keep the breaker open",
					got, n, st.Degraded(), obs.count(core.EventStoreRecovered), n)
			}
		})
	}
}
