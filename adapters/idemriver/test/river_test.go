package idemriver_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/idemkit/idemkit/core"
)

// A worker performs its side effect and then hangs, ignoring its context,
// past JobTimeout and RescueStuckJobsAfter. River's rescuer (on a second
// client, the leader) makes the job available again and the second client
// works it while the first worker still runs: the middleware snoozes it,
// since the first worker's claim is alive (renewed), and once that worker
// returns, the next delivery completes the job without running it.
// rescueWait bounds a wait that depends on River's rescuer: the new
// leader rescues at once, and should that first pass miss the job (a
// loaded machine), the next one comes a rescuer interval (30 s) later.
const rescueWait = 45 * time.Second

func TestRescueWhileFirstWorkerHangs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int64
	work := func(ctx context.Context, job *river.Job[chargeArgs]) error {
		runs.Add(1)
		e.effects.Add(1)
		<-e.frozen.ch // hangs, its context cancelled after JobTimeout
		return nil
	}
	a := e.client("worker-a", false, work)
	ids := e.insert(a, chargeArgs{Key: "order-1", Amount: 100})
	until(t, 5*time.Second, "first delivery", func() bool { return runs.Load() == 1 })
	time.Sleep(rescueAfter + 200*time.Millisecond) // the job is stuck by River's measure
	e.client("worker-b", true, work)               // the leader: its rescuer runs at once
	until(t, rescueWait, "a rescued delivery snoozed", func() bool { return e.probe.snapshot().snoozed >= 1 })
	e.frozen.open()
	rows := e.wait(a, 15*time.Second, ids...)

	p := e.report(len(ids))
	if rows[0].State != rivertype.JobStateCompleted {
		t.Errorf("job state %s; want completed", rows[0].State)
	}
	if got := e.effects.Load(); got != 1 {
		t.Errorf("side effects %d; want 1: a rescued job must not run while its first worker holds the key", got)
	}
	if p.deliveries < 2 {
		t.Errorf("deliveries %d; want at least 2: the job was not re-worked after its rescue", p.deliveries)
	}
}

// A worker process is killed mid-job, before its side effect: its claim is
// no longer renewed and lapses one lease later, River's rescuer makes the
// job available again, and the second client runs it: the side effect
// happens once, on the second client. (A process killed after its side
// effect and before the engine stored it is the documented at-least-once
// case.)
func TestRescueAfterWorkerKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	procA := &killable{}
	var runs atomic.Int64
	work := func(ctx context.Context, job *river.Job[chargeArgs]) error {
		if runs.Add(1) == 1 {
			procA.dead.Store(true) // the process dies here: nothing after this happens
			<-e.frozen.ch
			return ctx.Err()
		}
		e.effects.Add(1)
		return nil
	}
	a := e.client("worker-a", false, work, func(s core.Store) core.Store { procA.Store = s; return procA })
	ids := e.insert(a, chargeArgs{Key: "order-1", Amount: 100})
	until(t, 5*time.Second, "first delivery", func() bool { return runs.Load() == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(context.Background()) }() // nor does it fetch any more jobs
	time.Sleep(rescueAfter + 200*time.Millisecond)
	b := e.client("worker-b", true, work)
	rows := e.wait(b, rescueWait, ids...)
	e.frozen.open()
	if err := <-stopped; err != nil {
		t.Errorf("stop client worker-a: %v", err)
	}

	p := e.report(len(ids))
	if rows[0].State != rivertype.JobStateCompleted {
		t.Errorf("job state %s; want completed", rows[0].State)
	}
	if got := e.effects.Load(); got != 1 {
		t.Errorf("side effects %d; want 1: the rescued job must run once its killed holder's lease lapsed", got)
	}
	if p.deliveries < 2 {
		t.Errorf("deliveries %d; want at least 2 (the killed one, the rescued one)", p.deliveries)
	}
}

// A worker performs its side effect and returns; the middleware stores the
// result; then the process freezes before River records the completion (as
// a process that dies or stops there). River rescues the job, and the second
// client's delivery completes it without running the worker again.
func TestRescueAfterWorkStoredButNotRecorded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var frozen atomic.Bool
	e.probe.setAfter(func(job *rivertype.JobRow, err error) {
		if err == nil && frozen.CompareAndSwap(false, true) {
			<-e.frozen.ch // the first delivery never reports back to River
		}
	})
	work := func(ctx context.Context, job *river.Job[chargeArgs]) error {
		e.effects.Add(1)
		return nil
	}
	a := e.client("worker-a", false, work)
	ids := e.insert(a, chargeArgs{Key: "order-1", Amount: 100})
	until(t, 5*time.Second, "first delivery", frozen.Load)
	time.Sleep(rescueAfter + 200*time.Millisecond)
	b := e.client("worker-b", true, work)
	rows := e.wait(b, rescueWait, ids...)

	p := e.report(len(ids))
	if rows[0].State != rivertype.JobStateCompleted {
		t.Errorf("job state %s; want completed", rows[0].State)
	}
	if got := e.effects.Load(); got != 1 {
		t.Errorf("side effects %d; want 1: the rescued job's work was stored, and must be replayed", got)
	}
	if p.deliveries != 2 {
		t.Errorf("deliveries %d; want 2 (the frozen one, the rescued one)", p.deliveries)
	}
}

// The same logical job is inserted eight times (eight job IDs, one key in
// the args) and worked by two clients at once: the side effect happens
// once, and every job completes.
func TestSameKeyInsertedManyTimes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int64
	work := func(ctx context.Context, job *river.Job[chargeArgs]) error {
		runs.Add(1)
		e.effects.Add(1)
		time.Sleep(200 * time.Millisecond) // long enough for duplicates to overlap
		return nil
	}
	a := e.client("worker-a", true, work)
	e.client("worker-b", true, work)
	args := make([]chargeArgs, 8)
	for i := range args {
		args[i] = chargeArgs{Key: "order-1", Amount: 100}
	}
	ids := e.insert(a, args...)
	rows := e.wait(a, 20*time.Second, ids...)

	e.report(len(ids))
	for _, r := range rows {
		if r.State != rivertype.JobStateCompleted {
			t.Errorf("job %d state %s; want completed", r.ID, r.State)
		}
	}
	if got := e.effects.Load(); got != 1 {
		t.Errorf("side effects %d; want 1 for %d inserts of one key", got, len(ids))
	}
}

// A failing worker is retried by River (its claim released each time) until
// it succeeds, once; the same job inserted again later is not run.
func TestFailingWorkerRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var runs atomic.Int64
	work := func(ctx context.Context, job *river.Job[chargeArgs]) error {
		if runs.Add(1) < 3 {
			return errors.New("payment provider unavailable")
		}
		e.effects.Add(1)
		return nil
	}
	a := e.client("worker-a", true, work)
	ids := e.insert(a, chargeArgs{Key: "order-1", Amount: 100})
	rows := e.wait(a, 15*time.Second, ids...)
	again := e.insert(a, chargeArgs{Key: "order-1", Amount: 100})
	rows = append(rows, e.wait(a, 15*time.Second, again...)...)

	e.report(len(rows))
	if rows[0].State != rivertype.JobStateCompleted || rows[0].Attempt != 3 || len(rows[0].Errors) != 2 {
		t.Errorf("job: state %s, attempt %d, %d errors; want completed on attempt 3 after 2 errors",
			rows[0].State, rows[0].Attempt, len(rows[0].Errors))
	}
	if rows[1].State != rivertype.JobStateCompleted || rows[1].Attempt != 1 {
		t.Errorf("job inserted again: state %s, attempt %d; want completed on attempt 1", rows[1].State, rows[1].Attempt)
	}
	if got := runs.Load(); got != 3 {
		t.Errorf("worker ran %d times; want 3 (2 failures, 1 success, no run for the job inserted again)", got)
	}
	if got := e.effects.Load(); got != 1 {
		t.Errorf("side effects %d; want 1", got)
	}
}

// A key reused with other args cancels the job, never retried, the worker
// not run.
func TestMismatchCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	work := func(ctx context.Context, job *river.Job[chargeArgs]) error {
		e.effects.Add(1)
		return nil
	}
	a := e.client("worker-a", true, work)
	first := e.insert(a, chargeArgs{Key: "order-1", Amount: 100})
	e.wait(a, 10*time.Second, first...)
	other := e.insert(a, chargeArgs{Key: "order-1", Amount: 999})
	rows := e.wait(a, 10*time.Second, other...)

	e.report(2)
	r := rows[0]
	if r.State != rivertype.JobStateCancelled || r.Attempt != 1 {
		t.Errorf("job with other args: state %s, attempt %d; want cancelled on attempt 1", r.State, r.Attempt)
	}
	if n := len(r.Errors); n == 0 || !strings.Contains(r.Errors[n-1].Error, core.ErrFingerprintMismatch.Error()) {
		t.Errorf("job errors %v; want the last to report %q", r.Errors, core.ErrFingerprintMismatch)
	}
	if got := e.effects.Load(); got != 1 {
		t.Errorf("side effects %d; want 1: the job with other args must not run", got)
	}
}
