// Package service holds what the example services share: the payments
// domain (framework-free), the command line, the choice of store and a
// graceful shutdown. Each example wires these into its own framework.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/idemkit/idemkit/core"
)

// PaymentRequest is the body of POST /payments.
type PaymentRequest struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Payment is the 201 answer of POST /payments.
type Payment struct {
	ID        string `json:"id"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Execution int64  `json:"execution"`
}

// Stats is the answer of GET /stats.
type Stats struct {
	Executions int64 `json:"executions"`
}

// Payments is the example's domain: it counts handler executions, which is
// what the demo watches to show that retries do not run the handler twice.
// With a ledger (-ledger), it also appends one line to a file when a
// handler starts ("run AMOUNT CURRENCY") and one when it creates a payment
// ("pay AMOUNT CURRENCY ID EXECUTION"), each ending with the time in Unix
// milliseconds and written with a single write, so that a test running
// several instances, or killing one, can count side effects
// per payment across all of them.
type Payments struct {
	executions atomic.Int64
	ledgerMu   sync.Mutex
	ledger     *os.File
}

// NewPayments returns the payments of a service started with f: with the
// ledger file f.Ledger opened for appending when it is set.
func NewPayments(f Flags) (*Payments, error) {
	p := &Payments{}
	if f.Ledger != "" {
		l, err := os.OpenFile(f.Ledger, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		p.ledger = l
	}
	return p, nil
}

func (p *Payments) record(format string, args ...any) {
	if p.ledger == nil {
		return
	}
	line := fmt.Sprintf(format+"\n", args...)
	p.ledgerMu.Lock()
	defer p.ledgerMu.Unlock()
	p.ledger.WriteString(line)
}

// ErrInvalidPayment is returned for a body that is not a payment.
var ErrInvalidPayment = errors.New("amount must be positive and currency three letters")

// Query holds the query parameters of POST /payments that change how the
// handler runs.
type Query struct {
	DelayMS string // delay_ms: sleep first, giving up with 503 if the request is cancelled
	HoldMS  string // hold_ms: sleep first without watching the request, as a provider call that finishes after its client left
	Fail    bool   // fail=1: answer 500
}

// QueryFrom reads a Query with get, a framework's query accessor.
func QueryFrom(get func(name string) string) Query {
	return Query{DelayMS: get("delay_ms"), HoldMS: get("hold_ms"), Fail: get("fail") == "1"}
}

// Create runs one execution of the handler: it honours q, then creates the
// payment.
func (p *Payments) Create(ctx context.Context, req PaymentRequest, q Query) (Payment, int, error) {
	n := p.executions.Add(1)
	p.record("run %d %s %d", req.Amount, req.Currency, time.Now().UnixMilli())
	if d, err := strconv.Atoi(q.DelayMS); err == nil && d > 0 {
		select {
		case <-time.After(time.Duration(d) * time.Millisecond):
		case <-ctx.Done():
			return Payment{}, http.StatusServiceUnavailable, ctx.Err()
		}
	}
	if d, err := strconv.Atoi(q.HoldMS); err == nil && d > 0 {
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	if q.Fail {
		return Payment{}, http.StatusInternalServerError, errors.New("payment processor failed (fail=1)")
	}
	if req.Amount <= 0 || len(req.Currency) != 3 {
		return Payment{}, http.StatusBadRequest, ErrInvalidPayment
	}
	var id [8]byte
	rand.Read(id[:])
	pay := Payment{ID: "pay_" + hex.EncodeToString(id[:]), Amount: req.Amount, Currency: req.Currency, Execution: n}
	p.record("pay %d %s %s %d %d", pay.Amount, pay.Currency, pay.ID, pay.Execution, time.Now().UnixMilli())
	return pay, http.StatusCreated, nil
}

// Stats returns the execution count.
func (p *Payments) Stats() Stats { return Stats{Executions: p.executions.Load()} }

// Flags are the example services' command line.
type Flags struct {
	Addr    string
	Store   string
	Metrics bool          // -metrics: Prometheus metrics on GET /metrics
	Lease   time.Duration // -lease: the claims' lease (core.WithLease); 0 keeps the default
	Ledger  string        // -ledger: a file to append the payments' ledger to (see [Payments])
	Limits  Limits
	// Telemetry is what -metrics turns on, set by [Setup]; nil without it.
	Telemetry *Telemetry
	// AllowEvictingRedis starts the redis store on a Redis whose
	// maxmemory-policy may evict live claims (-allow-evicting-redis).
	AllowEvictingRedis bool
	// RedisReplicaAcks, when positive, makes the redis store wait for that
	// many replicas after every claim and complete, within
	// RedisReplicaAckTimeout (redisstore.WithReplicaAcks;
	// -redis-replica-acks, -redis-replica-ack-timeout).
	RedisReplicaAcks       int
	RedisReplicaAckTimeout time.Duration
}

// Limits bound what one client can make a server hold: time to send the
// headers and the body, time to take the response, an idle keep-alive
// connection, header bytes and body bytes. All but MaxBody belong to the
// server (net/http's http.Server, fiber's Config), which applies them to
// every route; MaxBody is idemkit's limit on the body of a guarded request,
// which it reads whole to fingerprint it.
type Limits struct {
	ReadHeaderTimeout time.Duration // net/http only: fasthttp has no separate header deadline
	ReadTimeout       time.Duration // the whole request, headers and body
	WriteTimeout      time.Duration // from the end of the request headers to the end of the response
	IdleTimeout       time.Duration // an idle keep-alive connection
	MaxHeaderBytes    int           // net/http's MaxHeaderBytes; fiber's ReadBufferSize
	MaxRequestBody    int64         // the server's body limit, on every route (fiber's BodyLimit)
	MaxBody           int64         // idemkit's body limit on guarded routes (core.WithMaxBodyBytes)
}

// DefaultLimits are the examples' defaults: generous for a JSON API, tight
// enough that a slow or oversized client is cut off.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 5 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       2 * time.Minute,
	MaxHeaderBytes:    16 << 10,
	MaxRequestBody:    2 << 20,
	MaxBody:           core.DefaultMaxBodyBytes,
}

// Register defines the limits' flags on fs, with l as the defaults.
func (l *Limits) Register(fs *flag.FlagSet) {
	fs.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", l.ReadHeaderTimeout, "time allowed to read the request headers (net/http)")
	fs.DurationVar(&l.ReadTimeout, "read-timeout", l.ReadTimeout, "time allowed to read the whole request, body included")
	fs.DurationVar(&l.WriteTimeout, "write-timeout", l.WriteTimeout, "time allowed from the end of the request headers to the end of the response")
	fs.DurationVar(&l.IdleTimeout, "idle-timeout", l.IdleTimeout, "how long an idle keep-alive connection is kept")
	fs.IntVar(&l.MaxHeaderBytes, "max-header-bytes", l.MaxHeaderBytes, "largest request header section (fiber: its read buffer size)")
	fs.Int64Var(&l.MaxRequestBody, "max-request-body", l.MaxRequestBody, "the server's limit on any request body, in bytes")
	fs.Int64Var(&l.MaxBody, "max-body", l.MaxBody, "idemkit's limit on the body of a guarded request, in bytes (413 beyond)")
}

// Server returns the http.Server the net/http-based examples run: h on
// addr, with the limits applied.
func (l Limits) Server(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           http.MaxBytesHandler(h, l.MaxRequestBody),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// ParseArgs parses the examples' command line from args.
func ParseArgs(args []string) (Flags, error) {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	f := register(fs)
	err := fs.Parse(args)
	return *f, err
}

// ParseFlags parses the process's command line: -addr, -store, -metrics,
// -allow-evicting-redis, -redis-replica-acks and the limits.
func ParseFlags() Flags {
	f := register(flag.CommandLine)
	flag.Parse()
	return *f
}

func register(fs *flag.FlagSet) *Flags {
	f := &Flags{Limits: DefaultLimits}
	fs.StringVar(&f.Addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&f.Store, "store", "memory", "store: "+StoreNames)
	fs.BoolVar(&f.Metrics, "metrics", false, "serve OpenTelemetry metrics (idemkit's, and HTTP's by outcome) in the Prometheus format on GET /metrics")
	fs.BoolVar(&f.AllowEvictingRedis, "allow-evicting-redis", false,
		"start -store redis even on a Redis whose maxmemory-policy may evict live claims (a handler may then run twice)")
	fs.IntVar(&f.RedisReplicaAcks, "redis-replica-acks", 0,
		"-store redis: wait for this many replicas (Redis WAIT) after every claim and complete; 503 when fewer acknowledge (0: do not wait)")
	fs.DurationVar(&f.RedisReplicaAckTimeout, "redis-replica-ack-timeout", 500*time.Millisecond,
		"-store redis with -redis-replica-acks: how long to wait for the replicas (below the store's 5s timeout)")
	fs.DurationVar(&f.Lease, "lease", 0, "lease of a claim, renewed while the handler runs (0: the default, 30s)")
	fs.StringVar(&f.Ledger, "ledger", "", "append a line per handler start and per payment created to this file")
	f.Limits.Register(fs)
	return f
}

// EngineOptions are the options every example uses: keys scoped by the
// X-Api-Key header, decisions logged by [Observer].
func EngineOptions(logger *slog.Logger) []core.Option {
	return []core.Option{
		core.WithHeaderScope("X-Api-Key"),
		core.WithObserver(Observer(logger)),
	}
}

// Observer is what the examples report to, the engine and the memory
// store alike (its early evictions): logger, through [core.SlogObserver].
func Observer(logger *slog.Logger) core.Observer { return core.SlogObserver(logger) }

// Logger returns the examples' logger.
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Serve runs h on flags.Addr, with flags.Limits, until SIGINT or SIGTERM,
// then shuts down gracefully.
func Serve(flags Flags, h http.Handler, logger *slog.Logger) error {
	srv := flags.Limits.Server(flags.Addr, h)
	return RunUntilSignal(logger, func() error {
		logger.Info("listening", "addr", srv.Addr)
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, srv.Shutdown)
}

// RunUntilSignal runs serve until it fails or a SIGINT/SIGTERM arrives,
// then calls shutdown with a 10-second deadline.
func RunUntilSignal(logger *slog.Logger, serve func() error, shutdown func(context.Context) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-errc
}

// Setup parses the command line, opens the store and builds the engine
// with the examples' options. It exits the process if the store cannot be
// opened. The returned function, for after the server has stopped, waits
// (up to 10 s) for the engine's background work — responses whose storing
// a store outage deferred — and then closes the store.
func Setup() (Flags, *slog.Logger, *core.Engine, func()) {
	flags := ParseFlags()
	logger := Logger()
	if flags.Metrics {
		t, err := NewTelemetry()
		if err != nil {
			logger.Error("setting up metrics", "err", err)
			os.Exit(2)
		}
		flags.Telemetry = t
	}
	obs := flags.Telemetry.Observer(Observer(logger))
	store, closeStore, err := OpenStoreFlags(context.Background(), flags, obs, logger)
	if err != nil {
		logger.Error("opening store", "err", err)
		os.Exit(2)
	}
	opts := append(EngineOptions(logger), core.WithMaxBodyBytes(flags.Limits.MaxBody), core.WithObserver(obs))
	if flags.Lease > 0 {
		opts = append(opts, core.WithLease(flags.Lease))
	}
	engine := core.New(store, opts...)
	return flags, logger, engine, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := engine.Shutdown(ctx); err != nil {
			logger.Error("background work left unfinished", "err", err)
		}
		closeStore()
		_ = flags.Telemetry.Shutdown(ctx)
	}
}

// MustPayments is [NewPayments] for a main: it exits the process when the
// ledger cannot be opened.
func MustPayments(f Flags, logger *slog.Logger) *Payments {
	p, err := NewPayments(f)
	if err != nil {
		logger.Error("payments", "err", err)
		os.Exit(2)
	}
	return p
}

// Main runs a net/http-based example: routes over the engine, served on
// -addr until SIGINT or SIGTERM.
func Main(routes func(*core.Engine, *Payments) http.Handler) {
	flags, logger, engine, closeStore := Setup()
	payments := MustPayments(flags, logger)
	err := Serve(flags, flags.Telemetry.Handler(routes(engine, payments)), logger)
	closeStore()
	if err != nil {
		logger.Error("server", "err", err)
		os.Exit(1)
	}
}
