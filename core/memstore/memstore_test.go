package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

var bg = context.Background()

func claim(t *testing.T, st *memstore.Store, key string, fp byte, tok core.Token, lease time.Duration) core.Claim {
	t.Helper()
	c, err := st.Claim(bg, core.ClaimRequest{Key: key, Fingerprint: core.Fingerprint{fp}, Token: tok, Lease: lease})
	if err != nil {
		t.Fatalf("Claim(%q, token %q) error: %v", key, tok, err)
	}
	return c
}

func wantStatus(t *testing.T, c core.Claim, want core.ClaimStatus, what string) {
	t.Helper()
	if c.Status != want {
		t.Errorf("%s = %v; want %v", what, c.Status, want)
	}
}

func complete(t *testing.T, st *memstore.Store, key string, tok core.Token, body string, ttl time.Duration) {
	t.Helper()
	resp := &core.Response{Status: 201, Header: http.Header{"X-Key": {key}}, Body: []byte(body)}
	if err := st.Complete(bg, key, tok, resp, ttl); err != nil {
		t.Fatalf("Complete(%q, token %q) error: %v", key, tok, err)
	}
}

// TestLeaseExpiry checks, on the fake clock of a synctest bubble, that a
// lease lasts exactly its duration and that a lapsed holder is fenced out.
func TestLeaseExpiry(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		synctest.Test(t, func(t *testing.T) {
			st := memstore.New(hashing...)
			defer st.Close()

			wantStatus(t, claim(t, st, "k", 1, "a", 30*time.Second), core.ClaimAcquired, "first Claim")
			time.Sleep(29 * time.Second)
			c := claim(t, st, "k", 1, "b", 30*time.Second)
			wantStatus(t, c, core.ClaimInFlight, "Claim at 29s of a 30s lease")
			if c.RetryAfter != time.Second {
				t.Errorf("Claim at 29s of a 30s lease: RetryAfter = %v; want 1s", c.RetryAfter)
			}
			if got := claim(t, st, "k", 2, "b", 30*time.Second); got.Status != core.ClaimMismatch {
				t.Errorf("Claim with another fingerprint while in flight = %v; want mismatch", got.Status)
			}

			time.Sleep(time.Second)
			wantStatus(t, claim(t, st, "k", 2, "b", 30*time.Second), core.ClaimAcquired,
				"Claim at 30s of a 30s lease, other fingerprint")
			for name, err := range map[string]error{
				"Renew":    st.Renew(bg, "k", "a", time.Minute),
				"Complete": st.Complete(bg, "k", "a", &core.Response{Status: 200}, time.Hour),
				"Release":  st.Release(bg, "k", "a"),
			} {
				if !errors.Is(err, core.ErrLeaseLost) {
					t.Errorf("%s with the lapsed token = %v; want ErrLeaseLost", name, err)
				}
			}
			wantStatus(t, claim(t, st, "k", 2, "c", 30*time.Second), core.ClaimInFlight, "Claim after stale calls")
		})
	})
}

func TestRenew(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		synctest.Test(t, func(t *testing.T) {
			st := memstore.New(hashing...)
			defer st.Close()

			claim(t, st, "k", 1, "a", 10*time.Second)
			time.Sleep(9 * time.Second)
			if err := st.Renew(bg, "k", "a", 10*time.Second); err != nil {
				t.Fatalf("Renew: %v", err)
			}
			time.Sleep(9 * time.Second)
			c := claim(t, st, "k", 1, "b", time.Second)
			wantStatus(t, c, core.ClaimInFlight, "Claim 9s after a 10s renewal")
			if c.RetryAfter != time.Second {
				t.Errorf("RetryAfter = %v; want 1s", c.RetryAfter)
			}
			time.Sleep(time.Second)
			if err := st.Renew(bg, "k", "a", 10*time.Second); !errors.Is(err, core.ErrLeaseLost) {
				t.Errorf("Renew after the lease lapsed = %v; want ErrLeaseLost", err)
			}
		})
	})
}

func TestTTL(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		synctest.Test(t, func(t *testing.T) {
			st := memstore.New(hashing...)
			defer st.Close()

			claim(t, st, "k", 1, "a", time.Minute)
			complete(t, st, "k", "a", "done", 24*time.Hour)
			time.Sleep(24*time.Hour - time.Nanosecond)
			wantStatus(t, claim(t, st, "k", 1, "b", time.Minute), core.ClaimReplay, "Claim 1ns before expiry")
			time.Sleep(time.Nanosecond)
			wantStatus(t, claim(t, st, "k", 2, "b", time.Minute), core.ClaimAcquired, "Claim at expiry, other fingerprint")
		})
	})
}

func TestJanitorSweeps(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		synctest.Test(t, func(t *testing.T) {
			st := memstore.New(append(hashing, memstore.WithSweepInterval(time.Minute))...)
			defer st.Close()

			for i := range 100 {
				key := fmt.Sprint(i)
				claim(t, st, key, 1, "a", time.Second)
				if i%2 == 0 {
					complete(t, st, key, "a", "x", 30*time.Second)
				}
			}
			claim(t, st, "long", 1, "a", time.Hour)
			if n := st.Len(); n != 101 {
				t.Fatalf("Len() = %d; want 101", n)
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			if n := st.Len(); n != 1 {
				t.Errorf("Len() after one sweep = %d; want 1 (only the live claim)", n)
			}
		})
	})
}

func TestNoJanitor(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		synctest.Test(t, func(t *testing.T) {
			st := memstore.New(append(hashing, memstore.WithSweepInterval(0))...)
			defer st.Close()
			claim(t, st, "k", 1, "a", time.Second)
			time.Sleep(time.Hour)
			if n := st.Len(); n != 1 {
				t.Errorf("Len() = %d; want 1: no janitor runs", n)
			}
			wantStatus(t, claim(t, st, "k", 1, "b", time.Second), core.ClaimAcquired, "Claim of an expired key")
		})
	})
}

// TestEviction checks the documented rule: expired records go first, then
// the completed record nearest to expiry; live claims never.
func TestEviction(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		synctest.Test(t, func(t *testing.T) {
			st := memstore.New(append(hashing, memstore.WithShards(1), memstore.WithMaxEntries(3), memstore.WithSweepInterval(0))...)
			defer st.Close()

			// Three completed records; "b" expires first although stored second.
			for key, ttl := range map[string]time.Duration{"a": 3 * time.Hour, "b": time.Hour, "c": 2 * time.Hour} {
				claim(t, st, key, 1, "t", time.Minute)
				complete(t, st, key, "t", key, ttl)
			}
			wantStatus(t, claim(t, st, "d", 1, "t", time.Minute), core.ClaimAcquired, `Claim("d") in a full shard`)
			if n := st.Len(); n != 3 {
				t.Errorf("Len() = %d; want 3", n)
			}
			wantStatus(t, claim(t, st, "a", 1, "x", time.Minute), core.ClaimReplay, `Claim("a")`)
			wantStatus(t, claim(t, st, "c", 1, "x", time.Minute), core.ClaimReplay, `Claim("c")`)
			// "b" was evicted; claiming it again evicts "c", now nearest to expiry.
			wantStatus(t, claim(t, st, "b", 1, "x", time.Minute), core.ClaimAcquired, `Claim("b") after eviction`)
			wantStatus(t, claim(t, st, "a", 1, "x", time.Minute), core.ClaimReplay, `Claim("a")`)
			wantStatus(t, claim(t, st, "d", 1, "x", time.Minute), core.ClaimInFlight, `Claim("d"): live claims are never evicted`)
			wantStatus(t, claim(t, st, "b", 1, "y", time.Minute), core.ClaimInFlight, `Claim("b"): live claims are never evicted`)

			// Now: "a" completed, "b" and "d" pending. A full shard of live
			// claims after "a" goes is full for good.
			wantStatus(t, claim(t, st, "e", 1, "x", time.Minute), core.ClaimAcquired, `Claim("e") evicting "a"`)
			_, err := st.Claim(bg, core.ClaimRequest{Key: "f", Fingerprint: core.Fingerprint{1}, Token: "x", Lease: time.Minute})
			if !errors.Is(err, memstore.ErrFull) || !errors.Is(err, core.ErrStoreUnavailable) {
				t.Errorf(`Claim("f") in a shard of live claims = %v; want ErrFull wrapping ErrStoreUnavailable`, err)
			}
			for _, key := range []string{"b", "d", "e"} {
				wantStatus(t, claim(t, st, key, 1, "y", time.Minute), core.ClaimInFlight, fmt.Sprintf("Claim(%q) after ErrFull", key))
			}
			// Once their leases lapse, the room is reclaimed before anything else.
			time.Sleep(time.Minute)
			wantStatus(t, claim(t, st, "f", 1, "x", time.Minute), core.ClaimAcquired, `Claim("f") after leases lapsed`)
			if n := st.Len(); n != 1 {
				t.Errorf("Len() = %d; want 1: expired records dropped before eviction", n)
			}
		})
	})
}

func TestExpiredDroppedBeforeEviction(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		synctest.Test(t, func(t *testing.T) {
			st := memstore.New(append(hashing, memstore.WithShards(1), memstore.WithMaxEntries(2), memstore.WithSweepInterval(0))...)
			defer st.Close()
			claim(t, st, "done", 1, "t", time.Minute)
			complete(t, st, "done", "t", "x", time.Hour)
			claim(t, st, "lapsing", 1, "t", time.Second)
			time.Sleep(2 * time.Second)
			wantStatus(t, claim(t, st, "new", 1, "t", time.Minute), core.ClaimAcquired, `Claim("new")`)
			wantStatus(t, claim(t, st, "done", 1, "u", time.Minute), core.ClaimReplay,
				`Claim("done"): a lapsed claim must be dropped before a completed record is evicted`)
		})
	})
}

func TestKeptNotCopied(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	claim(t, st, "k", 1, "a", time.Minute)
	in := &core.Response{Status: 200, Header: http.Header{"A": {"1", "2"}}, Body: []byte("body"), Extra: http.Header{"X": {"y"}}}
	if err := st.Complete(bg, "k", "a", in, time.Hour); err != nil {
		t.Fatal(err)
	}
	want := &core.Response{Status: 200, Header: http.Header{"A": {"1", "2"}}, Body: []byte("body")}
	if in.Extra == nil || in.Body == nil {
		t.Fatalf("Complete modified its argument: %+v", in)
	}
	got := claim(t, st, "k", 1, "b", time.Minute).Response
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("replay = %+v; want %+v (Extra is never stored)", got, want)
	}
	// The caller handed the response over: the store keeps its body and
	// header instead of copying them, and every replay shares the record.
	if &got.Body[0] != &in.Body[0] {
		t.Errorf("the replayed body is a copy; want the body handed to Complete")
	}
	if again := claim(t, st, "k", 1, "c", time.Minute).Response; again != got {
		t.Errorf("second replay = %p; want the shared response %p", again, got)
	}
}

func TestOversizedBufferTrimmed(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	claim(t, st, "k", 1, "a", time.Minute)
	buf := make([]byte, 3, 64<<10) // a capture buffer far larger than its body
	copy(buf, "abc")
	if err := st.Complete(bg, "k", "a", &core.Response{Status: 200, Body: buf}, time.Hour); err != nil {
		t.Fatal(err)
	}
	got := claim(t, st, "k", 1, "b", time.Minute).Response
	if string(got.Body) != "abc" || cap(got.Body) >= 4096 {
		t.Errorf("replayed body %q with capacity %d; want abc in a trimmed copy", got.Body, cap(got.Body))
	}
}

func TestEmptyBody(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	for i, body := range [][]byte{nil, {}} {
		key := fmt.Sprint(i)
		claim(t, st, key, 1, "a", time.Minute)
		if err := st.Complete(bg, key, "a", &core.Response{Status: 204, Body: body}, time.Hour); err != nil {
			t.Fatal(err)
		}
		got := claim(t, st, key, 1, "b", time.Minute).Response
		if got.Body == nil || len(got.Body) != 0 {
			t.Errorf("body stored as %#v came back as %#v; want non-nil empty", body, got.Body)
		}
		if got.Header == nil || len(got.Header) != 0 {
			t.Errorf("nil header came back as %#v; want non-nil empty", got.Header)
		}
	}
}

func TestContext(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := st.Claim(ctx, core.ClaimRequest{Key: "k", Token: "a", Lease: time.Minute})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("Claim(cancelled ctx) = %v; want context.Canceled and ErrStoreUnavailable", err)
	}
	claim(t, st, "k", 0, "a", time.Minute)
	dctx, dcancel := context.WithDeadline(bg, time.Now().Add(-time.Second))
	defer dcancel()
	for name, err := range map[string]error{
		"Renew":    st.Renew(dctx, "k", "a", time.Minute),
		"Complete": st.Complete(dctx, "k", "a", &core.Response{Status: 200}, time.Hour),
		"Release":  st.Release(dctx, "k", "a"),
	} {
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("%s(expired ctx) = %v; want context.DeadlineExceeded and ErrStoreUnavailable", name, err)
		}
	}
	wantStatus(t, claim(t, st, "k", 0, "b", time.Minute), core.ClaimInFlight, "Claim after calls with a dead context")
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	st := memstore.New(memstore.WithSweepInterval(time.Millisecond))
	claim(t, st, "k", 1, "a", time.Minute)
	time.Sleep(5 * time.Millisecond)
	for i := range 2 {
		if err := st.Close(); err != nil {
			t.Errorf("Close() #%d = %v; want nil", i+1, err)
		}
	}
	_, err := st.Claim(bg, core.ClaimRequest{Key: "k", Token: "b", Lease: time.Minute})
	errs := map[string]error{
		"Claim":    err,
		"Renew":    st.Renew(bg, "k", "a", time.Minute),
		"Complete": st.Complete(bg, "k", "a", &core.Response{Status: 200}, time.Hour),
		"Release":  st.Release(bg, "k", "a"),
	}
	for name, err := range errs {
		if !errors.Is(err, memstore.ErrClosed) || !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("%s after Close = %v; want ErrClosed wrapping ErrStoreUnavailable", name, err)
		}
	}
	if n := st.Len(); n != 0 {
		t.Errorf("Len() after Close = %d; want 0", n)
	}
	// Close waits for the janitor, so the count is back at once; allow
	// unrelated runtime goroutines a moment to settle.
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d before New, %d after Close; the janitor leaked", before, after)
	}
}

func TestCompleteNil(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	claim(t, st, "k", 1, "a", time.Minute)
	if err := st.Complete(bg, "k", "a", nil, time.Hour); err == nil {
		t.Error("Complete(nil response) = nil; want an error")
	}
	wantStatus(t, claim(t, st, "k", 1, "b", time.Minute), core.ClaimInFlight, "Claim after Complete(nil)")
}

func TestOptionsPanic(t *testing.T) {
	for name, opt := range map[string]memstore.Option{
		"WithShards(3)":      memstore.WithShards(3),
		"WithShards(0)":      memstore.WithShards(0),
		"WithMaxEntries(0)":  memstore.WithMaxEntries(0),
		"WithMaxEntries(-1)": memstore.WithMaxEntries(-1),
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%s) did not panic", name)
				}
			}()
			memstore.New(opt).Close()
		}()
	}
}

// TestCapacity checks that the bound holds across shards: a store of
// capacity 64 in 8 shards never holds more than 64 records.
func TestCapacity(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		st := memstore.New(append(hashing, memstore.WithShards(8), memstore.WithMaxEntries(64), memstore.WithSweepInterval(0))...)
		defer st.Close()
		for i := range 1000 {
			key := fmt.Sprintf("key-%d", i)
			c, err := st.Claim(bg, core.ClaimRequest{Key: key, Token: "a", Lease: time.Minute})
			if err != nil {
				// A shard full of live claims: expected once every shard fills.
				if !errors.Is(err, memstore.ErrFull) {
					t.Fatalf("Claim(%q) = %v; want nil or ErrFull", key, err)
				}
				continue
			}
			wantStatus(t, c, core.ClaimAcquired, fmt.Sprintf("Claim(%q)", key))
			complete(t, st, key, "a", "x", time.Hour)
			if n := st.Len(); n > 64 {
				t.Fatalf("Len() = %d after %d keys; want at most 64", n, i+1)
			}
		}
	})
}

// TestRace hammers a few keys from many goroutines. Under -race it checks
// memory safety; the holder counts check that at most one goroutine holds a
// key at any time.
func TestRace(t *testing.T) {
	forEachHashing(t, func(t *testing.T, hashing ...memstore.Option) {
		t.Parallel()
		st := memstore.New(append(hashing, memstore.WithShards(2), memstore.WithMaxEntries(1000), memstore.WithSweepInterval(time.Millisecond))...)
		defer st.Close()

		const keys, workers, rounds = 4, 32, 200
		var mu sync.Mutex
		holders := make(map[string]int)
		violations := make(chan string, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					key := fmt.Sprint(i % keys)
					tok := core.Token(fmt.Sprintf("%d-%d", w, i))
					c, err := st.Claim(bg, core.ClaimRequest{Key: key, Token: tok, Lease: time.Minute})
					if err != nil {
						violations <- fmt.Sprintf("Claim(%q) error: %v", key, err)
						return
					}
					if c.Status != core.ClaimAcquired {
						continue
					}
					mu.Lock()
					holders[key]++
					n := holders[key]
					mu.Unlock()
					if n != 1 {
						violations <- fmt.Sprintf("key %q held by %d goroutines at once", key, n)
						return
					}
					_ = st.Renew(bg, key, tok, time.Minute)
					mu.Lock()
					holders[key]--
					mu.Unlock()
					var err2 error
					if i%3 == 0 {
						err2 = st.Complete(bg, key, tok, &core.Response{Status: 200, Body: []byte(tok)}, time.Microsecond)
					} else {
						err2 = st.Release(bg, key, tok)
					}
					if err2 != nil {
						violations <- fmt.Sprintf("Complete/Release(%q, %q) error: %v", key, tok, err2)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(violations)
		for v := range violations {
			t.Error(v)
		}
	})
}

func TestReplayBytes(t *testing.T) {
	st := memstore.New()
	defer st.Close()
	body := make([]byte, 256)
	for i := range body {
		body[i] = byte(i)
	}
	claim(t, st, "k", 1, "a", time.Minute)
	in := &core.Response{Status: 299, Header: http.Header{"x-odd": {"", " a, b ", "\xff"}}, Body: body, BodyOmitted: true}
	if err := st.Complete(bg, "k", "a", in, time.Hour); err != nil {
		t.Fatal(err)
	}
	got := claim(t, st, "k", 1, "b", time.Minute).Response
	if got.Status != 299 || !got.BodyOmitted || !bytes.Equal(got.Body, body) || !reflect.DeepEqual(got.Header, in.Header) {
		t.Errorf("replay = %+v; want %+v", got, in)
	}
}
