package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/svctest"
	"github.com/redis/go-redis/v9"
)

// TestRetriedReceipt retries POST /receipts: the first try enqueues the
// email and then fails (as a crash after the enqueue would), the retry runs
// the handler again and finds the task already queued, a third try is
// replayed. The worker then gets the task, and a redelivered copy of it:
// one task enqueued, one email sent.
func TestRetriedReceipt(t *testing.T) {
	url := svctest.RedisURL(t)
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		svctest.Unavailable(t, "Redis at %s: %v", opt.Addr, err)
	}
	redisOpt, err := asynq.ParseRedisURI(url)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000")
	queue, prefix := "example-"+id, "idemexample:"+id+":"
	t.Cleanup(func() {
		for _, pattern := range []string{prefix + "*", "asynq:{" + queue + "}:*"} {
			iter := rdb.Scan(ctx, 0, pattern, 500).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}
		rdb.SRem(ctx, "asynq:queues", queue)
	})
	engine := core.New(redisstore.New(rdb, redisstore.WithPrefix(prefix)), core.WithHeaderScope("X-Api-Key"), core.WithLease(3*time.Second))
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	var tries atomic.Int32
	rc := &Receipts{client: client, queue: queue, afterEnqueue: func() bool { return tries.Add(1) == 1 }}
	srv := httptest.NewServer(routes(engine, rc))
	defer srv.Close()

	const body = `{"order":42,"email":"ada@example.com"}`
	var taskKey string
	for i, want := range []int{http.StatusInternalServerError, http.StatusCreated, http.StatusCreated} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/receipts", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", `"receipt-order-42"`)
		req.Header.Set("X-Api-Key", "shop-1")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("POST %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %d: %d %s; want %d", i+1, resp.StatusCode, b, want)
		}
		var out struct {
			EmailTask string `json:"email_task"`
		}
		json.Unmarshal(b, &out)
		taskKey = out.EmailTask
	}

	// A redelivered copy: the same task under another ID, as asynq
	// delivers a task again after a worker died.
	inspector := asynq.NewInspector(redisOpt)
	defer inspector.Close()
	pending, err := inspector.ListPendingTasks(queue)
	if err != nil || len(pending) != 1 || !strings.HasPrefix(pending[0].ID, taskKey) {
		t.Fatalf("pending tasks %v (%v); want one, with ID %s…", pending, err, taskKey)
	}
	if _, err := client.Enqueue(asynq.NewTaskWithHeaders(TypeReceiptEmail, pending[0].Payload, pending[0].Headers), asynq.Queue(queue)); err != nil {
		t.Fatal(err)
	}

	cfg := WorkerConfig(queue)
	cfg.TaskCheckInterval, cfg.DelayedTaskCheckInterval, cfg.LogLevel = 50*time.Millisecond, 100*time.Millisecond, asynq.FatalLevel
	cfg.RetryDelayFunc = idemasynq.RetryDelay(func(int, error, *asynq.Task) time.Duration { return 100 * time.Millisecond })
	worker := asynq.NewServer(redisOpt, cfg)
	if err := worker.Start(rc.Worker(engine)); err != nil {
		t.Fatal(err)
	}
	defer worker.Shutdown()
	deadline := time.Now().Add(15 * time.Second)
	for {
		qi, err := inspector.GetQueueInfo(queue)
		if err == nil && qi.Pending+qi.Active+qi.Retry+qi.Scheduled == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained: %+v %v", qi, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := Stats{Executions: rc.executions.Load(), Enqueued: rc.enqueued.Load(), Emails: rc.emails.Load()}
	if s != (Stats{Executions: 2, Enqueued: 1, Emails: 1}) {
		t.Errorf("stats %+v; want 2 handler executions, 1 task enqueued, 1 email", s)
	}
	t.Logf("3 POSTs (500, 201, 201 replayed), 2 task deliveries: %+v", s)
}
