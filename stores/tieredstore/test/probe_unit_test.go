package tieredstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

// moody is a memstore cache that fails while down and panics once when
// panicOnce is set.
type moody struct {
	*memstore.Store
	down, panicOnce atomic.Bool
}

func (m *moody) Lookup(ctx context.Context, key string, fp core.Fingerprint) (core.Cached, error) {
	if m.panicOnce.CompareAndSwap(true, false) {
		panic("moody: lookup panicked")
	}
	if m.down.Load() {
		return core.Cached{}, errors.New("moody: down")
	}
	return m.Store.Lookup(ctx, key, fp)
}

// TestBreakerProbePanics: a half-open probe whose lookup panics gives no
// verdict; the panic reaches the caller, and the next request after the
// cool-down probes again and closes the breaker.
func TestBreakerProbePanics(t *testing.T) {
	hot := &moody{Store: memstore.New()}
	t.Cleanup(func() { hot.Close() })
	durable := memstore.New()
	t.Cleanup(func() { durable.Close() })
	const cooldown = 50 * time.Millisecond
	st := tieredstore.New(hot, durable, tieredstore.WithBreaker(1, cooldown))
	claim := func() {
		req := core.ClaimRequest{Key: "k" + time.Now().String(), Fingerprint: core.Fingerprint{1}, Token: core.Token(time.Now().String()), Lease: time.Second}
		if _, err := st.Claim(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	hot.down.Store(true)
	claim()
	if !st.Degraded() {
		t.Fatal("breaker not open after a hot failure with threshold 1")
	}
	hot.down.Store(false)
	hot.panicOnce.Store(true)
	time.Sleep(cooldown + 10*time.Millisecond)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the probe's panic did not reach the caller")
			}
		}()
		claim()
	}()
	claim()
	if st.Degraded() {
		t.Error("store still degraded after a probe that panicked and a healthy one: the panicked probe must not keep the breaker waiting")
	}
}
