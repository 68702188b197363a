package tieredstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/conformance"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/idemkit/idemkit/svctest/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Integration tests: the tiered store over real Redis and real Postgres.

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis.ParseURL: %v", err)
	}
	opt.ContextTimeoutEnabled = true
	opt.PoolSize = 32
	opt.MaxRetries = -1
	opt.DialTimeout = 200 * time.Millisecond
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		svctest.Unavailable(t, "Redis at %s does not answer: %v", opt.Addr, err)
	}
	return c
}

// pgStore returns a pgxstore in a fresh schema of the database at url,
// dropped at cleanup.
func pgStore(t *testing.T, url string) *pgxstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("pgxpool.New: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		svctest.Unavailable(t, "PostgreSQL does not answer: %v", err)
	}
	schema := "idemkit_tiered_" + randHex(6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	if err := pgxstore.EnsureSchema(ctx, pool, pgxstore.WithSchema(schema)); err != nil {
		t.Fatalf("EnsureSchema: %v", err)
	}
	return pgxstore.New(pool, pgxstore.WithSchema(schema))
}

func sharedRedis(t *testing.T) *redisstore.Store {
	return redisstore.New(redisClient(t, svctest.RedisURL(t)), redisstore.WithPrefix("idemtest:"+randHex(8)+":"))
}

func newTiered(t *testing.T) core.Store {
	return tieredstore.New(sharedRedis(t), pgStore(t, svctest.PostgresURL(t)))
}

func TestConformanceRedisOverPostgres(t *testing.T) {
	conformance.TestStore(t, newTiered)
}

// TestDoRedisOverPostgres runs core.Engine.Do's suite on the tiered store
// over the real Redis and Postgres.
func TestDoRedisOverPostgres(t *testing.T) {
	conformance.TestDo(t, newTiered)
}

func TestConformanceHTTP(t *testing.T) {
	conformance.TestMiddleware(t, conformance.Harness{
		NewStore:  newTiered,
		NewServer: storetest.NewHTTPServer,
	})
}

// service is an idemhttp server over a tiered store, counting executions.
type service struct {
	url  string
	runs atomic.Int64
}

func newService(t *testing.T, store core.Store, opts ...core.Option) *service {
	s := &service{}
	engine := core.New(store, opts...)
	s.url = storetest.NewHTTPServer(t, engine, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.runs.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusCreated)
		w.Write(append([]byte{0, byte(n), 0xff}, body...))
	}))
	return s
}

type reply struct {
	status int
	body   []byte
	header http.Header
	err    error
}

func (s *service) post(key, body string) reply {
	req, _ := http.NewRequest(http.MethodPost, s.url+"/p", strings.NewReader(body))
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: b, header: resp.Header, err: err}
}

// TestRedisKilledMidLoad kills a private Redis while requests flow: every
// request still succeeds on Postgres alone, each key runs once, degraded
// mode is reported, and the store goes back to Redis when it returns.
func TestRedisKilledMidLoad(t *testing.T) {
	rs := svctest.StartRedis(t)
	ev := &events{}
	hot := redisstore.New(redisClient(t, rs.URL()))
	st := tieredstore.New(hot, pgStore(t, svctest.PostgresURL(t)),
		tieredstore.WithHotTimeout(100*time.Millisecond), tieredstore.WithBreaker(2, 300*time.Millisecond), tieredstore.WithObserver(ev))
	svc := newService(t, st)

	const workers, perWorker = 8, 30
	type result struct {
		key   string
		first reply
		again reply
	}
	out := make(chan result, workers*perWorker)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				k := randHex(12)
				first := svc.post(k, "body-"+k)
				again := svc.post(k, "body-"+k)
				out <- result{k, first, again}
				sent.Add(1)
			}
		}()
	}
	for sent.Load() < workers*perWorker/4 {
		time.Sleep(5 * time.Millisecond)
	}
	rs.Stop()
	for sent.Load() < workers*perWorker*3/4 {
		time.Sleep(5 * time.Millisecond)
	}
	if !st.Degraded() {
		t.Errorf("store not degraded with Redis stopped")
	}
	rs.Start()
	wg.Wait()
	close(out)
	n := 0
	for r := range out {
		n++
		if r.first.err != nil || r.first.status != http.StatusCreated {
			t.Errorf("key %s first: %d %v; want 201 whatever Redis does", r.key, r.first.status, r.first.err)
			continue
		}
		if r.again.err != nil || r.again.status != http.StatusCreated || r.again.header.Get("Idempotency-Replayed") != "true" || !bytes.Equal(r.again.body, r.first.body) {
			t.Errorf("key %s retry: %d replayed=%q %v; want the first response replayed", r.key, r.again.status, r.again.header.Get("Idempotency-Replayed"), r.again.err)
		}
	}
	if got := svc.runs.Load(); got != int64(n) {
		t.Errorf("handler ran %d times for %d keys; want exactly once per key", got, n)
	}
	if ev.count(core.EventStoreDegraded) == 0 {
		t.Errorf("observer never saw %s", core.EventStoreDegraded)
	}
	// Recovery: once the cool-down passes, a probe succeeds and Redis is used again.
	deadline := time.Now().Add(5 * time.Second)
	for st.Degraded() && time.Now().Before(deadline) {
		svc.post(randHex(12), "probe")
		time.Sleep(50 * time.Millisecond)
	}
	if st.Degraded() || ev.count(core.EventStoreRecovered) == 0 {
		t.Errorf("store did not recover after Redis came back (degraded=%v)", st.Degraded())
	}
	raw := redisClient(t, rs.URL())
	st.Flush() // the probes' background writes to Redis land before the count
	before, err := raw.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	k := randHex(12)
	svc.post(k, "x")
	svc.post(k, "x") // the first replay warms the hot tier
	st.Flush()
	if after, err := raw.DBSize(context.Background()).Result(); err != nil || after != before+1 {
		t.Errorf("Redis holds %d keys after a replay (%v), %d before; want the replayed record warmed into the hot tier again", after, err, before)
	}
}

// TestRedisFlushed: after FLUSHALL, replays come from Postgres and warm Redis.
func TestRedisFlushed(t *testing.T) {
	rs := svctest.StartRedis(t)
	raw := redisClient(t, rs.URL())
	st := tieredstore.New(redisstore.New(raw), pgStore(t, svctest.PostgresURL(t)))
	svc := newService(t, st)
	var keys []string
	var firsts []reply
	for i := 0; i < 20; i++ {
		k := randHex(12)
		keys = append(keys, k)
		firsts = append(firsts, svc.post(k, "b"+k))
	}
	if err := raw.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		r := svc.post(k, "b"+k)
		if r.status != http.StatusCreated || !bytes.Equal(r.body, firsts[i].body) || r.header.Get("Idempotency-Replayed") != "true" {
			t.Errorf("key %s after FLUSHALL: %d %q; want the stored response from Postgres", k, r.status, r.body)
		}
	}
	st.Flush() // warming runs in the background
	if n, _ := raw.DBSize(context.Background()).Result(); n != int64(len(keys)) {
		t.Errorf("Redis holds %d records after the replays; want %d warmed", n, len(keys))
	}
	if got := svc.runs.Load(); got != int64(len(keys)) {
		t.Errorf("handler ran %d times; want %d", got, len(keys))
	}
}

// TestPostgresStopped: with the durable tier down the store is unavailable
// (503) and nothing is half-written; after restart, service resumes.
func TestPostgresStopped(t *testing.T) {
	pg := svctest.StartPostgres(t)
	st := tieredstore.New(sharedRedis(t), pgStore(t, pg.URL()))
	svc := newService(t, st, core.WithStoreTimeout(2*time.Second))
	done := randHex(12)
	first := svc.post(done, "x")
	svc.post(done, "x") // the first replay warms the hot tier
	st.Flush()
	pg.Stop()
	k := randHex(12)
	r := svc.post(k, "y")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("Postgres down: %d; want 503 with Retry-After", r.status)
	}
	if svc.runs.Load() != 1 {
		t.Errorf("handler ran %d times; want only the request before the outage", svc.runs.Load())
	}
	// A replay of a warmed key is still served by Redis: completed records
	// reach Redis only from Postgres.
	if r := svc.post(done, "x"); r.status != http.StatusCreated || !bytes.Equal(r.body, first.body) {
		t.Errorf("hot replay with Postgres down: %d; want the stored 201", r.status)
	}
	pg.Start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r = svc.post(k, "y")
		if r.status == http.StatusCreated || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.status != http.StatusCreated || r.header.Get("Idempotency-Replayed") != "" {
		t.Errorf("after restart: %d replayed=%q; want a fresh 201 (nothing was half-written)", r.status, r.header.Get("Idempotency-Replayed"))
	}
}

// TestRaceOnKeyOnlyInPostgres: 64 simultaneous requests for a key that
// Postgres holds and Redis has lost all get the stored response; the
// handler does not run again.
func TestRaceOnKeyOnlyInPostgres(t *testing.T) {
	rs := svctest.StartRedis(t)
	raw := redisClient(t, rs.URL())
	st := tieredstore.New(redisstore.New(raw), pgStore(t, svctest.PostgresURL(t)))
	svc := newService(t, st)
	k := randHex(12)
	first := svc.post(k, "z")
	raw.FlushAll(context.Background())
	const n = 64
	start := make(chan struct{})
	out := make(chan reply, n)
	for i := 0; i < n; i++ {
		go func() { <-start; out <- svc.post(k, "z") }()
	}
	close(start)
	for i := 0; i < n; i++ {
		r := <-out
		if r.err != nil || r.status != http.StatusCreated || !bytes.Equal(r.body, first.body) {
			t.Errorf("racing replay: %d %v; want the stored 201", r.status, r.err)
		}
	}
	if got := svc.runs.Load(); got != 1 {
		t.Errorf("handler ran %d times; want 1", got)
	}
}

// TestRaceNewKeyAcrossTiers: 64 simultaneous requests for a new key run the
// handler once, with Redis flushed between every round.
func TestRaceNewKeyAcrossTiers(t *testing.T) {
	st := newTiered(t)
	for round := 0; round < 5; round++ {
		k := core.ClaimRequest{Key: randHex(16), Fingerprint: core.Fingerprint{9}, Lease: 5 * time.Second}
		const n = 64
		start := make(chan struct{})
		out := make(chan core.ClaimStatus, n)
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			go func(i int) {
				<-start
				req := k
				req.Token = core.Token(randHex(8))
				c, err := st.Claim(context.Background(), req)
				if err != nil {
					errs <- err
					return
				}
				out <- c.Status
			}(i)
		}
		close(start)
		acquired := 0
		for i := 0; i < n; i++ {
			select {
			case s := <-out:
				if s == core.ClaimAcquired {
					acquired++
				}
			case err := <-errs:
				if !errors.Is(err, core.ErrStoreUnavailable) {
					t.Errorf("claim error %v", err)
				}
			}
		}
		if acquired != 1 {
			t.Errorf("round %d: %d claims acquired; want exactly 1", round, acquired)
		}
	}
}
