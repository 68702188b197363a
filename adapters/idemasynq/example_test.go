package idemasynq_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// The middleware around a handler: the same key delivered twice runs the
// handler once. (A real worker registers it with mux.Use on an
// asynq.ServeMux; here the handler is called directly, without Redis.)
func ExampleMiddleware() {
	engine := core.New(memstore.New())
	sent := 0
	sendEmail := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		sent++ // the side effect
		return nil
	})
	h := idemasynq.Middleware(engine)(sendEmail)

	task := asynq.NewTaskWithHeaders("email:send", []byte(`{"to":"ada@example.com"}`),
		map[string]string{idemasynq.HeaderKey: "receipt-42"})
	for range 3 { // a first delivery and two redeliveries
		if err := h.ProcessTask(context.Background(), task); err != nil {
			fmt.Println(err)
		}
	}
	other := asynq.NewTaskWithHeaders("email:send", []byte(`{"to":"bob@example.com"}`),
		map[string]string{idemasynq.HeaderKey: "receipt-42"})
	err := h.ProcessTask(context.Background(), other)
	fmt.Println("emails sent:", sent)
	fmt.Println("same key, other payload: skip retry:", err != nil && errors.Is(err, asynq.SkipRetry))
	// Output:
	// emails sent: 1
	// same key, other payload: skip retry: true
}

// A worker: the middleware on every task of the mux, in-flight refusals
// retried after the holder's remaining lease.
func ExampleMiddleware_server() {
	engine := core.New(memstore.New()) // a shared store (redisstore, pgxstore) when several workers run
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}, asynq.Config{
		RetryDelayFunc: idemasynq.RetryDelay(nil),
	})
	mux := asynq.NewServeMux()
	mux.Use(idemasynq.Middleware(engine))
	mux.HandleFunc("email:send", func(ctx context.Context, t *asynq.Task) error {
		// send the email; write a result with idemasynq.WriteResult to have it replayed
		return nil
	})
	_ = srv.Run(mux)
}

// One key from request to job: an HTTP handler guarded by idemkit (here
// with idemhttp.Middleware) enqueues a task keyed by its own request's key.
// A retried POST that runs the handler again enqueues nothing new, and the
// task runs once.
func ExampleNewTask() {
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"})
	createReceipt := func(w http.ResponseWriter, r *http.Request) {
		task, err := idemasynq.NewTask(r.Context(), "email:send", []byte(`{"receipt":42}`))
		if err == nil {
			_, err = idemasynq.Enqueue(r.Context(), client, task)
		}
		if err != nil {
			http.Error(w, "cannot enqueue", http.StatusServiceUnavailable) // a 5xx releases the key: the retry enqueues
			return
		}
		w.WriteHeader(http.StatusCreated)
	}
	_ = createReceipt
}
