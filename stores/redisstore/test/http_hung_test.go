package redisstore

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/idemkit/idemkit/svctest/storetest"
	"github.com/redis/go-redis/v9"
)

// TestHTTPRedisHung freezes Redis under a running idemhttp server whose
// engine sets no store deadline (the default) and whose go-redis client
// keeps its default timeouts and retries: a guarded request gets 503 with
// Retry-After within the store's bound (WithTimeout, here 1 s; 10 s
// before the store bounded its calls), and the handler does not run.
func TestHTTPRedisHung(t *testing.T) {
	srv := svctest.StartRedis(t)
	client := newClient(t, &redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	const bound = time.Second
	store := New(client, WithPrefix(uniquePrefix(t)), WithTimeout(bound))
	var runs atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusCreated)
	})
	base := storetest.NewHTTPServer(t, core.New(store), app)
	post := func(key string) (*http.Response, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, _ := storetest.Post(t, base, key, `{"amount":1}`)
		return resp, time.Since(start)
	}
	if resp, _ := post("warm-" + randHex(t, 8)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST before the stall = %d; want 201", resp.StatusCode)
	}

	srv.Pause()
	resp, took := post("k-" + randHex(t, 8))
	srv.Resume()
	t.Logf("POST while Redis is frozen: %d after %v", resp.StatusCode, took.Round(time.Millisecond))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST while Redis is frozen = %d (Retry-After %q); want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if limit := bound + 2*time.Second; took > limit {
		t.Errorf("503 took %v; want < %v: the store bounds each call", took, limit)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times; want 1 (the request before the stall)", n)
	}
}
