package redisstore

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/idemkit/idemkit/svctest/storetest"
)

// TestHTTP runs the middleware conformance suite with idemhttp on this
// store and the Redis of IDEMKIT_REDIS_URL.
func TestHTTP(t *testing.T) {
	client := singleClient(t)
	conformance.TestMiddleware(t, conformance.Harness{
		NewStore:  storeFactory(client),
		NewServer: storetest.NewHTTPServer,
	})
}

// TestHTTPRedisDown stops Redis under a running idemhttp server: guarded
// requests get 503 with Retry-After and the handler does not run; when
// Redis is back, a retry replays the response stored before the outage.
func TestHTTPRedisDown(t *testing.T) {
	srv := svctest.StartRedis(t)
	store := New(fastFailClient(t, srv.Addr()), WithPrefix(uniquePrefix(t)))
	var runs atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "run "+string(rune('0'+n)))
	})
	base := storetest.NewHTTPServer(t, core.New(store, core.WithStoreTimeout(time.Second)), app)

	post := func(key, body string) (*http.Response, string) {
		t.Helper()
		return storetest.Post(t, base, key, body)
	}

	key := "k-" + randHex(t, 8)
	resp, first := post(key, `{"amount":1}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first POST = %d %s; want 201", resp.StatusCode, first)
	}

	srv.Stop()
	start := time.Now()
	resp, body := post("k-"+randHex(t, 8), `{"amount":2}`)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST while Redis is down = %d (Retry-After %q) %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("503 took %v; want a quick answer", took)
	}
	resp, body = post(key, `{"amount":1}`)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("retry while Redis is down = %d %s; want 503 (fail closed)", resp.StatusCode, body)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("handler ran %d times; want 1: no handler runs while the store is down", n)
	}

	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, body = post(key, `{"amount":1}`)
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusCreated || body != first || resp.Header.Get(core.DefaultReplayHeader) != "true" {
		t.Errorf("retry after Redis is back = %d %q (%s: %q); want the stored 201 %q replayed",
			resp.StatusCode, body, core.DefaultReplayHeader, resp.Header.Get(core.DefaultReplayHeader), first)
	}
	if resp, body := post("k-"+randHex(t, 8), `{"amount":3}`); resp.StatusCode != http.StatusCreated {
		t.Errorf("new key after Redis is back = %d %s; want 201", resp.StatusCode, body)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("handler ran %d times; want 2 (first request and the new key after the restart)", n)
	}
}
