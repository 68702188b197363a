package tieredstore_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
)

// evictedKeys reads evicted_keys from the INFO stats of the Redis at addr.
func evictedKeys(t *testing.T, addr string) int64 {
	t.Helper()
	info, err := svctest.RedisDo(addr, 5*time.Second, "INFO", "stats")
	if err != nil {
		t.Fatalf("INFO stats: %v", err)
	}
	m := regexp.MustCompile(`evicted_keys:(\d+)`).FindStringSubmatch(fmt.Sprint(info))
	if m == nil {
		t.Fatalf("INFO stats without evicted_keys: %q", info)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestHotTierEvicted: the hot tier may be evicted. Its Redis runs with
// maxmemory 2mb and allkeys-lru, and far more replayed records than fit
// are warmed into it, so Redis evicts them. Every retry of a completed key
// still replays the stored response (from Postgres when Redis lost it),
// concurrent duplicates of those keys and of new keys never run the
// handler twice, and the handler runs once per key in all.
func TestHotTierEvicted(t *testing.T) {
	rs := svctest.StartRedis(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
	raw := redisClient(t, rs.URL())
	st := tieredstore.New(redisstore.New(raw), pgStore(t, svctest.PostgresURL(t)))
	svc := newService(t, st)
	const keys, size = 200, 16 << 10 // 3.2 MB of bodies for 2 MB of Redis
	payload := func(k string) string { return k + strings.Repeat("x", size) }

	firsts := make(map[string][]byte, keys)
	var order []string
	for i := 0; i < keys; i++ {
		k := randHex(12)
		order = append(order, k)
		r := svc.post(k, payload(k))
		if r.err != nil || r.status != http.StatusCreated {
			t.Fatalf("key %s: %d %v; want 201", k, r.status, r.err)
		}
		firsts[k] = r.body
		if r := svc.post(k, payload(k)); r.status != http.StatusCreated || !bytes.Equal(r.body, firsts[k]) { // warms Redis
			t.Fatalf("key %s first retry: %d; want the stored 201", k, r.status)
		}
	}
	st.Flush()
	evicted := evictedKeys(t, rs.Addr())
	held, err := raw.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records warmed into a 2 MB allkeys-lru Redis: %d evicted, %d held", keys, evicted, held)
	if evicted == 0 || held >= keys {
		t.Fatalf("Redis evicted %d and holds %d of %d warmed records; want evictions for the test to mean anything", evicted, held, keys)
	}

	// Retries of every completed key, four at a time.
	type miss struct {
		key    string
		status int
		err    error
	}
	misses := make(chan miss, keys*4)
	var wg sync.WaitGroup
	for _, k := range order {
		for c := 0; c < 4; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := svc.post(k, payload(k))
				if r.err != nil || r.status != http.StatusCreated || !bytes.Equal(r.body, firsts[k]) || r.header.Get("Idempotency-Replayed") != "true" {
					misses <- miss{k, r.status, r.err}
				}
			}()
		}
		wg.Wait()
	}
	close(misses)
	n := 0
	for m := range misses {
		if n++; n <= 5 {
			t.Errorf("retry of completed key %s with its record evicted from Redis: %d %v; want the stored 201 replayed", m.key, m.status, m.err)
		}
	}
	if n > 5 {
		t.Errorf("... %d retries in all did not replay", n)
	}

	// New keys, eight identical requests at once, while Redis evicts.
	const fresh, dup = 20, 8
	for i := 0; i < fresh; i++ {
		k := randHex(12)
		start := make(chan struct{})
		for c := 0; c < dup; c++ {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; svc.post(k, payload(k)) }()
		}
		close(start)
		wg.Wait()
	}
	if got, want := svc.runs.Load(), int64(keys+fresh); got != want {
		t.Errorf("handler ran %d times for %d keys; want exactly once per key: eviction of the hot tier must never run a handler twice", got, want)
	}
	t.Logf("after the retries: %d evicted in all", evictedKeys(t, rs.Addr()))
}
