package core_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// TestFloodKeepsOtherScopesRecords is issue 21's hole 5 end to end: an
// engine over memstore bounded to 1000 records (8 shards, as in memstore's
// TestFloodEvictsItsOwnScope), keys scoped by X-Tenant.
// Tenant B completes 100 keys, tenant A floods 10,000 distinct keys; then
// all of B's retries replay without running the handler, and the observer
// (shared by engine and store) saw every early eviction. Before fair
// eviction: 0 of B's 100 retries replayed, 100 ran the handler again, and
// no eviction was reported.
func TestFloodKeepsOtherScopesRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		st := memstore.New(memstore.WithMaxEntries(1000), memstore.WithShards(8), memstore.WithObserver(rec))
		defer st.Close()
		e := core.New(st, core.WithHeaderScope("X-Tenant"), core.WithObserver(rec))
		serve := func(tenant, key string) *fakeExchange {
			x := newFake(key, `{"amount":1}`, created)
			x.header.Set("X-Tenant", tenant)
			e.Serve(x)
			return x
		}
		const bKeys, aKeys = 100, 10_000
		for i := range bKeys {
			if x := serve("tenant-b", fmt.Sprint("b-", i)); x.runs != 1 || x.sent == nil || x.sent.Status != 201 {
				t.Fatalf("tenant B's first request %d: runs %d, sent %+v; want the handler run once, 201", i, x.runs, x.sent)
			}
		}
		time.Sleep(time.Second) // B's records are the older ones
		for i := range aKeys {
			if x := serve("tenant-a", fmt.Sprint("a-", i)); x.runs != 1 || x.sent == nil || x.sent.Status != 201 {
				t.Fatalf("tenant A's flood request %d: runs %d, sent %+v; want the handler run once, 201", i, x.runs, x.sent)
			}
		}
		replayed, reran := 0, 0
		for i := range bKeys {
			x := serve("tenant-b", fmt.Sprint("b-", i))
			reran += x.runs
			if x.runs == 0 && x.sent != nil && x.sent.Status == 201 && x.sent.Extra.Get("Idempotency-Replayed") == "true" {
				replayed++
			}
		}
		if replayed != bKeys || reran != 0 {
			t.Errorf("after tenant A's flood of %d keys, tenant B's %d retries: %d replayed, %d ran the handler again; want all replayed, none re-run",
				aKeys, bKeys, replayed, reran)
		}
		evicted := rec.keyHashes(core.EventEvicted)
		if want := bKeys + aKeys - st.Len(); len(evicted) != want {
			t.Errorf("observer saw %d evictions; want %d: every early eviction is reported", len(evicted), want)
		}
		executed := make(map[string]bool)
		for _, k := range rec.keyHashes(core.OutcomeExecuted) {
			executed[k] = true
		}
		for _, k := range evicted {
			if !executed[k] {
				t.Errorf("eviction reported for %q, not a storage key the engine executed", k)
				break
			}
		}
	})
}
