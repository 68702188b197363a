package idemasynq_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/core"
)

// TestRedeliveredConcurrently enqueues each of a few logical tasks many
// times (distinct task IDs, one Idempotency-Key header) and lets two
// servers deliver the copies concurrently: each key's side effect happens
// once, every copy completes, and every copy carries the first run's
// result.
func TestRedeliveredConcurrently(t *testing.T) {
	const keys, copies = 4, 12
	e := newEnv(t)
	engine := e.engine(core.WithLease(3 * time.Second))
	const typ = "email:send"

	var mu sync.Mutex
	effects := map[string]int{}
	handler := func(ctx context.Context, tk *asynq.Task) error {
		key := tk.Headers()[idemasynq.HeaderKey]
		mu.Lock()
		effects[key]++
		mu.Unlock()
		time.Sleep(200 * time.Millisecond) // a slow side effect: copies meet it in flight
		_, err := idemasynq.WriteResult(ctx, tk, []byte("sent "+key))
		return err
	}

	for c := 0; c < copies; c++ {
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("receipt-%d", k)
			e.enqueue(task(typ, key, []byte(`{"to":"`+key+`@example.com"}`)))
		}
	}
	var d deliveries
	start := time.Now()
	e.startServer(engine, &d, 6, typ, handler)
	e.startServer(engine, &d, 6, typ, handler)
	qi := e.waitSettled(keys*copies, 25*time.Second)
	elapsed := time.Since(start)

	got := d.snapshot()
	total := 0
	mu.Lock()
	defer mu.Unlock()
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("receipt-%d", k)
		if effects[key] != 1 {
			t.Errorf("side effects of %s = %d; want 1: copies of one key must run the handler once", key, effects[key])
		}
		total += effects[key]
	}
	if qi.Completed != keys*copies || qi.Archived != 0 {
		t.Errorf("queue: %d completed, %d archived; want %d completed, 0 archived", qi.Completed, qi.Archived, keys*copies)
	}
	done, err := e.inspector.ListCompletedTasks(e.queue, asynq.PageSize(keys*copies+10))
	if err != nil {
		t.Fatalf("ListCompletedTasks: %v", err)
	}
	for _, ti := range done {
		if want := "sent " + ti.Headers[idemasynq.HeaderKey]; string(ti.Result) != want {
			t.Errorf("task %s result = %q; want %q: a replayed copy carries the stored result", ti.ID, ti.Result, want)
		}
	}
	t.Logf("%d keys x %d copies = %d tasks on 2 servers x 6 workers: %d deliveries (%d ran or replayed, %d in flight, retried), %d side effects, %d completed, %d archived, in %v",
		keys, copies, keys*copies, got.total, got.ok, got.inFlight, total, qi.Completed, qi.Archived, elapsed.Round(time.Millisecond))
	if got.failed != 0 || got.skipped != 0 {
		t.Errorf("deliveries: %d failed, %d skipped; want 0", got.failed, got.skipped)
	}
}

// TestFailingHandlerRetried has a handler fail twice: asynq retries it (the
// claim was released each time), the third delivery succeeds, and a copy
// enqueued afterwards is replayed without running it.
func TestFailingHandlerRetried(t *testing.T) {
	e := newEnv(t)
	engine := e.engine(core.WithLease(3 * time.Second))
	const typ = "invoice:send"
	var runs, effects atomic.Int32
	var d deliveries
	e.startServer(engine, &d, 2, typ, func(ctx context.Context, tk *asynq.Task) error {
		if runs.Add(1) <= 2 {
			return fmt.Errorf("smtp: connection refused")
		}
		effects.Add(1)
		return nil
	})
	first := e.enqueue(task(typ, "invoice-7", []byte(`{"invoice":7}`)))
	e.waitSettled(1, 15*time.Second)
	ti, err := e.inspector.GetTaskInfo(e.queue, first.ID)
	if err != nil {
		t.Fatalf("GetTaskInfo: %v", err)
	}
	if ti.State != asynq.TaskStateCompleted || ti.Retried != 2 {
		t.Errorf("task: state %v, retried %d; want completed after 2 retries", ti.State, ti.Retried)
	}
	e.enqueue(task(typ, "invoice-7", []byte(`{"invoice":7}`)))
	e.waitSettled(2, 15*time.Second)
	got := d.snapshot()
	if runs.Load() != 3 || effects.Load() != 1 {
		t.Errorf("handler runs %d, side effects %d; want 3 runs (2 failures retried), 1 side effect", runs.Load(), effects.Load())
	}
	if got.total != 4 || got.failed != 2 {
		t.Errorf("deliveries %d (%d failed); want 4 (2 failed): 3 of the first task, 1 replayed copy", got.total, got.failed)
	}
	t.Logf("2 tasks: %d deliveries (%d failed and retried, %d ok), %d handler runs, %d side effect", got.total, got.failed, got.ok, runs.Load(), effects.Load())
}

// TestMismatchArchived reuses a completed task's key with another payload:
// the copy is archived at once (asynq.SkipRetry), its handler not run.
func TestMismatchArchived(t *testing.T) {
	e := newEnv(t)
	engine := e.engine()
	const typ = "payout:send"
	var runs atomic.Int32
	var d deliveries
	e.startServer(engine, &d, 2, typ, func(ctx context.Context, tk *asynq.Task) error {
		runs.Add(1)
		return nil
	})
	e.enqueue(task(typ, "payout-1", []byte(`{"amount":100}`)))
	e.waitSettled(1, 10*time.Second)
	other := e.enqueue(task(typ, "payout-1", []byte(`{"amount":999}`)))
	e.waitSettled(2, 10*time.Second)
	ti, err := e.inspector.GetTaskInfo(e.queue, other.ID)
	if err != nil {
		t.Fatalf("GetTaskInfo: %v", err)
	}
	if ti.State != asynq.TaskStateArchived || ti.Retried != 0 || !strings.Contains(ti.LastErr, "skip retry") {
		t.Errorf("mismatching copy: state %v, retried %d, last error %q; want archived, never retried, skip retry", ti.State, ti.Retried, ti.LastErr)
	}
	if runs.Load() != 1 {
		t.Errorf("handler runs = %d; want 1: another payload under a used key must not run", runs.Load())
	}
	t.Logf("mismatching copy archived: %q", ti.LastErr)
}
