package idemasynq_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/redis/go-redis/v9"
)

// env is one test's share of the Redis server: a queue and a store prefix
// no other test uses, removed at cleanup (never a FLUSHDB: the server is
// shared).
type env struct {
	t         *testing.T
	url       string
	rdb       *redis.Client
	conn      asynq.RedisConnOpt
	queue     string
	prefix    string
	client    *asynq.Client
	inspector *asynq.Inspector
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := svctest.RedisURL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis.ParseURL(%s): %v", svctest.EnvRedisURL, err)
	}
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		svctest.Unavailable(t, "Redis at %s does not answer PING: %v", opt.Addr, err)
	}
	conn, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatalf("asynq.ParseRedisURI: %v", err)
	}
	id := randHex(t)
	e := &env{
		t: t, url: url, rdb: rdb, conn: conn,
		queue:     "idemtest-" + id,
		prefix:    "idemtest:" + id + ":",
		client:    asynq.NewClient(conn),
		inspector: asynq.NewInspector(conn),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, pattern := range []string{e.prefix + "*", "asynq:{" + e.queue + "}:*"} {
			iter := rdb.Scan(ctx, 0, pattern, 500).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}
		rdb.SRem(ctx, "asynq:queues", e.queue)
		e.client.Close()
		e.inspector.Close()
		rdb.Close()
	})
	return e
}

func randHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// engine returns an engine on a Redis store under the test's prefix.
func (e *env) engine(opts ...core.Option) *core.Engine {
	return core.New(redisstore.New(e.rdb, redisstore.WithPrefix(e.prefix+"idem:")), opts...)
}

// task returns a task of the test's kind carrying key in its header.
func task(typ, key string, payload []byte) *asynq.Task {
	return asynq.NewTaskWithHeaders(typ, payload, map[string]string{idemasynq.HeaderKey: key})
}

// enqueue enqueues t on the test's queue, retained once completed so that
// the test can count and read it.
func (e *env) enqueue(t *asynq.Task, opts ...asynq.Option) *asynq.TaskInfo {
	e.t.Helper()
	info, err := e.client.Enqueue(t, append([]asynq.Option{asynq.Queue(e.queue), asynq.Retention(time.Minute), asynq.MaxRetry(20)}, opts...)...)
	if err != nil {
		e.t.Fatalf("Enqueue(%s): %v", t.Type(), err)
	}
	return info
}

// deliveries counts what the middleware answered to each delivery.
type deliveries struct {
	mu       sync.Mutex
	total    int
	ok       int
	inFlight int
	skipped  int // SkipRetry: archived
	failed   int // any other error: retried
}

// middleware wraps the idemasynq middleware (next) and counts its answers.
func (d *deliveries) middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.total++
		switch {
		case err == nil:
			d.ok++
		case errors.Is(err, core.ErrInFlight):
			d.inFlight++
		case errors.Is(err, asynq.SkipRetry):
			d.skipped++
		default:
			d.failed++
		}
		return err
	})
}

func (d *deliveries) snapshot() deliveries {
	d.mu.Lock()
	defer d.mu.Unlock()
	return deliveries{total: d.total, ok: d.ok, inFlight: d.inFlight, skipped: d.skipped, failed: d.failed}
}

// startServer starts a real asynq server on the test's queue, with short
// intervals and retries (in-flight refusals after the holder's lease, other
// errors after 100 ms), handling typ with h behind the idemasynq middleware
// and d's counter. It is shut down at cleanup.
func (e *env) startServer(engine *core.Engine, d *deliveries, concurrency int, typ string, h asynq.HandlerFunc) *asynq.Server {
	e.t.Helper()
	srv := asynq.NewServer(e.conn, asynq.Config{
		Concurrency:              concurrency,
		Queues:                   map[string]int{e.queue: 1},
		TaskCheckInterval:        50 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		RetryDelayFunc: idemasynq.RetryDelay(func(int, error, *asynq.Task) time.Duration {
			return 100 * time.Millisecond
		}),
		ShutdownTimeout: 2 * time.Second,
		LogLevel:        asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.Use(d.middleware, idemasynq.Middleware(engine))
	mux.HandleFunc(typ, h)
	if err := srv.Start(mux); err != nil {
		e.t.Fatalf("asynq server Start: %v", err)
	}
	e.t.Cleanup(srv.Shutdown)
	return srv
}

// waitSettled waits until the queue holds no pending, active, scheduled or
// retrying task and completed+archived reaches want, and returns the
// queue's info.
func (e *env) waitSettled(want int, timeout time.Duration) *asynq.QueueInfo {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		qi, err := e.inspector.GetQueueInfo(e.queue)
		if err == nil && qi.Pending+qi.Active+qi.Scheduled+qi.Retry == 0 && qi.Completed+qi.Archived >= want {
			return qi
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("queue %s not settled after %v: %+v (err %v); want %d completed or archived", e.queue, timeout, qi, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
