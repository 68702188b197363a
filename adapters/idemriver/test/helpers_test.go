package idemriver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/idemkit/idemkit/adapters/idemriver"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/stores/pgxstore"
	"github.com/idemkit/idemkit/svctest"
)

// River's and the engine's timings in these tests: short, so that a stuck
// job is rescued within seconds. The engine's lease is short too, so that a
// duplicate snoozed while another worker holds its key looks again soon.
const (
	jobTimeout  = 500 * time.Millisecond
	rescueAfter = time.Second
	lease       = 2 * time.Second
	idemTable   = "idem_keys"
)

// chargeArgs are the jobs' args: Key is the producer's idempotency key
// (the same for every insert of one logical job).
type chargeArgs struct {
	Key    string `json:"key,omitempty"`
	Amount int    `json:"amount"`
}

func (chargeArgs) Kind() string { return "charge" }

// env is one test's world: a private schema on the test database holding
// River's tables and the idempotency table, and the figures the test
// reports.
type env struct {
	t      *testing.T
	pool   *pgxpool.Pool
	schema string
	probe  *probe
	// effects counts side effects: what must happen once per logical job.
	effects atomic.Int64
	// frozen holds the workers a test freezes until it opens it (or the
	// test ends: clients open it before they stop).
	frozen *gate
	// clients are the env's River clients, in start order.
	clients []*river.Client[pgx.Tx]
}

func newEnv(t *testing.T) *env {
	t.Helper()
	url := svctest.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgxpool.ParseConfig: %v", err)
	}
	cfg.MaxConns = 12
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgxpool.NewWithConfig: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		svctest.Unavailable(t, "cannot reach PostgreSQL at %s: %v", url, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	e := &env{t: t, pool: pool, schema: "idemriver_" + hex.EncodeToString(b[:]), probe: newProbe(), frozen: newGate()}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{e.schema}.Sanitize()); err != nil {
		t.Fatalf("create schema %s: %v", e.schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{e.schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", e.schema, err)
		}
	})
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: e.schema, Logger: logger()})
	if err != nil {
		t.Fatalf("rivermigrate.New: %v", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatalf("migrate River into %s: %v", e.schema, err)
	}
	if err := pgxstore.EnsureSchema(ctx, pool, pgxstore.WithSchema(e.schema), pgxstore.WithTable(idemTable)); err != nil {
		t.Fatalf("pgxstore.EnsureSchema: %v", err)
	}
	return e
}

// logger is River's logger: silent, or warnings on stderr with
// IDEMRIVER_TEST_LOG=1.
func logger() *slog.Logger {
	if os.Getenv("IDEMRIVER_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// soonRetry retries a failed or rescued job a tenth of a second later, so
// tests need not wait for River's exponential backoff.
type soonRetry struct{}

func (soonRetry) NextRetry(*rivertype.JobRow) time.Time {
	return time.Now().Add(100 * time.Millisecond)
}

// client starts a River client on the env's schema: one worker process,
// with an engine of its own over the shared idempotency table. Only a
// leader runs River's maintenance (the rescuer, the scheduler); the
// idempotency middleware sits inside the env's probe.
// A wrap, if given, wraps the engine's store.
func (e *env) client(id string, leader bool, work func(context.Context, *river.Job[chargeArgs]) error, wrap ...func(core.Store) core.Store) *river.Client[pgx.Tx] {
	e.t.Helper()
	var store core.Store = pgxstore.New(e.pool, pgxstore.WithSchema(e.schema), pgxstore.WithTable(idemTable))
	for _, w := range wrap {
		store = w(store)
	}
	engine := core.New(store, core.WithLease(lease))
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(work))
	c, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{
		ID:                     id,
		Schema:                 e.schema,
		Queues:                 map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		Workers:                workers,
		LeaderElectionDisabled: !leader,
		FetchCooldown:          20 * time.Millisecond,
		FetchPollInterval:      100 * time.Millisecond,
		JobTimeout:             jobTimeout,
		RescueStuckJobsAfter:   rescueAfter,
		RetryPolicy:            soonRetry{},
		Logger:                 logger(),
		TestOnly:               true,
		Middleware: []rivertype.Middleware{
			e.probe,
			idemriver.Middleware(engine, idemriver.WithArgsKey(func(a chargeArgs) string { return a.Key })),
		},
	})
	if err != nil {
		e.t.Fatalf("river.NewClient: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		e.t.Fatalf("start client %s: %v", id, err)
	}
	e.clients = append(e.clients, c)
	e.t.Cleanup(func() {
		e.frozen.open()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.StopAndCancel(ctx); err != nil {
			e.t.Errorf("stop client %s: %v", id, err)
		}
	})
	return c
}

// insert inserts one job per args and returns their IDs.
func (e *env) insert(c *river.Client[pgx.Tx], args ...chargeArgs) []int64 {
	e.t.Helper()
	params := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		params[i] = river.InsertManyParams{Args: a}
	}
	res, err := c.InsertMany(context.Background(), params)
	if err != nil {
		e.t.Fatalf("InsertMany: %v", err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids
}

// wait polls until every job is finalized (or the deadline passes) and
// returns their rows.
func (e *env) wait(c *river.Client[pgx.Tx], timeout time.Duration, ids ...int64) []*rivertype.JobRow {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		rows := make([]*rivertype.JobRow, len(ids))
		done := true
		for i, id := range ids {
			row, err := c.JobGet(context.Background(), id)
			if err != nil {
				e.t.Fatalf("JobGet(%d): %v", id, err)
			}
			rows[i] = row
			if row.FinalizedAt == nil {
				done = false
			}
		}
		if done {
			return rows
		}
		if time.Now().After(deadline) {
			for _, r := range rows {
				e.t.Logf("job %d: state %s, attempt %d, errors %v", r.ID, r.State, r.Attempt, r.Errors)
			}
			e.t.Fatalf("jobs not finalized within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// until polls cond until it holds, failing the test after timeout.
func until(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// report lets frozen workers go and stops the clients, waiting for the
// deliveries under way, then logs the figures of the test: jobs,
// deliveries (every time River worked a job), side effects, and what the
// deliveries got. It returns the delivery counts.
func (e *env) report(jobs int) probeCounts {
	e.t.Helper()
	e.frozen.open()
	for _, c := range e.clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.Stop(ctx); err != nil {
			e.t.Errorf("stop client: %v", err)
		}
		cancel()
	}
	p := e.probe.snapshot()
	e.t.Logf("figures: jobs %d, deliveries %d, side effects %d (completed %d, snoozed %d, retried %d, cancelled %d)",
		jobs, p.deliveries, e.effects.Load(), p.completed, p.snoozed, p.errored, p.cancelled)
	return p
}

// probe is the outermost worker middleware of every client of an env: it
// counts deliveries and their outcomes, across clients, and can freeze a
// delivery after it returns (a process stopped between its work and
// River's record of it).
type probe struct {
	mu     sync.Mutex
	counts probeCounts
	// after, if set, runs after each delivery with its result; it may block.
	after func(job *rivertype.JobRow, err error)
}

type probeCounts struct {
	deliveries, completed, snoozed, errored, cancelled int
}

func newProbe() *probe { return &probe{} }

func (p *probe) IsMiddleware() bool { return true }

func (p *probe) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	err := doInner(ctx)
	p.mu.Lock()
	p.counts.deliveries++
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	switch {
	case err == nil:
		p.counts.completed++
	case errors.As(err, &snooze):
		p.counts.snoozed++
	case errors.As(err, &cancel):
		p.counts.cancelled++
	default:
		p.counts.errored++
	}
	after := p.after
	p.mu.Unlock()
	if after != nil {
		after(job, err)
	}
	return err
}

func (p *probe) snapshot() probeCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

func (p *probe) setAfter(fn func(job *rivertype.JobRow, err error)) {
	p.mu.Lock()
	p.after = fn
	p.mu.Unlock()
}

// gate is a channel closed once, to let frozen workers go.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// killable is a store as a process sees it: once the process is killed,
// nothing it would send reaches the store (its claims are no longer
// renewed, so they lapse).
type killable struct {
	core.Store
	dead atomic.Bool
}

var errKilled = errors.New("the process was killed")

func (k *killable) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if k.dead.Load() {
		return core.Claim{}, errKilled
	}
	return k.Store.Claim(ctx, req)
}

func (k *killable) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.Complete(ctx, key, token, resp, ttl)
}

func (k *killable) Release(ctx context.Context, key string, token core.Token) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.Release(ctx, key, token)
}

func (k *killable) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.Renew(ctx, key, token, lease)
}
