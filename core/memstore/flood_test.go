package memstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// floodHeapLimit bounds the live heap of a default store holding its
// bound of records, each a small completed response as below (measured:
// 75 MiB on amd64 with Go 1.26, about 750 bytes a record).
const floodHeapLimit = 96 << 20

// TestKeyFlood sends a million distinct keys, each claimed and completed
// as the engine does, to a store with the default bound: the store never
// holds more than the bound (ceil(100 000/64) = 1 563 records a shard, so
// 100 032), the live heap after a collection stays under floodHeapLimit,
// and it grows by no more than a tenth from twice the bound of keys to
// the end of the flood: memory follows the bound, not the number of keys. Under the
// race detector (make test) it sends 300 000 keys. The fiber advisory GHSA-c5qf-v26h-rp5r was one lock per
// key, kept forever.
func TestKeyFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("a million keys: skipped with -short")
	}
	keys := 1_000_000
	if raceEnabled {
		keys = 300_000 // still three times the bound, in the time budget of make test's -race run
	}
	s := memstore.New()
	defer s.Close()
	ctx := context.Background()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	maxLen := 0
	bound := (memstore.DefaultMaxEntries + memstore.DefaultShards - 1) / memstore.DefaultShards * memstore.DefaultShards
	var early int64 // the live heap once the store is full, at earlyAt keys
	const earlyAt = 2 * memstore.DefaultMaxEntries
	for i := range keys {
		sum := sha256.Sum256(strconv.AppendInt(nil, int64(i), 10))
		key := hex.EncodeToString(sum[:]) // a storage key, as the engine derives it
		tok := core.Token("t" + strconv.Itoa(i))
		c, err := s.Claim(ctx, core.ClaimRequest{Key: key, Fingerprint: core.Fingerprint(sum), Token: tok, Lease: time.Minute, Scope: "flood"})
		if err != nil || c.Status != core.ClaimAcquired {
			t.Fatalf("key %d: Claim = %v, %v; want acquired (the store evicts completed records to make room)", i, c.Status, err)
		}
		resp := &core.Response{Status: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"id":"` + strconv.Itoa(i) + `"}`)}
		if err := s.Complete(ctx, key, tok, resp, 24*time.Hour); err != nil {
			t.Fatalf("key %d: Complete: %v", i, err)
		}
		if i%50_000 == 0 {
			maxLen = max(maxLen, s.Len())
		}
		if i == earlyAt {
			early = liveHeap() - int64(before.HeapAlloc)
		}
	}
	elapsed := time.Since(start)
	maxLen = max(maxLen, s.Len())
	if maxLen > bound {
		t.Errorf("Len reached %d under a flood of %d keys; want at most the bound %d", maxLen, keys, bound)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Error(err)
	}
	heap := liveHeap() - int64(before.HeapAlloc)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d keys in %v: Len %d (bound %d), live heap %.1f MiB (%.1f MiB after %d keys; limit %d MiB), %.1f MiB from the OS",
		keys, elapsed.Round(time.Millisecond), s.Len(), bound, float64(heap)/(1<<20), float64(early)/(1<<20), earlyAt,
		floodHeapLimit>>20, float64(ms.Sys)/(1<<20))
	if heap > floodHeapLimit {
		t.Errorf("live heap %d MiB after a flood of %d keys; want under %d MiB: memory must follow the bound", heap>>20, keys, floodHeapLimit>>20)
	}
	if heap > early+early/10 {
		t.Errorf("live heap grew from %d MiB after %d keys to %d MiB after %d: memory must follow the bound, not the keys", early>>20, earlyAt, heap>>20, keys)
	}
	runtime.KeepAlive(s)
}

// liveHeap collects garbage and returns the bytes of live heap objects.
func liveHeap() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
