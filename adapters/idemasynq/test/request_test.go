package idemasynq_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
)

// TestRequestToJob carries a POST's idempotency key into the task its
// handler enqueues. The first try enqueues and then fails (a 500, as a
// crash after the enqueue would leave it): the key is released, the retry
// runs the handler again, and its enqueue meets the first task's ID and
// counts as done. Later retries are replayed. The task, and a stray copy
// enqueued under another ID with the same key, are delivered, and the
// email is sent once.
func TestRequestToJob(t *testing.T) {
	e := newEnv(t)
	engine := e.engine(core.WithLease(3 * time.Second))
	const typ = "receipt:email"

	var runs, enqueued, conflicts atomic.Int32
	var taskKey atomic.Value
	createReceipt := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tk, err := idemasynq.NewTask(r.Context(), typ, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		taskKey.Store(tk.Headers()[idemasynq.HeaderKey])
		info, err := idemasynq.Enqueue(r.Context(), e.client, tk, asynq.Queue(e.queue), asynq.Retention(time.Minute))
		if err != nil {
			http.Error(w, "cannot enqueue", http.StatusServiceUnavailable)
			return
		}
		if info != nil {
			enqueued.Add(1)
		} else {
			conflicts.Add(1)
		}
		if runs.Add(1) == 1 {
			http.Error(w, "crashed after enqueueing", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"receipt":"r-1"}`)
	}
	srv := httptest.NewServer(idemhttp.Middleware(engine)(http.HandlerFunc(createReceipt)))
	defer srv.Close()

	post := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/receipts", strings.NewReader(`{"order":42,"email":"ada@example.com"}`))
		req.Header.Set("Idempotency-Key", `"order-42-receipt"`)
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Errorf("POST: %v", err)
			return 0, ""
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Idempotency-Replayed")
	}
	statuses := []string{}
	for i, want := range []int{http.StatusInternalServerError, http.StatusCreated, http.StatusCreated} {
		got, replayed := post()
		if got != want {
			t.Errorf("POST %d: status %d; want %d", i+1, got, want)
		}
		statuses = append(statuses, http.StatusText(got)+map[string]string{"true": " (replayed)"}[replayed])
	}
	var wg sync.WaitGroup
	for range 4 { // and concurrent retries, replayed
		wg.Go(func() {
			if got, _ := post(); got != http.StatusCreated {
				t.Errorf("concurrent retry: status %d; want 201", got)
			}
		})
	}
	wg.Wait()

	// A stray copy under another task ID (as a re-enqueue after the first
	// task's ID is freed would be), then the workers.
	key, _ := taskKey.Load().(string)
	e.enqueue(task(typ, key, []byte(`{"order":42,"email":"ada@example.com"}`)))
	var sent atomic.Int32
	var d deliveries
	e.startServer(engine, &d, 4, typ, func(ctx context.Context, tk *asynq.Task) error {
		sent.Add(1)
		return nil
	})
	qi := e.waitSettled(2, 20*time.Second)
	got := d.snapshot()
	if runs.Load() != 2 || enqueued.Load() != 1 || conflicts.Load() != 1 {
		t.Errorf("handler runs %d, tasks enqueued %d, enqueue conflicts %d; want 2, 1, 1", runs.Load(), enqueued.Load(), conflicts.Load())
	}
	if sent.Load() != 1 || qi.Completed != 2 {
		t.Errorf("emails sent %d, tasks completed %d; want 1 and 2", sent.Load(), qi.Completed)
	}
	t.Logf("7 POSTs (%s, then 4 concurrent retries): %d handler runs, %d task enqueued, %d TaskID conflict taken as done; 2 tasks (1 stray copy): %d deliveries (%d in flight), %d email sent, %d completed",
		strings.Join(statuses, ", "), runs.Load(), enqueued.Load(), conflicts.Load(), got.total, got.inFlight, sent.Load(), qi.Completed)
}
