// Command loadrun is idemkit's end-to-end load run over loopback: one chi
// service per store (memory, redis, postgres, tiered) with the same JSON
// handler mounted bare and behind idemchi, attacked in turn by vegeta (as a
// library) at a fixed rate for a fixed time:
//
//	bare    POST /bare/payments, no middleware
//	newkey  POST /idem/payments, a fresh Idempotency-Key on every request
//	replay  POST /idem/payments, one of 64 completed keys
//
// It writes one JSON object per attack (p50/p99 latency, throughput,
// success ratio) to -o, for cmd/report. Redis and Postgres come from
// IDEMKIT_REDIS_URL and IDEMKIT_POSTGRES_URL; a store whose server is not
// configured is skipped with a message. It only ever targets 127.0.0.1.
//
//	go run ./cmd/loadrun -duration 3s -rate 500 -o load.jsonl
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

// Result is one attack's summary, one JSON line of the output.
type Result struct {
	Adapter    string  `json:"adapter"`
	Store      string  `json:"store"`
	Mode       string  `json:"mode"` // bare, newkey, replay
	Rate       int     `json:"rate"` // requests per second asked for
	Seconds    float64 `json:"seconds"`
	Requests   uint64  `json:"requests"`
	Success    float64 `json:"success"` // ratio of 2xx answers
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	Throughput float64 `json:"throughput"` // successful requests per second
	Errors     int     `json:"errors"`
}

var payBody = []byte(`{"amount":1200,"currency":"EUR"}`)

type payment struct {
	Amount   int    `json:"amount"`
	Currency string `json:"currency"`
}

func handler(w http.ResponseWriter, r *http.Request) {
	var p payment
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/payments/pay_1")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"id": "pay_1", "amount": p.Amount, "currency": p.Currency, "status": "accepted"})
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("loadrun: ")
	duration := flag.Duration("duration", 3*time.Second, "length of each attack")
	rate := flag.Int("rate", 500, "requests per second of each attack")
	stores := flag.String("stores", "memory,redis,postgres,tiered", "stores to run, comma-separated")
	out := flag.String("o", "", "output file of JSON lines (default stdout)")
	flag.Parse()

	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	env := newEnv()
	defer env.close()
	for _, name := range strings.Split(*stores, ",") {
		store, err := env.store(name)
		if err != nil {
			log.Printf("skip %s: %v", name, err)
			continue
		}
		for _, r := range run(name, store, *rate, *duration) {
			if err := enc.Encode(r); err != nil {
				log.Fatal(err)
			}
			log.Printf("chi/%-8s %-6s %6d req  %5.1f%% ok  p50 %7.3f ms  p99 %7.3f ms  %7.0f/s",
				r.Store, r.Mode, r.Requests, 100*r.Success, r.P50, r.P99, r.Throughput)
		}
	}
}

// env holds the server connections and what to clean up.
type env struct {
	redis   *redis.Client
	pool    *pgxpool.Pool
	prefix  string
	schemas []string
	closers []func()
}

func newEnv() *env { return &env{prefix: "idemkit-load:" + randHex(4) + ":"} }

func (e *env) redisClient() (*redis.Client, error) {
	if e.redis != nil {
		return e.redis, nil
	}
	url := os.Getenv("IDEMKIT_REDIS_URL")
	if url == "" {
		return nil, fmt.Errorf("IDEMKIT_REDIS_URL is unset")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opt.PoolSize = 64
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", url, err)
	}
	e.redis = c
	return c, nil
}

func (e *env) pgPool() (*pgxpool.Pool, error) {
	if e.pool != nil {
		return e.pool, nil
	}
	url := os.Getenv("IDEMKIT_POSTGRES_URL")
	if url == "" {
		return nil, fmt.Errorf("IDEMKIT_POSTGRES_URL is unset")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = p.Ping(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %w", url, err)
	}
	e.pool = p
	return p, nil
}

// schema creates a private schema with the idemkit table.
func (e *env) schema() (string, error) {
	p, err := e.pgPool()
	if err != nil {
		return "", err
	}
	s := "idemkit_load_" + randHex(4)
	e.schemas = append(e.schemas, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s, pgxstore.EnsureSchema(ctx, p, pgxstore.WithSchema(s))
}

func (e *env) store(name string) (core.Store, error) {
	switch name {
	case "memory":
		s := memstore.New()
		e.closers = append(e.closers, func() { s.Close() })
		return s, nil
	case "redis":
		c, err := e.redisClient()
		if err != nil {
			return nil, err
		}
		return redisstore.New(c, redisstore.WithPrefix(e.prefix+"redis:")), nil
	case "postgres":
		s, err := e.schema()
		if err != nil {
			return nil, err
		}
		return pgxstore.New(e.pool, pgxstore.WithSchema(s)), nil
	case "tiered":
		c, err := e.redisClient()
		if err != nil {
			return nil, err
		}
		s, err := e.schema()
		if err != nil {
			return nil, err
		}
		return tieredstore.New(redisstore.New(c, redisstore.WithPrefix(e.prefix+"tiered:")), pgxstore.New(e.pool, pgxstore.WithSchema(s))), nil
	}
	return nil, fmt.Errorf("unknown store %q (want memory, redis, postgres or tiered)", name)
}

func (e *env) close() {
	ctx := context.Background()
	for _, s := range e.schemas {
		if _, err := e.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			log.Printf("drop schema %s: %v", s, err)
		}
	}
	if e.redis != nil {
		iter := e.redis.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			e.redis.Unlink(ctx, iter.Val())
		}
		e.redis.Close()
	}
	if e.pool != nil {
		e.pool.Close()
	}
	for _, c := range e.closers {
		c()
	}
}

// run serves chi over store on a loopback port and attacks it bare, with
// new keys and with replays.
func run(storeName string, store core.Store, rate int, d time.Duration) []Result {
	r := chi.NewRouter()
	r.Post("/bare/payments", handler)
	r.With(idemchi.Middleware(core.New(store))).Post("/idem/payments", handler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	run := randHex(4)
	var seq atomic.Int64
	const replayKeys = 64
	target := func(path string, key func() string) vegeta.Targeter {
		return func(t *vegeta.Target) error {
			t.Method, t.URL, t.Body = http.MethodPost, base+path, payBody
			t.Header = http.Header{"Content-Type": {"application/json"}}
			if key != nil {
				t.Header.Set(core.KeyHeader, key())
			}
			return nil
		}
	}
	newKey := func() string { return fmt.Sprintf("load-%s-%d", run, seq.Add(1)) }
	replayKey := func() string { return fmt.Sprintf("replay-%s-%d", run, seq.Add(1)%replayKeys) }

	// Seed the replay keys, and warm the connections.
	for i := range replayKeys {
		req, _ := http.NewRequest(http.MethodPost, base+"/idem/payments", strings.NewReader(string(payBody)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(core.KeyHeader, fmt.Sprintf("replay-%s-%d", run, i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatalf("seeding %s: %v", storeName, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			log.Fatalf("seeding %s: status %d", storeName, resp.StatusCode)
		}
	}

	var results []Result
	for _, m := range []struct {
		mode string
		tr   vegeta.Targeter
	}{
		{"bare", target("/bare/payments", nil)},
		{"newkey", target("/idem/payments", newKey)},
		{"replay", target("/idem/payments", replayKey)},
	} {
		atk := vegeta.NewAttacker(vegeta.Workers(8), vegeta.MaxWorkers(256), vegeta.KeepAlive(true), vegeta.Timeout(10*time.Second))
		var mt vegeta.Metrics
		for res := range atk.Attack(m.tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, m.mode) {
			mt.Add(res)
		}
		mt.Close()
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		results = append(results, Result{
			Adapter: "chi", Store: storeName, Mode: m.mode, Rate: rate, Seconds: d.Seconds(),
			Requests: mt.Requests, Success: mt.Success,
			P50: ms(mt.Latencies.P50), P90: ms(mt.Latencies.P90), P99: ms(mt.Latencies.P99), Max: ms(mt.Latencies.Max),
			Throughput: mt.Throughput, Errors: len(mt.Errors),
		})
		if len(mt.Errors) > 0 {
			log.Printf("chi/%s %s: errors: %s", storeName, m.mode, strings.Join(mt.Errors[:min(3, len(mt.Errors))], "; "))
		}
	}
	return results
}
