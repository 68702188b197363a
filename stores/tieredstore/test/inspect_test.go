package tieredstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
)

// TestInspectorRedisOverPostgres runs the Inspector checks on the tiered
// store over the real Redis and Postgres.
func TestInspectorRedisOverPostgres(t *testing.T) {
	conformance.TestInspector(t, newTiered)
}

// TestDeleteClearsHotCopy: a record replayed once has a copy in Redis;
// Delete removes the Postgres record and that copy, so the next call with
// the key runs again instead of replaying the copy.
func TestDeleteClearsHotCopy(t *testing.T) {
	hot := redisstore.New(redisClient(t, svctest.RedisURL(t)), redisstore.WithPrefix("idemtest:"+randHex(8)+":hot:"))
	st := tieredstore.New(hot, pgStore(t, svctest.PostgresURL(t)))
	e := core.New(st)
	ctx := context.Background()
	call := core.Call{Scope: "tenant", Key: "k-" + randHex(8), Name: "job", Input: []byte("in")}
	runs := 0
	do := func() {
		t.Helper()
		if _, err := e.Do(ctx, call, func(context.Context) ([]byte, error) { runs++; return []byte("out"), nil }); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	do()
	do() // a replay from Postgres, which warms Redis
	st.Flush()
	key := e.StorageKey(call.Scope, call.Key)
	if _, err := hot.Inspect(ctx, key); err != nil {
		t.Fatalf("hot tier Inspect after a replay: %v; want the warmed copy", err)
	}
	if info, err := st.Inspect(ctx, key); err != nil || info.State != core.RecordCompleted || info.CreatedAt.IsZero() {
		t.Fatalf("Inspect = %+v, %v; want the completed Postgres record, with its creation time", info, err)
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := hot.Inspect(ctx, key); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("hot tier Inspect after Delete: %v; want ErrNotFound: the copy must go with the record", err)
	}
	if err := st.Delete(ctx, key); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("second Delete: %v; want ErrNotFound", err)
	}
	do()
	if runs != 2 {
		t.Errorf("the call ran %d times; want 2: once, then again after the Delete", runs)
	}
}
