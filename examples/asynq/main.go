// Command asynq is the idemkit example of one key from request to job: a
// chi service whose POST /receipts enqueues a receipt email as an asynq
// task, and an asynq worker in the same process that sends it. The POST is
// guarded by idemchi; the task carries a key derived from the request's
// own (idemasynq.NewTask) and runs behind idemasynq.Middleware, so a
// retried POST neither enqueues the email twice nor sends it twice. Run it
// with Redis for asynq (IDEMKIT_REDIS_URL) and any store:
//
//	go run ./examples/asynq -addr 127.0.0.1:8080 -store redis
//
// POST /receipts takes {"order": 42, "email": "ada@example.com"} with an
// Idempotency-Key (keys scoped by X-Api-Key) and answers 201; GET /stats
// counts handler executions, tasks enqueued and emails sent.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-chi/chi/v5"
	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/examples/internal/service"
)

// TypeReceiptEmail is the type of the task POST /receipts enqueues.
const TypeReceiptEmail = "receipt:email"

// ReceiptRequest is the body of POST /receipts, and the task's payload.
type ReceiptRequest struct {
	Order int64  `json:"order"`
	Email string `json:"email"`
}

// Receipts is the example's domain: it counts what the demo watches.
type Receipts struct {
	client *asynq.Client
	queue  string
	// afterEnqueue, when set, may fail the request after its task was
	// enqueued (tests: a crash between the enqueue and the response).
	afterEnqueue func() bool

	executions, enqueued, emails atomic.Int64
}

// Stats is the answer of GET /stats.
type Stats struct {
	Executions int64 `json:"executions"` // POST /receipts handler runs
	Enqueued   int64 `json:"enqueued"`   // tasks enqueued (a TaskID conflict enqueues none)
	Emails     int64 `json:"emails"`     // emails sent by the worker
}

func main() {
	queue := flag.String("queue", "receipts", "the asynq queue of the receipt emails")
	flags, logger, engine, closeStore := service.Setup()
	redisOpt, err := asynq.ParseRedisURI(os.Getenv("IDEMKIT_REDIS_URL"))
	if err != nil {
		logger.Error("asynq needs Redis: set IDEMKIT_REDIS_URL", "err", err)
		os.Exit(2)
	}
	client := asynq.NewClient(redisOpt)
	rc := &Receipts{client: client, queue: *queue}
	worker := asynq.NewServer(redisOpt, WorkerConfig(*queue))
	if err := worker.Start(rc.Worker(engine)); err != nil {
		logger.Error("asynq worker", "err", err)
		os.Exit(2)
	}
	err = service.Serve(flags, routes(engine, rc), logger)
	worker.Shutdown()
	client.Close()
	closeStore()
	if err != nil {
		logger.Error("server", "err", err)
		os.Exit(1)
	}
}

// WorkerConfig is the worker's asynq configuration: the receipts queue,
// and in-flight refusals retried when the holder's lease may lapse.
func WorkerConfig(queue string) asynq.Config {
	return asynq.Config{
		Queues:         map[string]int{queue: 1},
		RetryDelayFunc: idemasynq.RetryDelay(nil),
		LogLevel:       asynq.WarnLevel,
	}
}

func routes(engine *core.Engine, rc *Receipts) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", service.Healthz(engine))
	r.Get("/stats", rc.StatsHandler)
	r.Group(func(r chi.Router) {
		r.Use(idemchi.Middleware(engine))
		r.Post("/receipts", rc.CreateReceiptHandler)
	})
	return r
}

// Worker returns the worker's handlers, behind idemasynq's middleware.
func (rc *Receipts) Worker(engine *core.Engine) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(idemasynq.Middleware(engine))
	mux.HandleFunc(TypeReceiptEmail, rc.SendEmail)
	return mux
}

// CreateReceiptHandler serves POST /receipts: it enqueues the receipt
// email under a key derived from the request's, and answers 201.
func (rc *Receipts) CreateReceiptHandler(w http.ResponseWriter, r *http.Request) {
	n := rc.executions.Add(1)
	var req ReceiptRequest
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil || req.Order <= 0 || !strings.Contains(req.Email, "@") {
		service.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"order\": a positive number, \"email\": an address}"})
		return
	}
	payload, _ := json.Marshal(req) // the same on every retry of the request
	task, err := idemasynq.NewTask(r.Context(), TypeReceiptEmail, payload)
	var info *asynq.TaskInfo
	if err == nil {
		info, err = idemasynq.Enqueue(r.Context(), rc.client, task, asynq.Queue(rc.queue))
	}
	if err != nil {
		// A 5xx releases the key: the client's retry enqueues again.
		service.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the email could not be queued; retry with the same key"})
		return
	}
	if info != nil {
		rc.enqueued.Add(1)
	}
	if rc.afterEnqueue != nil && rc.afterEnqueue() {
		service.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "failed after enqueueing"})
		return
	}
	service.WriteJSON(w, http.StatusCreated, map[string]any{
		"receipt": "rcpt_" + strconv.FormatInt(req.Order, 10), "email_task": task.Headers()[idemasynq.HeaderKey][:16], "execution": n,
	})
}

// SendEmail is the worker's handler for TypeReceiptEmail.
func (rc *Receipts) SendEmail(ctx context.Context, t *asynq.Task) error {
	var req ReceiptRequest
	if err := json.Unmarshal(t.Payload(), &req); err != nil {
		return err
	}
	rc.emails.Add(1) // the side effect: here an email would be sent
	_, err := idemasynq.WriteResult(ctx, t, []byte("sent to "+req.Email))
	return err
}

// StatsHandler serves GET /stats.
func (rc *Receipts) StatsHandler(w http.ResponseWriter, r *http.Request) {
	service.WriteJSON(w, http.StatusOK, Stats{Executions: rc.executions.Load(), Enqueued: rc.enqueued.Load(), Emails: rc.emails.Load()})
}
