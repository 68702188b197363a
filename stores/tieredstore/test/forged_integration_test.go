package tieredstore_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestForgedHotCopy forges the Redis copy of a record, under an HMAC
// secret, with a plain SET: a Set-Cookie field and no MAC. The engine
// must not replay it; the tiered store drops the copy and the retry
// replays the record Postgres holds, without running the handler again.
func TestForgedHotCopy(t *testing.T) {
	client := redisClient(t, svctest.RedisURL(t))
	prefix := "idemtest:" + randHex(8) + ":"
	store := tieredstore.New(redisstore.New(client, redisstore.WithPrefix(prefix)), pgStore(t, svctest.PostgresURL(t)))
	obs := &storetest.KeyLog{}
	svc := newService(t, store, core.WithHMACSecret([]byte("tiered forged-test secret")), core.WithObserver(obs))
	key := "k-" + randHex(8)
	first := svc.post(key, "payload")
	if first.err != nil || first.status != http.StatusCreated {
		t.Fatalf("first POST = %d, %v; want 201", first.status, first.err)
	}
	if r := svc.post(key, "payload"); r.status != http.StatusCreated || r.header.Get(core.DefaultReplayHeader) != "true" {
		t.Fatalf("retry = %d; want a replay from Postgres", r.status)
	}
	store.Flush() // the replay warmed Redis
	ctx := context.Background()
	rkey := prefix + "{" + obs.Executed()[0] + "}"
	genuine, err := client.Get(ctx, rkey).Result()
	if err != nil {
		t.Fatalf("GET %s (the warmed copy): %v", rkey, err)
	}
	forged := genuine[:33] + string(codec.EncodeResponse(&core.Response{
		Status: http.StatusCreated, Header: http.Header{"Set-Cookie": {"session=attacker"}}, Body: []byte("forged"),
	}))
	if err := client.Set(ctx, rkey, forged, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}

	r := svc.post(key, "payload")
	if r.header.Get("Set-Cookie") != "" || string(r.body) == "forged" {
		t.Errorf("retry over a forged Redis copy = %d %q, Set-Cookie %q; want it refused", r.status, r.body, r.header.Get("Set-Cookie"))
	}
	if r.status != http.StatusCreated || string(r.body) != string(first.body) || svc.runs.Load() != 1 {
		t.Errorf("retry over a forged Redis copy = %d %q after %d runs; want Postgres's record replayed, the handler run once", r.status, r.body, svc.runs.Load())
	}
	t.Logf("forged hot copy: status %d, body %q, Set-Cookie %q, handler runs %d", r.status, r.body, r.header.Get("Set-Cookie"), svc.runs.Load())
}
