package idemriver_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/idemkit/idemkit/adapters/idemriver"
	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

var nextID atomic.Int64

// job returns a fresh job row of kind "receipt" with args.
func job(args string) *rivertype.JobRow {
	return &rivertype.JobRow{ID: nextID.Add(1), Kind: "receipt", Attempt: 1, EncodedArgs: []byte(args)}
}

// counter is a worker that counts its runs and returns err.
type counter struct {
	runs atomic.Int64
	err  error
}

func (c *counter) work(context.Context) error {
	c.runs.Add(1)
	return c.err
}

func TestMiddleware(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name     string
		opts     []idemriver.Option
		first    *rivertype.JobRow // worked first
		second   func(first *rivertype.JobRow) *rivertype.JobRow
		firstErr error // the worker's error on the first delivery
		wantRuns int64
		check    func(t *testing.T, err error) // the second delivery's error
	}{
		{
			name:     "SameJobRedelivered",
			first:    job(`{"order":1}`),
			second:   func(j *rivertype.JobRow) *rivertype.JobRow { c := *j; c.Attempt++; return &c },
			wantRuns: 1,
			check:    wantNil,
		},
		{
			name:     "OtherJobNoKeyRuns",
			first:    job(`{"order":1}`),
			second:   func(*rivertype.JobRow) *rivertype.JobRow { return job(`{"order":1}`) },
			wantRuns: 2,
			check:    wantNil,
		},
		{
			name:     "ArgsKeyOtherJobReplayed",
			opts:     []idemriver.Option{idemriver.WithArgsKey(func(a ReceiptArgs) string { return a.OrderKey })},
			first:    job(`{"order":1,"order_key":"k-1"}`),
			second:   func(*rivertype.JobRow) *rivertype.JobRow { return job(`{"order":1,"order_key":"k-1"}`) },
			wantRuns: 1,
			check:    wantNil,
		},
		{
			name:     "KeyFuncOtherJobReplayed",
			opts:     []idemriver.Option{idemriver.WithKeyFunc(func(*rivertype.JobRow) (string, error) { return "fixed", nil })},
			first:    job(`{"order":1}`),
			second:   func(*rivertype.JobRow) *rivertype.JobRow { return job(`{"order":1}`) },
			wantRuns: 1,
			check:    wantNil,
		},
		{
			name:     "ArgsKeyEmptyFallsBackToJobID",
			opts:     []idemriver.Option{idemriver.WithArgsKey(func(a ReceiptArgs) string { return a.OrderKey })},
			first:    job(`{"order":1}`),
			second:   func(*rivertype.JobRow) *rivertype.JobRow { return job(`{"order":1}`) },
			wantRuns: 2,
			check:    wantNil,
		},
		{
			name:     "MismatchCancelled",
			opts:     []idemriver.Option{idemriver.WithArgsKey(func(a ReceiptArgs) string { return a.OrderKey })},
			first:    job(`{"order":1,"order_key":"k-1"}`),
			second:   func(*rivertype.JobRow) *rivertype.JobRow { return job(`{"order":2,"order_key":"k-1"}`) },
			wantRuns: 1,
			check:    wantCancel(core.ErrFingerprintMismatch),
		},
		{
			name:     "ErrorReleasedAndRetried",
			first:    job(`{"order":1}`),
			firstErr: errBoom,
			second:   func(j *rivertype.JobRow) *rivertype.JobRow { c := *j; c.Attempt++; return &c },
			wantRuns: 2,
			check:    wantNil,
		},
		{
			name:  "BadArgsCancelled",
			opts:  []idemriver.Option{idemriver.WithArgsKey(func(a ReceiptArgs) string { return a.OrderKey })},
			first: job(`{"order":1}`),
			second: func(*rivertype.JobRow) *rivertype.JobRow {
				return job(`{"order":"not a number"}`)
			},
			wantRuns: 1,
			check:    wantCancel(nil),
		},
		{
			name: "KeyFuncErrorCancelled",
			opts: []idemriver.Option{idemriver.WithKeyFunc(func(j *rivertype.JobRow) (string, error) {
				if strings.Contains(string(j.EncodedArgs), "bad") {
					return "", errBoom
				}
				return "", nil
			})},
			first:    job(`{"order":1}`),
			second:   func(*rivertype.JobRow) *rivertype.JobRow { return job(`{"order":1,"bad":true}`) },
			wantRuns: 1,
			check:    wantCancel(errBoom),
		},
		{
			name: "ScopeSeparatesKeys",
			opts: []idemriver.Option{
				idemriver.WithArgsKey(func(a ReceiptArgs) string { return a.OrderKey }),
				idemriver.WithScope(func(j *rivertype.JobRow) string { return j.Queue }),
			},
			first: job(`{"order":1,"order_key":"k-1"}`),
			second: func(*rivertype.JobRow) *rivertype.JobRow {
				j := job(`{"order":1,"order_key":"k-1"}`)
				j.Queue = "tenant-b"
				return j
			},
			wantRuns: 2,
			check:    wantNil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mw := idemriver.Middleware(core.New(memstore.New()), tt.opts...)
			w := &counter{err: tt.firstErr}
			err := mw.Work(context.Background(), tt.first, w.work)
			if !errors.Is(err, tt.firstErr) {
				t.Fatalf("first Work = %v; want %v", err, tt.firstErr)
			}
			w.err = nil
			err = mw.Work(context.Background(), tt.second(tt.first), w.work)
			tt.check(t, err)
			if got := w.runs.Load(); got != tt.wantRuns {
				t.Errorf("worker ran %d times; want %d", got, tt.wantRuns)
			}
		})
	}
}

func wantNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("second Work = %v; want nil: the job completes", err)
	}
}

// wantCancel wants a River cancel wrapping cause (any cause when nil).
func wantCancel(cause error) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var cancel *rivertype.JobCancelError
		if !errors.As(err, &cancel) {
			t.Errorf("second Work = %v; want a JobCancelError: no retry can succeed", err)
		}
		if cause != nil && !errors.Is(err, cause) {
			t.Errorf("second Work = %v; want it to wrap %v", err, cause)
		}
	}
}

// renamedArgs are receipt args whose kind is being renamed from
// "receipt_v0".
type renamedArgs struct {
	OrderKey string `json:"order_key"`
}

func (renamedArgs) Kind() string          { return "receipt" }
func (renamedArgs) KindAliases() []string { return []string{"receipt_v0"} }

// A job inserted under a kind alias is keyed, named and scoped as its
// primary kind: the same logical job under both names runs once.
func TestArgsKeyKindAlias(t *testing.T) {
	mw := idemriver.Middleware(core.New(memstore.New()),
		idemriver.WithArgsKey(func(a renamedArgs) string { return a.OrderKey }))
	w := &counter{}
	for _, kind := range []string{"receipt_v0", "receipt"} {
		j := job(`{"order_key":"k-1"}`)
		j.Kind = kind
		if err := mw.Work(context.Background(), j, w.work); err != nil {
			t.Errorf("Work(kind %s) = %v; want nil", kind, err)
		}
	}
	if got := w.runs.Load(); got != 1 {
		t.Errorf("worker ran %d times; want 1 for one key under a kind and its alias", got)
	}
}

// A panicking worker releases its claim (River recovers the panic and
// retries the job): the retry runs.
func TestPanicReleases(t *testing.T) {
	mw := idemriver.Middleware(core.New(memstore.New()))
	j := job(`{"order":1}`)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recover() = %v; want the worker's panic re-raised", r)
			}
		}()
		_ = mw.Work(context.Background(), j, func(context.Context) error { panic("boom") })
	}()
	w := &counter{}
	if err := mw.Work(context.Background(), j, w.work); err != nil || w.runs.Load() != 1 {
		t.Errorf("retry: Work = %v, %d runs; want nil, 1 run: a panic releases the claim", err, w.runs.Load())
	}
}

// The worker's context carries the claim: its fencing token, for writes
// conditional on still holding it, and MarkApplied.
func TestWorkerSeesHeldClaim(t *testing.T) {
	mw := idemriver.Middleware(core.New(memstore.New()))
	var ok bool
	var token core.Token
	err := mw.Work(context.Background(), job(`{"order":1}`), func(ctx context.Context) error {
		_, token, ok = core.HeldClaim(ctx)
		return nil
	})
	if err != nil || !ok || token == "" {
		t.Errorf("Work = %v; HeldClaim in the worker = %q, %v; want a token: the worker runs under the claim", err, token, ok)
	}
}

// A key the engine refuses cancels the job, the worker not run.
func TestInvalidKeyCancelled(t *testing.T) {
	mw := idemriver.Middleware(core.New(memstore.New()),
		idemriver.WithKeyFunc(func(*rivertype.JobRow) (string, error) { return "caf\u00e9", nil }))
	w := &counter{}
	wantCancel(core.ErrInvalidKey)(t, mw.Work(context.Background(), job(`{"order":1}`), w.work))
	if w.runs.Load() != 0 {
		t.Errorf("worker ran %d times; want 0", w.runs.Load())
	}
}

// A worker that declares its side effect applied and then fails: the
// failure is stored, and River's retry is cancelled without running.
func TestMarkAppliedFailureCancelsRetry(t *testing.T) {
	mw := idemriver.Middleware(core.New(memstore.New()))
	j := job(`{"order":1}`)
	errLate := errors.New("charged, then the receipt failed")
	var runs int
	work := func(ctx context.Context) error {
		runs++
		core.MarkApplied(ctx)
		return errLate
	}
	if err := mw.Work(context.Background(), j, work); !errors.Is(err, errLate) {
		t.Fatalf("first Work = %v; want the worker's error", err)
	}
	err := mw.Work(context.Background(), j, work)
	wantCancel(core.ErrFailureReplayed)(t, err)
	if runs != 1 {
		t.Errorf("worker ran %d times; want 1", runs)
	}
}

// While one delivery runs, another of the same job is snoozed for the
// holder's lease, not run and not counted as an attempt.
func TestInFlightSnoozed(t *testing.T) {
	mw := idemriver.Middleware(core.New(memstore.New(), core.WithLease(5*time.Second)))
	j := job(`{"order":1}`)
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- mw.Work(context.Background(), j, func(context.Context) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	var ran bool
	err := mw.Work(context.Background(), j, func(context.Context) error { ran = true; return nil })
	close(release)
	if err := <-done; err != nil {
		t.Errorf("holder's Work = %v; want nil", err)
	}
	var snooze *rivertype.JobSnoozeError
	if !errors.As(err, &snooze) {
		t.Fatalf("duplicate's Work = %v; want a JobSnoozeError", err)
	}
	if snooze.Duration < time.Second || snooze.Duration > 5*time.Second {
		t.Errorf("snooze %v; want the holder's remaining lease, 1s to 5s", snooze.Duration)
	}
	if ran {
		t.Error("the duplicate ran while the holder held the key")
	}
}

// downStore fails every call, as an unreachable store does.
type downStore struct{}

func (downStore) Claim(context.Context, core.ClaimRequest) (core.Claim, error) {
	return core.Claim{}, core.ErrStoreUnavailable
}
func (downStore) Complete(context.Context, string, core.Token, *core.Response, time.Duration) error {
	return core.ErrStoreUnavailable
}
func (downStore) Release(context.Context, string, core.Token) error { return core.ErrStoreUnavailable }
func (downStore) Renew(context.Context, string, core.Token, time.Duration) error {
	return core.ErrStoreUnavailable
}

func TestStoreUnavailableRetried(t *testing.T) {
	mw := idemriver.Middleware(core.New(downStore{}))
	var ran bool
	err := mw.Work(context.Background(), job(`{"order":1}`), func(context.Context) error { ran = true; return nil })
	if !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("Work = %v; want an error wrapping ErrStoreUnavailable", err)
	}
	var cancel *rivertype.JobCancelError
	var snooze *rivertype.JobSnoozeError
	if errors.As(err, &cancel) || errors.As(err, &snooze) {
		t.Errorf("Work = %v; want a plain error, which River retries with backoff", err)
	}
	if ran {
		t.Error("the worker ran unguarded; want it not run (fail closed)")
	}
}

func TestMiddlewareNilEnginePanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.HasPrefix(r.(string), "idemriver: ") {
			t.Errorf("recover() = %v; want a panic with the package prefix", r)
		}
	}()
	idemriver.Middleware(nil)
}
