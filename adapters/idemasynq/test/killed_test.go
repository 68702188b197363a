package idemasynq_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/core"
	"github.com/redis/go-redis/v9"
)

// The killed worker runs in a child process (this test binary, re-run with
// these variables), so that it can be killed with SIGKILL: no shutdown, no
// requeue, no release of its claim.
const (
	envWorker = "IDEMASYNQ_TEST_WORKER"
	envQueue  = "IDEMASYNQ_TEST_QUEUE"
	envPrefix = "IDEMASYNQ_TEST_PREFIX"
	// envRealLease set: wait for asynq's own lease to lapse (slow).
	envRealLease = "IDEMASYNQ_TEST_REAL_LEASE"
	engineTTL    = 2 * time.Second // the engine's lease in this test
	killedType   = "report:build"
)

// TestKilledWorker kills a worker mid-task (SIGKILL, while its handler
// holds the claim) and lets a second worker take the task over: asynq's
// recoverer redelivers it, the redelivery is refused as in flight until
// the dead worker's engine lease lapses, then runs once and completes. The
// task is never stuck, and its side effect happens once.
//
// asynq redelivers a dead worker's task only after its 30 s lease has been
// expired for 30 s more; the test moves the task's asynq lease 61 s into
// the past instead of waiting that minute (the lease is a score in the
// queue's lease sorted set), and starts the second worker, whose recoverer
// runs at once. IDEMASYNQ_TEST_REAL_LEASE=1 waits for asynq's own lease and
// recoverer instead: the task then completes about a minute after the kill.
func TestKilledWorker(t *testing.T) {
	if os.Getenv(envWorker) != "" {
		runKilledWorker(t)
		return
	}
	e := newEnv(t)
	engine := e.engine(core.WithLease(engineTTL))
	ctx := context.Background()
	info := e.enqueue(task(killedType, "report-2026-12", []byte(`{"month":"2026-12"}`)))

	var out bytes.Buffer
	child := exec.Command(os.Args[0], "-test.run=^TestKilledWorker$", "-test.v")
	child.Env = append(os.Environ(), envWorker+"=1", envQueue+"="+e.queue, envPrefix+"="+e.prefix)
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatalf("start the worker process: %v", err)
	}
	exited := make(chan struct{})
	go func() { child.Wait(); close(exited) }()
	t.Cleanup(func() { child.Process.Kill(); <-exited })

	// Wait for the child's handler to hold the claim, then kill it.
	started := e.prefix + "started"
	deadline := time.Now().Add(15 * time.Second)
	for e.rdb.Get(ctx, started).Val() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the worker process never started the task; its output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(engineTTL / 2) // it renews its claim meanwhile
	if err := child.Process.Kill(); err != nil {
		t.Fatalf("kill the worker process: %v", err)
	}
	<-exited
	killed := time.Now()
	if ti, err := e.inspector.GetTaskInfo(e.queue, info.ID); err != nil || ti.State != asynq.TaskStateActive {
		t.Fatalf("after the kill: task %+v, %v; want it active (held by the dead worker)", ti, err)
	}

	// Fast-forward asynq's clock for this task: its lease expired a minute
	// ago. With IDEMASYNQ_TEST_REAL_LEASE=1 the test waits for asynq's own
	// lease and recoverer instead (one to two minutes).
	wait := 20 * time.Second
	if os.Getenv(envRealLease) != "" {
		wait = 150 * time.Second
	} else if err := e.rdb.ZAdd(ctx, "asynq:{"+e.queue+"}:lease", redis.Z{
		Score: float64(time.Now().Add(-61 * time.Second).Unix()), Member: info.ID,
	}).Err(); err != nil {
		t.Fatalf("move the asynq lease: %v", err)
	}

	var effects atomic.Int32
	var d deliveries
	e.startServer(engine, &d, 2, killedType, func(ctx context.Context, tk *asynq.Task) error {
		effects.Add(1)
		return nil
	})
	e.waitSettled(1, wait)
	took := time.Since(killed)
	ti, err := e.inspector.GetTaskInfo(e.queue, info.ID)
	if err != nil {
		t.Fatalf("GetTaskInfo: %v", err)
	}
	got := d.snapshot()
	if ti.State != asynq.TaskStateCompleted {
		t.Errorf("task state %v (last error %q); want completed", ti.State, ti.LastErr)
	}
	if effects.Load() != 1 || got.ok != 1 {
		t.Errorf("side effects %d, successful deliveries %d; want 1 and 1", effects.Load(), got.ok)
	}
	t.Logf("1 task: 1 delivery to the killed worker, %d to the second (%d refused in flight until the engine lease [%v] lapsed, %d ran), %d side effect, completed %v after the kill (asynq retries: %d)",
		got.total, got.inFlight, engineTTL, got.ok, effects.Load(), took.Round(time.Millisecond), ti.Retried)
}

// runKilledWorker is the child process: a worker whose handler marks the
// task started and then blocks until it is killed.
func runKilledWorker(t *testing.T) {
	e := &env{t: t, queue: os.Getenv(envQueue), prefix: os.Getenv(envPrefix)}
	url := os.Getenv("IDEMKIT_REDIS_URL")
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	e.rdb = redis.NewClient(opt)
	if e.conn, err = asynq.ParseRedisURI(url); err != nil {
		t.Fatal(err)
	}
	engine := e.engine(core.WithLease(engineTTL))
	var d deliveries
	e.startServer(engine, &d, 1, killedType, func(ctx context.Context, tk *asynq.Task) error {
		key, token, _ := core.HeldClaim(ctx)
		e.rdb.Set(context.Background(), e.prefix+"started", strconv.Quote(string(token))+" "+key[:8], time.Minute)
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		t.Error("the worker process was not killed")
		return nil
	})
	time.Sleep(time.Minute)
}
