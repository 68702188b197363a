package idemasynq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/core"
)

// HeaderKey is the task header that carries a task's idempotency key, as
// the producer sets it (asynq.NewTaskWithHeaders, or [NewTask]).
const HeaderKey = "Idempotency-Key"

// KeyFunc returns the idempotency key of a task. An error is returned by
// the middleware as it is (wrap it with asynq.SkipRetry if retrying cannot
// help); an empty key is refused with asynq.SkipRetry.
type KeyFunc func(ctx context.Context, t *asynq.Task) (string, error)

// DefaultKey is the [KeyFunc] a [Middleware] uses unless told otherwise:
// the task's [HeaderKey] header when the producer set one, else the task
// ID (asynq.GetTaskID), which every delivery and retry of one enqueued task
// shares.
func DefaultKey(ctx context.Context, t *asynq.Task) (string, error) {
	return headerOrTaskID(ctx, t, HeaderKey), nil
}

func headerOrTaskID(ctx context.Context, t *asynq.Task, header string) string {
	if k := t.Headers()[header]; k != "" {
		return k
	}
	id, _ := asynq.GetTaskID(ctx)
	return id
}

// ScopeFunc returns the scope of a task's key: the key space it belongs
// to. Two tasks with the same key and different scopes never share a
// record.
type ScopeFunc func(ctx context.Context, t *asynq.Task) string

// DefaultScope is the [ScopeFunc] a [Middleware] uses unless told
// otherwise: "asynq:" followed by the task type, so that tasks of different
// types may share a key (one request's key carried into an email task and
// an invoice task) and each runs once.
func DefaultScope(_ context.Context, t *asynq.Task) string { return "asynq:" + t.Type() }

// Option configures a [Middleware].
type Option func(*config)

type config struct {
	key   KeyFunc
	scope ScopeFunc
	// invalid is the panic message of an option whose bad value the config
	// does not keep; Middleware panics with the first.
	invalid string
}

// WithKeyFunc sets how a task's key is found, replacing [DefaultKey]. f
// must not be nil (Middleware panics).
func WithKeyFunc(f KeyFunc) Option { return func(c *config) { c.key = f } }

// WithKeyHeader reads the key from the task header name instead of
// [HeaderKey], falling back to the task ID as [DefaultKey] does. An empty
// name is invalid (Middleware panics).
func WithKeyHeader(name string) Option {
	if name == "" {
		return func(c *config) {
			if c.invalid == "" {
				c.invalid = `idemasynq: WithKeyHeader(""): want a header name`
			}
		}
	}
	return func(c *config) {
		c.key = func(ctx context.Context, t *asynq.Task) (string, error) {
			return headerOrTaskID(ctx, t, name), nil
		}
	}
}

// WithScope sets the scope of every task's key, replacing [DefaultScope].
// f must not be nil (Middleware panics).
func WithScope(f ScopeFunc) Option { return func(c *config) { c.scope = f } }

// Middleware returns an asynq middleware that runs each task's handler at
// most once per scoped key, through engine.Do (see [core.Engine.Do]):
//
//   - the first delivery runs the handler under a claim; its context
//     carries the claim ([core.HeldClaim], [core.MarkApplied]). When the
//     handler returns nil, its result ([WriteResult]) is stored;
//   - a repeat (a redelivery after a crash, a retry of a task whose
//     handler succeeded but whose completion asynq lost, a second task with
//     the same key) returns nil without running the handler, writing the
//     stored result through the task's ResultWriter when there is one (a
//     result over the engine's [core.WithMaxResponseBytes] is not kept:
//     the repeat is acknowledged without it);
//   - while another delivery holds the key: a retryable error wrapping a
//     [*core.InFlightError] ([RetryDelay] retries it after the holder's
//     remaining lease; each refusal counts as one of the task's retries,
//     asynq.MaxRetry);
//   - a key reused with another payload or task type, an empty or invalid
//     key, a payload over the engine's body limit, or a repeat of a failure
//     the handler declared applied: an error wrapping asynq.SkipRetry, so
//     the task is archived, not retried;
//   - a handler error is returned as it is and the claim released, so
//     asynq's retry runs the handler again;
//   - a store that cannot be reached: a retryable error wrapping
//     [core.ErrStoreUnavailable], the handler not run.
//
// The key is the task's [HeaderKey] header, else its task ID ([DefaultKey],
// [WithKeyFunc]); the scope is the task type ([DefaultScope], [WithScope]);
// the fingerprint covers the task type and payload.
//
// Leases: the engine's claim is a lease (30 s by default, [core.WithLease]),
// renewed every third of it while the handler runs, as asynq renews its own
// 30 s worker lease by heartbeat. If the worker dies, asynq redelivers the
// task once its lease has been expired for 30 s more (the recoverer polls
// every minute); an engine lease of at most 30 s has lapsed by then, so the
// redelivery runs at once. A longer engine lease makes that redelivery get
// an in-flight error and be retried. Handlers must honour ctx: when a task's
// timeout or deadline passes, asynq retries the task without waiting for
// the handler to return, and until it returns the retries get in-flight.
func Middleware(engine *core.Engine, opts ...Option) asynq.MiddlewareFunc {
	if engine == nil {
		panic("idemasynq: Middleware needs an engine")
	}
	cfg := config{key: DefaultKey, scope: DefaultScope}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.invalid != "":
		panic(cfg.invalid)
	case cfg.key == nil:
		panic("idemasynq: WithKeyFunc(nil): want a function")
	case cfg.scope == nil:
		panic("idemasynq: WithScope(nil): want a function")
	}
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			key, err := cfg.key(ctx, t)
			if err != nil {
				return err
			}
			call := core.Call{Key: key, Scope: cfg.scope(ctx, t), Name: t.Type(), Input: t.Payload()}
			ran := false
			res, err := engine.Do(ctx, call, func(ctx context.Context) ([]byte, error) {
				ran = true
				rc := &result{}
				if err := next.ProcessTask(context.WithValue(ctx, resultKey{}, rc), t); err != nil {
					return nil, err
				}
				return rc.get(), nil
			})
			switch {
			case ran:
				// The handler's own outcome (stored, released, or a store
				// outage while storing it: then retried, and replayed).
				return err
			case err == nil:
				if len(res) > 0 && t.ResultWriter() != nil {
					if _, werr := t.ResultWriter().Write(res); werr != nil {
						return fmt.Errorf("idemasynq: task %q replayed, its stored result not written: %w", t.Type(), werr)
					}
				}
				return nil
			case errors.Is(err, core.ErrResultOmitted):
				// The work ran once; its result was too large to keep.
				return nil
			case errors.Is(err, core.ErrInFlight), errors.Is(err, core.ErrStoreUnavailable):
				return fmt.Errorf("idemasynq: task %q: %w", t.Type(), err)
			case errors.Is(err, core.ErrFingerprintMismatch), errors.Is(err, core.ErrMissingKey),
				errors.Is(err, core.ErrInvalidKey), errors.Is(err, core.ErrBodyTooLarge),
				errors.Is(err, core.ErrFailureReplayed):
				return fmt.Errorf("idemasynq: task %q: %w (%w)", t.Type(), err, asynq.SkipRetry)
			}
			return fmt.Errorf("idemasynq: task %q: %w", t.Type(), err)
		})
	}
}

// RetryDelay returns an asynq.RetryDelayFunc (for asynq.Config) that
// retries a task refused as in flight once the holder's lease may have
// lapsed (the [*core.InFlightError]'s RetryAfter, at least one second), and
// asks next (asynq.DefaultRetryDelayFunc when nil) for every other error.
func RetryDelay(next asynq.RetryDelayFunc) asynq.RetryDelayFunc {
	if next == nil {
		next = asynq.DefaultRetryDelayFunc
	}
	return func(n int, e error, t *asynq.Task) time.Duration {
		var inFlight *core.InFlightError
		if errors.As(e, &inFlight) {
			return max(inFlight.RetryAfter, time.Second)
		}
		return next(n, e, t)
	}
}

// WriteResult writes data as the result of task t, through
// t.ResultWriter(), as a handler would; inside a [Middleware] it also keeps
// data as the result stored with the task's outcome, written again through
// the ResultWriter of every repeat that is replayed. As with asynq's
// ResultWriter, each write replaces the previous result. Results written
// directly through t.ResultWriter() are not stored.
func WriteResult(ctx context.Context, t *asynq.Task, data []byte) (int, error) {
	if rc, ok := ctx.Value(resultKey{}).(*result); ok {
		rc.set(data)
	}
	w := t.ResultWriter()
	if w == nil {
		return 0, errors.New("idemasynq: the task has no result writer (a task not passed to a handler)")
	}
	return w.Write(data)
}

type resultKey struct{}

// result is the handler's result as written through WriteResult.
type result struct {
	mu   sync.Mutex
	data []byte
}

func (r *result) set(p []byte) {
	r.mu.Lock()
	r.data = append(r.data[:0:0], p...)
	r.mu.Unlock()
}

func (r *result) get() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.data
}
