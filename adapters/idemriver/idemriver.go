package idemriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/idemkit/idemkit/core"
)

// KeyFunc derives a job's idempotency key from its row (typically from
// job.EncodedArgs). An empty key means "none": the job ID is used. An error
// cancels the job without working it.
type KeyFunc func(job *rivertype.JobRow) (string, error)

// ScopeFunc names the key space of a job's idempotency key. By default it
// is the job's kind (see [WithScope]).
type ScopeFunc func(job *rivertype.JobRow) string

// Option configures [Middleware].
type Option func(*config)

type config struct {
	keyFunc KeyFunc
	byKind  map[string]KeyFunc
	// primary maps the kind aliases of args given to WithArgsKey
	// (river.JobArgsWithKindAliases) to their primary kind.
	primary map[string]string
	scope   ScopeFunc
	// invalid is the panic message of an option whose bad value the config
	// does not keep; Middleware panics with the first.
	invalid string
}

// WithKeyFunc sets the key of jobs of every kind that has no [WithArgsKey]:
// fn's key when it returns one, the job ID when it returns "". A nil fn is
// the default: the job ID ([JobIDKey]).
func WithKeyFunc(fn KeyFunc) Option { return func(c *config) { c.keyFunc = fn } }

// WithArgsKey takes the key of jobs of T's kind from their decoded args:
// key(args), or the job ID when it returns "". Use it for a key the producer
// chose, such as the Idempotency-Key of the HTTP request that inserted the
// job, so that the same logical job inserted twice (two job IDs) runs once.
// Args that do not decode as T cancel the job. It takes precedence over
// [WithKeyFunc] for that kind; a later WithArgsKey for the same kind
// replaces an earlier one.
//
// When T has kind aliases (a kind being renamed: River's
// JobArgsWithKindAliases), jobs inserted under an alias are keyed the same
// way, and named and scoped by T's kind, so a logical job inserted under
// both names still runs once. A nil key is invalid (Middleware panics).
func WithArgsKey[T rivertype.JobArgs](key func(args T) string) Option {
	var zero T
	kind := zero.Kind()
	if key == nil {
		return func(c *config) {
			if c.invalid == "" {
				c.invalid = fmt.Sprintf("idemriver: WithArgsKey[%T](nil): want a function", zero)
			}
		}
	}
	var aliases []string
	if a, ok := any(zero).(interface{ KindAliases() []string }); ok {
		aliases = a.KindAliases()
	}
	return func(c *config) {
		if c.byKind == nil {
			c.byKind = make(map[string]KeyFunc)
			c.primary = make(map[string]string)
		}
		fn := func(job *rivertype.JobRow) (string, error) {
			var args T
			if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
				return "", fmt.Errorf("decode args as %T: %w", args, err)
			}
			return key(args), nil
		}
		c.byKind[kind] = fn
		for _, alias := range aliases {
			c.byKind[alias] = fn
			c.primary[alias] = kind
		}
	}
}

// WithScope sets how keys are scoped. By default they are scoped by the
// job's kind (for an alias [WithArgsKey] knows, its primary kind). Scope by
// tenant (from the args, say) when jobs of one kind carry keys chosen by
// different clients; include the kind when several kinds may carry the
// same key. A nil fn is the default.
func WithScope(fn ScopeFunc) Option { return func(c *config) { c.scope = fn } }

// JobIDKey is the key of a job without a key of its own: "job:" and its ID,
// the same on every attempt, rescue and snooze of that job. Job IDs are
// unique within one River schema: when several schemas or databases share
// an idempotency store, scope their keys apart ([WithScope]).
func JobIDKey(job *rivertype.JobRow) string { return "job:" + strconv.FormatInt(job.ID, 10) }

// minSnooze is the shortest time an in-flight duplicate is snoozed for, so
// that a holder whose lease is about to lapse does not make its duplicate
// spin.
const minSnooze = time.Second

// middleware is the [rivertype.WorkerMiddleware] that [Middleware] returns.
type middleware struct {
	engine *core.Engine
	cfg    config
}

// Middleware returns a River worker middleware that runs each job through
// engine.Do, at most once per scoped key (see the package documentation for
// keys, scopes and what each outcome does to the job). Install it in
// river.Config.Middleware, or return it from a worker's Middleware method
// to guard that worker only. It panics if engine is nil or an option's
// value is invalid, naming the option.
func Middleware(engine *core.Engine, opts ...Option) rivertype.WorkerMiddleware {
	if engine == nil {
		panic("idemriver: Middleware called with a nil *core.Engine")
	}
	m := &middleware{engine: engine}
	for _, o := range opts {
		o(&m.cfg)
	}
	if m.cfg.invalid != "" {
		panic(m.cfg.invalid)
	}
	return m
}

func (m *middleware) IsMiddleware() bool { return true }

// Work runs the job under the engine and turns the engine's answer into
// what River does with the job.
func (m *middleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	key, err := m.key(job)
	if err != nil {
		return rivertype.JobCancel(fmt.Errorf("idemriver: job %d (%s): idempotency key: %w", job.ID, job.Kind, err))
	}
	kind := job.Kind
	if p, ok := m.cfg.primary[kind]; ok {
		kind = p
	}
	scope := kind
	if m.cfg.scope != nil {
		scope = m.cfg.scope(job)
	}
	call := core.Call{Key: key, Scope: scope, Name: kind, Input: job.EncodedArgs}
	var ran bool
	var workErr error
	_, err = m.engine.Do(ctx, call, func(ctx context.Context) ([]byte, error) {
		ran = true
		workErr = doInner(ctx)
		return nil, workErr
	})
	if ran {
		// The worker ran: its answer is the job's. A success completes the
		// job even when storing its record is still under way (the engine
		// goes on for as long as the claim's lease can be held): retrying
		// could only run the work again. An error, the claim released,
		// is River's to retry (or a snooze, or a cancel, as returned).
		return workErr
	}
	return outcome(job, err)
}

// key picks the job's key: its kind's [WithArgsKey], else [WithKeyFunc],
// else (or when either gives "") [JobIDKey].
func (m *middleware) key(job *rivertype.JobRow) (string, error) {
	fn := m.cfg.byKind[job.Kind]
	if fn == nil {
		fn = m.cfg.keyFunc
	}
	if fn != nil {
		key, err := fn(job)
		if err != nil || key != "" {
			return key, err
		}
	}
	return JobIDKey(job), nil
}

// outcome maps the engine's answer, when the worker did not run, to River:
// nil completes the job, a snooze or an error retries it later, a cancel
// ends it.
func outcome(job *rivertype.JobRow, err error) error {
	var inFlight *core.InFlightError
	switch {
	case err == nil, errors.Is(err, core.ErrResultOmitted):
		// Replayed: the work was done by an earlier delivery, the job
		// completes without running it again. (Work's result is empty, so
		// it is never omitted for size; were it, the work still ran.)
		return nil
	case errors.As(err, &inFlight):
		// Another worker holds the key: look again once its lease would
		// have lapsed. A snooze is not an attempt, so waiting on a long
		// holder never exhausts the job's attempts.
		return &rivertype.JobSnoozeError{Duration: max(inFlight.RetryAfter, minSnooze)}
	case errors.Is(err, core.ErrFingerprintMismatch),
		errors.Is(err, core.ErrFailureReplayed),
		errors.Is(err, core.ErrInvalidKey),
		errors.Is(err, core.ErrMissingKey),
		errors.Is(err, core.ErrBodyTooLarge):
		// No retry can succeed: the key belongs to other args, its stored
		// outcome is a failure, or the job cannot be guarded at all.
		return rivertype.JobCancel(fmt.Errorf("idemriver: job %d (%s): %w", job.ID, job.Kind, err))
	}
	// The store cannot be reached (core.ErrStoreUnavailable), or another
	// failure before the worker ran: River retries the job later.
	return fmt.Errorf("idemriver: job %d (%s): %w", job.ID, job.Kind, err)
}
