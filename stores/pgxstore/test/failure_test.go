package pgxstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/pgxstore"
)

// TestServerDownAndBack runs claim+complete workers against a private
// server, crashes it mid-run and starts it again: while it is down every
// store call must fail with ErrStoreUnavailable, and afterwards service must
// resume with every acknowledged completed record intact.
func TestServerDownAndBack(t *testing.T) {
	t.Parallel()
	srv, pool := privateServer(t, 16)
	ctx := ctxT(t)
	s := New(pool)

	// A claim held across the outage.
	held := claimReq(t, "")
	mustClaim(t, s, held, core.ClaimAcquired)

	var (
		mu        sync.Mutex
		completed = map[string]core.ClaimRequest{}
		down      atomic.Bool
		phase     atomic.Int32 // 0 before, 1 down, 2 after restart
		okAfter   atomic.Int64
		stop      = make(chan struct{})
		failures  = make(chan error, 64)
		wg        sync.WaitGroup
	)
	report := func(err error) {
		select {
		case failures <- err:
		default:
		}
	}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				opCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
				req := claimReq(t, "")
				body := []byte("body of " + req.Key)
				c, err := s.Claim(opCtx, req)
				if err == nil && c.Status != core.ClaimAcquired {
					err = fmt.Errorf("claim of a new key = %v; want acquired", c.Status)
				}
				if err == nil {
					err = s.Complete(opCtx, req.Key, req.Token, &core.Response{Status: 201, Body: body}, time.Hour)
				}
				cancel()
				switch {
				case err == nil:
					mu.Lock()
					completed[req.Key] = req
					mu.Unlock()
					if phase.Load() == 2 {
						okAfter.Add(1)
					}
				case down.Load() || phase.Load() == 2:
					// Errors are expected while the server is down and just
					// after it returns (stale pooled connections); they must
					// all say "store unavailable".
					if !errors.Is(err, core.ErrStoreUnavailable) {
						report(fmt.Errorf("while the server was down: %w; want ErrStoreUnavailable", err))
					}
					time.Sleep(5 * time.Millisecond)
				default:
					report(fmt.Errorf("with the server up: %w", err))
				}
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	before := len(completed)
	mu.Unlock()
	down.Store(true)
	phase.Store(1)
	srv.Crash()

	// While down: every kind of call says ErrStoreUnavailable.
	downCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := s.Claim(downCtx, again(held))
	checks := map[string]error{
		"Claim":    err,
		"Complete": s.Complete(downCtx, held.Key, held.Token, &core.Response{Status: 200}, time.Hour),
		"Renew":    s.Renew(downCtx, held.Key, held.Token, time.Minute),
		"Release":  s.Release(downCtx, held.Key+"x", held.Token),
	}
	_, checks["Prune"] = s.Prune(downCtx)
	cancel()
	for op, err := range checks {
		if !errors.Is(err, core.ErrStoreUnavailable) {
			t.Errorf("%s with the server down: err = %v; want ErrStoreUnavailable", op, err)
		}
	}
	time.Sleep(300 * time.Millisecond)

	srv.Start()
	phase.Store(2)
	down.Store(false)
	deadline := time.Now().Add(15 * time.Second)
	for okAfter.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	if okAfter.Load() < 50 {
		t.Fatalf("after restart only %d claim+complete succeeded in 15s; want service to resume", okAfter.Load())
	}

	// Nothing acknowledged was lost: every completed record replays exactly.
	for key, req := range completed {
		c, err := s.Claim(ctx, again(req))
		if err != nil || c.Status != core.ClaimReplay || !bytes.Equal(c.Response.Body, []byte("body of "+key)) {
			t.Errorf("after the crash, Claim(%s) = %v, %v; want the replay of an acknowledged completion", key[:8], c.Status, err)
		}
	}
	// The claim held across the outage is still held, and can complete.
	mustClaim(t, s, again(held), core.ClaimInFlight)
	if err := s.Complete(ctx, held.Key, held.Token, &core.Response{Status: 200}, time.Hour); err != nil {
		t.Errorf("Complete of the claim held across the outage: %v", err)
	}
	t.Logf("%d records completed before the crash, %d in all; all replayed after restart", before, len(completed))
}
