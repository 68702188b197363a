package idemasynq_test

import (
	"context"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/redis/go-redis/v9"
)

// README's "Background jobs: asynq" snippets, word for word, so that they
// compile.

var (
	rdb    = redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	client = asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"})
)

func sendEmail(ctx context.Context, t *asynq.Task) error { return nil }

func readmeWorker() {
	engine := core.New(redisstore.New(rdb)) // a store every worker shares
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}, asynq.Config{
		RetryDelayFunc: idemasynq.RetryDelay(nil), // an in-flight copy is retried when the holder's lease may lapse
	})
	mux := asynq.NewServeMux()
	mux.Use(idemasynq.Middleware(engine))
	mux.HandleFunc("email:send", sendEmail)
	go srv.Run(mux)
}

func createReceipt(w http.ResponseWriter, r *http.Request) {
	task, err := idemasynq.NewTask(r.Context(), "email:send", []byte(`{"receipt":42}`))
	if err == nil {
		_, err = idemasynq.Enqueue(r.Context(), client, task)
	}
	if err != nil {
		http.Error(w, "try again", http.StatusServiceUnavailable) // a 5xx releases the key: the retry enqueues
		return
	}
	w.WriteHeader(http.StatusCreated)
}

var _, _ = readmeWorker, createReceipt
