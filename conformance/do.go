package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
)

// TestDo runs [core.Engine.Do] over the stores newStore returns, one per
// subtest: the state machine of docs/contract.md (C-STATE-1 to C-STATE-5) for work that is not
// HTTP (a job, a message, an RPC). Subtests are named Do/<Case> for -run.
func TestDo(t *testing.T, newStore NewStoreFunc) {
	t.Helper()
	if newStore == nil {
		t.Fatal("conformance.TestDo: nil NewStoreFunc")
	}
	for _, c := range doCases {
		t.Run("Do/"+c.name, func(t *testing.T) {
			t.Parallel()
			c.run(&doT{T: t, st: newStore(t)})
		})
	}
}

type doT struct {
	*testing.T
	st core.Store
}

func (d *doT) engine(opts ...core.Option) *core.Engine { return core.New(d.st, opts...) }

func (d *doT) call(input string) core.Call {
	return core.Call{Key: randHex(d.T, 16), Scope: "tenant-" + randHex(d.T, 4), Name: "conformance:do", Input: []byte(input)}
}

// counter is work that counts its runs and answers with the count.
type counter struct{ runs atomic.Int64 }

func (c *counter) work(ctx context.Context) ([]byte, error) {
	return []byte(fmt.Sprintf("run %d", c.runs.Add(1))), nil
}

const ruleDoOnce = "docs/contract.md C-STATE-3: the work runs once per scoped key; a repeat gets the stored result"

var doCases = []struct {
	name string
	run  func(d *doT)
}{
	{"FirstRunsThenReplays", func(d *doT) {
		e, call, c := d.engine(), d.call("payload"), &counter{}
		first, err := e.Do(d.Context(), call, c.work)
		if err != nil || string(first) != "run 1" {
			d.Fatalf("first Do = %q, %v; want \"run 1\", nil", first, err)
		}
		again, err := e.Do(d.Context(), call, c.work)
		if err != nil || string(again) != "run 1" || c.runs.Load() != 1 {
			d.Errorf("repeat Do = %q, %v after %d runs; want the stored \"run 1\" and 1 run (%s)", again, err, c.runs.Load(), ruleDoOnce)
		}
	}},
	{"ConcurrentOnce", func(d *doT) {
		e, call := d.engine(), d.call("race")
		c := &counter{}
		slow := func(ctx context.Context) ([]byte, error) {
			time.Sleep(100 * time.Millisecond)
			return c.work(ctx)
		}
		const n = 32
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := e.Do(context.Background(), call, slow)
				if err == nil && string(out) != "run 1" {
					err = fmt.Errorf("result %q; want \"run 1\"", out)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			var ife *core.InFlightError
			if err != nil && !errors.As(err, &ife) {
				d.Errorf("concurrent Do: %v; want the result or an *core.InFlightError", err)
			}
		}
		if got := c.runs.Load(); got != 1 {
			d.Errorf("%d concurrent Do calls ran the work %d times; want 1 (%s)", n, got, ruleDoOnce)
		}
	}},
	{"InFlightError", func(d *doT) {
		e, call := d.engine(), d.call("held")
		started, finish := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := e.Do(context.Background(), call, func(context.Context) ([]byte, error) {
				close(started)
				<-finish
				return []byte("ok"), nil
			})
			done <- err
		}()
		<-started
		_, err := e.Do(d.Context(), call, (&counter{}).work)
		close(finish)
		var ife *core.InFlightError
		if !errors.As(err, &ife) || !errors.Is(err, core.ErrInFlight) || ife.RetryAfter <= 0 {
			d.Errorf("Do while another call holds the key = %v; want an *core.InFlightError wrapping core.ErrInFlight with a positive RetryAfter", err)
		}
		if err := <-done; err != nil {
			d.Errorf("the holding call: %v", err)
		}
	}},
	{"WaitForInFlight", func(d *doT) {
		e, call := d.engine(core.WithWaitForInFlight(5*time.Second)), d.call("wait")
		started := make(chan struct{})
		go e.Do(context.Background(), call, func(context.Context) ([]byte, error) {
			close(started)
			time.Sleep(200 * time.Millisecond)
			return []byte("waited for"), nil
		})
		<-started
		c := &counter{}
		out, err := e.Do(d.Context(), call, c.work)
		if err != nil || string(out) != "waited for" || c.runs.Load() != 0 {
			d.Errorf("Do waiting for the holder = %q, %v, %d runs; want the holder's result and no run", out, err, c.runs.Load())
		}
	}},
	{"Mismatch", func(d *doT) {
		e, call, c := d.engine(), d.call("first input"), &counter{}
		e.Do(d.Context(), call, c.work)
		call.Input = []byte("other input")
		if _, err := e.Do(d.Context(), call, c.work); !errors.Is(err, core.ErrFingerprintMismatch) || c.runs.Load() != 1 {
			d.Errorf("Do with other input = %v after %d runs; want core.ErrFingerprintMismatch and no second run", err, c.runs.Load())
		}
	}},
	{"ErrorReleases", func(d *doT) {
		e, call := d.engine(), d.call("fails once")
		boom := errors.New("provider down")
		if _, err := e.Do(d.Context(), call, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
			d.Errorf("Do whose work fails = %v; want the work's own error", err)
		}
		c := &counter{}
		if out, err := e.Do(d.Context(), call, c.work); err != nil || c.runs.Load() != 1 {
			d.Errorf("repeat after a failure = %q, %v, %d runs; want the work run again (an error releases the claim)", out, err, c.runs.Load())
		}
	}},
	{"AppliedFailureReplayed", func(d *doT) {
		e, call := d.engine(), d.call("charged, then failed")
		_, err := e.Do(d.Context(), call, func(ctx context.Context) ([]byte, error) {
			core.MarkApplied(ctx)
			return nil, errors.New("receipt not sent")
		})
		if err == nil {
			d.Fatalf("Do whose applied work fails = nil error; want the work's error")
		}
		c := &counter{}
		_, err = e.Do(d.Context(), call, c.work)
		if !errors.Is(err, core.ErrFailureReplayed) || c.runs.Load() != 0 {
			d.Errorf("repeat after an applied failure = %v, %d runs; want core.ErrFailureReplayed and no run (docs/contract.md C-DONE-3: a declared outcome overrides the policy)", err, c.runs.Load())
		}
	}},
	{"NotAppliedReleases", func(d *doT) {
		e, call := d.engine(), d.call("nothing happened")
		e.Do(d.Context(), call, func(ctx context.Context) ([]byte, error) {
			core.MarkNotApplied(ctx)
			return []byte("declined"), nil
		})
		c := &counter{}
		if _, err := e.Do(d.Context(), call, c.work); err != nil || c.runs.Load() != 1 {
			d.Errorf("repeat after a declared-not-applied call = %v, %d runs; want the work run again", err, c.runs.Load())
		}
	}},
	{"ScopesIsolated", func(d *doT) {
		e, call, c := d.engine(), d.call("same key"), &counter{}
		e.Do(d.Context(), call, c.work)
		call.Scope += "-other"
		out, err := e.Do(d.Context(), call, c.work)
		if err != nil || string(out) != "run 2" {
			d.Errorf("the same key in another scope = %q, %v; want a run of its own (docs/contract.md C-SCOPE-2: keys are scoped)", out, err)
		}
	}},
	{"HeldClaimFences", func(d *doT) {
		e, call := d.engine(), d.call("fenced")
		var renewErr error
		var ok bool
		_, err := e.Do(d.Context(), call, func(ctx context.Context) ([]byte, error) {
			var key string
			var token core.Token
			key, token, ok = core.HeldClaim(ctx)
			// The claim's own token renews it: the work can make its writes
			// conditional on still holding the claim.
			renewErr = d.st.Renew(ctx, key, token, time.Minute)
			return []byte("ok"), nil
		})
		if err != nil || !ok || renewErr != nil {
			d.Errorf("Do: err %v, HeldClaim ok %v, Renew with the held token %v; want nil, true, nil", err, ok, renewErr)
		}
	}},
	{"ResultOverLimit", func(d *doT) {
		e, call, c := d.engine(core.WithMaxResponseBytes(4)), d.call("big"), &counter{}
		first, err := e.Do(d.Context(), call, c.work)
		if err != nil || string(first) != "run 1" {
			d.Fatalf("first Do with a result over the limit = %q, %v; want the result, delivered once", first, err)
		}
		if _, err := e.Do(d.Context(), call, c.work); !errors.Is(err, core.ErrResultOmitted) || c.runs.Load() != 1 {
			d.Errorf("repeat of work whose result was over the limit = %v, %d runs; want core.ErrResultOmitted and no second run (docs/contract.md C-REPLAY-2: never a second execution)", err, c.runs.Load())
		}
	}},
	{"InvalidKey", func(d *doT) {
		e, c := d.engine(), &counter{}
		for _, key := range []string{"", "tab\there", string(make([]byte, 300))} {
			call := core.Call{Key: key, Input: []byte("x")}
			if _, err := e.Do(d.Context(), call, c.work); !errors.Is(err, core.ErrInvalidKey) && !errors.Is(err, core.ErrMissingKey) {
				d.Errorf("Do with key %q = %v; want core.ErrInvalidKey or core.ErrMissingKey", key, err)
			}
		}
		if c.runs.Load() != 0 {
			d.Errorf("invalid keys ran the work %d times; want 0", c.runs.Load())
		}
	}},
}
