// Package readme holds every Go snippet of the repository's README.md, so
// that they compile; readme_test.go fails when a snippet in README.md is
// not found here word for word (indented by one tab).
package readme

import (
	"context"
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/adapters/idemgrpc"
	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/adapters/idemriver"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/stores/redisstore"
	"github.com/idemkit/idemkit/stores/tieredstore"
)

// createPayment is the application's handler in the snippets.
func createPayment(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }

// auth stands for the application's authentication middleware.
var auth interface{ ClientID(context.Context) string }

// QuickStartNetHTTP is README's net/http quick start.
func QuickStartNetHTTP() {
	engine := core.New(memstore.New(),
		core.WithHeaderScope("X-Api-Key"), // scope keys by client: see "Guarantees"
	)
	mux := http.NewServeMux()
	mux.Handle("POST /payments", idemhttp.Middleware(engine)(http.HandlerFunc(createPayment)))
	srv := &http.Server{
		Addr:              "127.0.0.1:8080",
		Handler:           http.MaxBytesHandler(mux, 2<<20), // any body, any route
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second, // headers and body: a slow client is cut off
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	srv.ListenAndServe()
}

// QuickStartChi is README's chi quick start.
func QuickStartChi() chi.Router {
	engine := core.New(memstore.New(), core.ScopeBy(func(r *http.Request) string {
		return auth.ClientID(r.Context()) // whoever your auth middleware says the caller is
	}))
	r := chi.NewRouter()
	r.Group(func(r chi.Router) {
		r.Use(idemchi.Middleware(engine))
		r.Post("/payments", createPayment)
	})
	return r
}

// Stores is README's "Stores" section.
func Stores(ctx context.Context) *core.Engine {
	// Redis: single node, Sentinel or Cluster (any redis.UniversalClient).
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", ContextTimeoutEnabled: true})
	var store core.Store = redisstore.New(client)

	// Postgres: apply the schema (or run migrations/ with golang-migrate), then prune expired rows now and then.
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	if err := pgxstore.EnsureSchema(ctx, pool); err != nil {
		log.Fatal(err)
	}
	pg := pgxstore.New(pool)
	stop := pg.StartPruner(ctx, 10*time.Minute)
	defer stop()
	store = pg

	// Tiered: Postgres as the truth, retried keys replayed from Redis in one round trip, keeps serving when Redis is down.
	store = tieredstore.New(redisstore.New(client, redisstore.WithPrefix("idem:hot:")), pg)

	engine := core.New(store)
	return engine
}

// GRPC is README's gRPC server.
func GRPC() {
	engine := core.New(memstore.New())
	srv := grpc.NewServer(grpc.UnaryInterceptor(idemgrpc.UnaryServerInterceptor(engine,
		idemgrpc.WithScope(func(ctx context.Context, fullMethod string) string {
			md, _ := metadata.FromIncomingContext(ctx) // scope keys by client: see "Guarantees"
			return strings.Join(md.Get("x-api-key"), ",")
		}),
	)))
	// paymentspb.RegisterPaymentsServer(srv, &payments{}) — your generated service, as usual
	lis, _ := net.Listen("tcp", "127.0.0.1:50051")
	srv.Serve(lis)
}

// ChargeArgs are the args of README's "Background jobs: River".
type ChargeArgs struct {
	OrderKey string `json:"order_key"` // the Idempotency-Key of the request that enqueued it
	Amount   int    `json:"amount"`
}

func (ChargeArgs) Kind() string { return "charge" }

// charge is the application's River worker in the snippets.
func charge(ctx context.Context, job *river.Job[ChargeArgs]) error { return nil }

// River is README's "Background jobs: River".
func River(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	engine := core.New(pgxstore.New(pool))
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(charge))
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers: workers,
		Middleware: []rivertype.Middleware{idemriver.Middleware(engine,
			idemriver.WithArgsKey(func(a ChargeArgs) string { return a.OrderKey }))},
	})
	return client, err
}

// rdb, client and sendEmail stand for the application's in README's
// "Background jobs: asynq".
var (
	rdb    = redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	client = asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"})
)

func sendEmail(ctx context.Context, t *asynq.Task) error { return nil }

// BackgroundJobsWorker is README's asynq worker.
func BackgroundJobsWorker() {
	engine := core.New(redisstore.New(rdb)) // a store every worker shares
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: "127.0.0.1:6379"}, asynq.Config{
		RetryDelayFunc: idemasynq.RetryDelay(nil), // an in-flight copy is retried when the holder's lease may lapse
	})
	mux := asynq.NewServeMux()
	mux.Use(idemasynq.Middleware(engine))
	mux.HandleFunc("email:send", sendEmail)
	go srv.Run(mux)
}

// createReceipt is README's request-to-job handler.
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

// apiError is the application's own error format in the per-route snippet.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// PerRouteControl is README's "Per-route control".
func PerRouteControl(store core.Store) *core.Engine {
	engine := core.New(store,
		// Skip: webhooks and health probes pass straight through, unguarded.
		core.SkipBy(func(c *gin.Context) bool { return strings.HasPrefix(c.FullPath(), "/webhooks/") }),
		// Per request: a shorter retention here, an optional key there.
		core.RouteOptionsBy(func(c *gin.Context) core.RouteOptions {
			switch c.FullPath() {
			case "/quotes":
				return core.RouteOptions{TTL: time.Hour, KeyRequired: core.KeyRequirementOptional}
			}
			return core.RouteOptions{} // the engine's settings
		}),
		// Refusals in the application's own error format (problem+json by default).
		core.WithProblemRenderer(func(x core.Exchange, p core.Problem, retryAfter time.Duration) *core.Response {
			body, _ := json.Marshal(apiError{Code: p.Code, Message: p.Detail})
			return &core.Response{Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
		}),
	)
	return engine
}
