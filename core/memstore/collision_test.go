package memstore_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// forEachHashing runs f once with the store's own hashing and once with
// every key hashing alike (one shard, one map slot, a chain of records).
func forEachHashing(t *testing.T, f func(t *testing.T, hashing ...memstore.Option)) {
	t.Run("maphash", func(t *testing.T) { f(t) })
	t.Run("colliding", func(t *testing.T) { f(t, memstore.WithHashMask(0)) })
}

// TestCollisionChain unlinks records from the head, the middle and the
// tail of one slot's chain, by release, expiry, eviction and the janitor,
// and checks that the other keys of the slot keep their records.
func TestCollisionChain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New(memstore.WithHashMask(0), memstore.WithShards(1), memstore.WithMaxEntries(4), memstore.WithSweepInterval(0))
		defer st.Close()
		// Inserted at the head: the chain is d, c, b, a.
		for _, key := range []string{"a", "b", "c", "d"} {
			wantStatus(t, claim(t, st, key, 1, "t", time.Minute), core.ClaimAcquired, "Claim("+key+")")
		}
		// The middle (c), then the head (d), by release.
		for _, key := range []string{"c", "d"} {
			if err := st.Release(bg, key, "t"); err != nil {
				t.Fatalf("Release(%q): %v", key, err)
			}
		}
		complete(t, st, "a", "t", "A", time.Hour)
		complete(t, st, "b", "t", "B", 2*time.Hour)
		if n := st.Len(); n != 2 {
			t.Fatalf("Len() = %d; want 2", n)
		}
		wantReplay(t, st, "a", "A")
		wantReplay(t, st, "b", "B")
		wantStatus(t, claim(t, st, "c", 1, "u", time.Minute), core.ClaimAcquired, "Claim(c) after its release")
		wantStatus(t, claim(t, st, "d", 1, "u", 30*time.Second), core.ClaimAcquired, "Claim(d) after its release")

		// Full (d, c, b, a): a new key evicts the tail, a, nearest to expiry.
		wantStatus(t, claim(t, st, "e", 1, "u", time.Minute), core.ClaimAcquired, "Claim(e) in a full shard")
		wantReplay(t, st, "b", "B")

		// d's lease lapses: a claim of d drops it from the middle of the
		// chain (e, d, c, b), and nothing else.
		time.Sleep(45 * time.Second)
		wantStatus(t, claim(t, st, "d", 2, "v", time.Minute), core.ClaimAcquired, "Claim(d) after its lease lapsed")
		for _, key := range []string{"c", "e"} {
			wantStatus(t, claim(t, st, key, 1, "w", time.Minute), core.ClaimInFlight, "Claim("+key+") of a live claim")
		}
		wantReplay(t, st, "b", "B")
		if n := st.Len(); n != 4 {
			t.Fatalf("Len() = %d; want 4", n)
		}
		// Every lease lapses and b's retention ends: the shard is empty, and
		// a is a new key again.
		time.Sleep(3 * time.Hour)
		wantStatus(t, claim(t, st, "a", 2, "x", time.Minute), core.ClaimAcquired, "Claim(a) after everything expired")
		if n := st.Len(); n != 1 {
			t.Fatalf("Len() = %d; want 1", n)
		}
	})
}

func wantReplay(t *testing.T, st *memstore.Store, key, body string) {
	t.Helper()
	c := claim(t, st, key, 1, "r", time.Minute)
	if c.Status != core.ClaimReplay || c.Response == nil || string(c.Response.Body) != body {
		t.Errorf("Claim(%q) = %+v; want a replay of %q", key, c, body)
	}
}
