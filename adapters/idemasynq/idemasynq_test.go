package idemasynq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/idemkit/idemkit/adapters/idemasynq"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// These tests call the middleware's handler directly, without Redis; the
// test module (adapters/idemasynq/test) runs it in real asynq servers.

func keyed(key, payload string) *asynq.Task {
	return asynq.NewTaskWithHeaders("email:send", []byte(payload), map[string]string{idemasynq.HeaderKey: key})
}

func TestMiddlewareOutcomes(t *testing.T) {
	ctx := context.Background()
	engine := core.New(memstore.New())
	runs := 0
	var fail error
	h := idemasynq.Middleware(engine)(asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		runs++
		if _, _, ok := core.HeldClaim(ctx); !ok {
			t.Error("the handler's context carries no claim")
		}
		return fail
	}))

	fail = errors.New("smtp down")
	if err := h.ProcessTask(ctx, keyed("k1", "a")); !errors.Is(err, fail) || errors.Is(err, asynq.SkipRetry) {
		t.Errorf("failing handler: got %v; want its own error, retryable", err)
	}
	fail = nil
	if err := h.ProcessTask(ctx, keyed("k1", "a")); err != nil {
		t.Errorf("retry after a failure: got %v; want nil", err)
	}
	if err := h.ProcessTask(ctx, keyed("k1", "a")); err != nil {
		t.Errorf("repeat: got %v; want nil (replayed)", err)
	}
	if runs != 2 {
		t.Errorf("handler runs = %d; want 2: a failure releases the key, a success is replayed", runs)
	}
	if err := h.ProcessTask(ctx, keyed("k1", "b")); !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, core.ErrFingerprintMismatch) {
		t.Errorf("other payload: got %v; want SkipRetry wrapping ErrFingerprintMismatch", err)
	}
	other := asynq.NewTaskWithHeaders("invoice:send", []byte("a"), map[string]string{idemasynq.HeaderKey: "k1"})
	if err := h.ProcessTask(ctx, other); err != nil {
		t.Errorf("same key, other task type: got %v; want nil (its own scope)", err)
	}
	if runs != 3 {
		t.Errorf("handler runs = %d; want 3", runs)
	}
	// No header and no task ID in the context: no key.
	if err := h.ProcessTask(ctx, asynq.NewTask("email:send", nil)); !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, core.ErrMissingKey) {
		t.Errorf("no key: got %v; want SkipRetry wrapping ErrMissingKey", err)
	}
}

func TestMiddlewareInFlight(t *testing.T) {
	engine := core.New(memstore.New(), core.WithLease(5*time.Second))
	h := idemasynq.Middleware(engine)
	var inner error
	outer := h(asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		// A copy delivered while this one runs.
		inner = h(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
			t.Error("the copy ran while the first held the key")
			return nil
		})).ProcessTask(context.Background(), keyed("k", "p"))
		return nil
	}))
	if err := outer.ProcessTask(context.Background(), keyed("k", "p")); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	var ife *core.InFlightError
	if !errors.As(inner, &ife) || errors.Is(inner, asynq.SkipRetry) {
		t.Fatalf("copy in flight: got %v; want a retryable *core.InFlightError", inner)
	}
	if d := idemasynq.RetryDelay(nil)(3, inner, nil); d < time.Second || d > 5*time.Second {
		t.Errorf("RetryDelay(in flight, %v) = %v; want the remaining lease, 1 s to 5 s", ife.RetryAfter, d)
	}
	fallback := func(int, error, *asynq.Task) time.Duration { return 42 * time.Second }
	if d := idemasynq.RetryDelay(fallback)(3, errors.New("boom"), nil); d != 42*time.Second {
		t.Errorf("RetryDelay(other error) = %v; want the fallback's 42s", d)
	}
}

func TestMiddlewareAppliedFailure(t *testing.T) {
	engine := core.New(memstore.New())
	runs := 0
	h := idemasynq.Middleware(engine)(asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		runs++
		core.MarkApplied(ctx)
		return errors.New("sent, but the receipt could not be saved")
	}))
	if err := h.ProcessTask(context.Background(), keyed("k", "p")); err == nil {
		t.Fatal("first delivery: got nil; want the handler's error")
	}
	err := h.ProcessTask(context.Background(), keyed("k", "p"))
	if !errors.Is(err, core.ErrFailureReplayed) || !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("repeat of an applied failure: got %v; want SkipRetry wrapping ErrFailureReplayed", err)
	}
	if runs != 1 {
		t.Errorf("handler runs = %d; want 1: the work was declared applied", runs)
	}
}

func TestMiddlewareResultOmitted(t *testing.T) {
	engine := core.New(memstore.New(), core.WithMaxResponseBytes(8))
	runs := 0
	h := idemasynq.Middleware(engine)(asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		runs++
		idemasynq.WriteResult(ctx, tk, []byte("a result over eight bytes")) // no ResultWriter here: kept, not written
		return nil
	}))
	for i := range 2 {
		if err := h.ProcessTask(context.Background(), keyed("k", "p")); err != nil {
			t.Errorf("delivery %d: got %v; want nil (a repeat of work whose result was too large to keep is acknowledged)", i+1, err)
		}
	}
	if runs != 1 {
		t.Errorf("handler runs = %d; want 1", runs)
	}
}

// downStore answers every call with an error, as a store that cannot be
// reached.
type downStore struct{}

var errDown = errors.New("connection refused")

func (downStore) Claim(context.Context, core.ClaimRequest) (core.Claim, error) {
	return core.Claim{}, errDown
}
func (downStore) Complete(context.Context, string, core.Token, *core.Response, time.Duration) error {
	return errDown
}
func (downStore) Release(context.Context, string, core.Token) error              { return errDown }
func (downStore) Renew(context.Context, string, core.Token, time.Duration) error { return errDown }

func TestMiddlewareStoreUnavailable(t *testing.T) {
	engine := core.New(downStore{})
	h := idemasynq.Middleware(engine)(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		t.Error("the handler ran with the store down (fail closed)")
		return nil
	}))
	err := h.ProcessTask(context.Background(), keyed("k", "p"))
	if !errors.Is(err, core.ErrStoreUnavailable) || errors.Is(err, asynq.SkipRetry) {
		t.Errorf("store down: got %v; want a retryable error wrapping ErrStoreUnavailable", err)
	}
}

func TestKeyOptions(t *testing.T) {
	engine := core.New(memstore.New())
	var seen []string
	record := asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		seen = append(seen, string(tk.Payload()))
		return nil
	})
	byHeader := idemasynq.Middleware(engine, idemasynq.WithKeyHeader("X-Job-Key"))(record)
	tk := func(p string) *asynq.Task {
		return asynq.NewTaskWithHeaders("t", []byte(p), map[string]string{"X-Job-Key": "same", idemasynq.HeaderKey: p})
	}
	byHeader.ProcessTask(context.Background(), tk("1"))
	byHeader.ProcessTask(context.Background(), tk("1"))
	byFunc := idemasynq.Middleware(engine, idemasynq.WithScope(func(context.Context, *asynq.Task) string { return "tenant-a" }),
		idemasynq.WithKeyFunc(func(_ context.Context, t *asynq.Task) (string, error) { return "order-" + string(t.Payload()), nil }))(record)
	byFunc.ProcessTask(context.Background(), tk("2"))
	byFunc.ProcessTask(context.Background(), tk("2"))
	if len(seen) != 2 || seen[0] != "1" || seen[1] != "2" {
		t.Errorf("handler saw %q; want [1 2]: one run per key under each option", seen)
	}
	boom := errors.New("lookup failed")
	failing := idemasynq.Middleware(engine, idemasynq.WithKeyFunc(func(context.Context, *asynq.Task) (string, error) { return "", boom }))(record)
	if err := failing.ProcessTask(context.Background(), tk("3")); !errors.Is(err, boom) {
		t.Errorf("key function error: got %v; want it returned as is", err)
	}
}

func TestTaskKey(t *testing.T) {
	engine := core.New(memstore.New())
	if _, err := idemasynq.NewTask(context.Background(), "email:send", nil); !errors.Is(err, idemasynq.ErrNoClaim) {
		t.Errorf("NewTask outside a guarded handler: got %v; want ErrNoClaim", err)
	}
	keys := map[string]bool{}
	derive := func(callKey string) {
		_, err := engine.Do(context.Background(), core.Call{Key: callKey, Scope: "client-a"}, func(ctx context.Context) ([]byte, error) {
			email, err := idemasynq.NewTask(ctx, "email:send", []byte("p"))
			if err != nil {
				return nil, err
			}
			invoice, _ := idemasynq.TaskKey(ctx, "invoice:send")
			second, _ := idemasynq.TaskKey(ctx, "email:send", "2")
			k := email.Headers()[idemasynq.HeaderKey]
			if len(k) != 64 {
				t.Errorf("task key %q: want 64 hexadecimal characters", k)
			}
			keys[k], keys[invoice], keys[second] = true, true, true
			return nil, core.ErrStoreUnavailable // released: the same key runs again
		})
		if !errors.Is(err, core.ErrStoreUnavailable) {
			t.Fatalf("Do: %v", err)
		}
	}
	derive("req-1")
	derive("req-1") // a retry of the request: the same three keys
	if len(keys) != 3 {
		t.Errorf("%d distinct task keys; want 3 (a retry derives the same keys; types and parts differ)", len(keys))
	}
	derive("req-2")
	if len(keys) != 6 {
		t.Errorf("%d distinct task keys after another request; want 6", len(keys))
	}
}
