package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// completion is a handler's response on its way into the store: Complete
// is tried until it succeeds, the claim is found lost, or the storing
// window closes. Between attempts the claim is renewed whenever a third of
// the lease has passed since it was last known held, so a store outage
// shorter than the lease loses no response.
type completion struct {
	e     *Engine
	key   string
	token Token
	resp  *Response // as stored
	ttl   time.Duration
	// confirmed is when the lease was last known held (the sending of the
	// claim or of a successful renewal); the lease cannot be counted on
	// past confirmed + lease.
	confirmed time.Time
	// until closes the storing window: one lease after the handler ended.
	// A store that answers renewals but refuses the record cannot keep
	// the key in flight for longer.
	until time.Time
}

func (e *Engine) newCompletion(key string, token Token, resp *Response, confirmed time.Time, ttl time.Duration) *completion {
	return &completion{e: e, key: key, token: token, resp: resp, ttl: ttl, confirmed: confirmed, until: time.Now().Add(e.cfg.lease)}
}

// end is when attempting must stop: the storing window or the lease,
// whichever closes first.
func (c *completion) end() time.Time {
	end := c.confirmed.Add(c.e.cfg.lease)
	if c.until.Before(end) {
		return c.until
	}
	return end
}

// open reports whether there is still time to store the response.
func (c *completion) open() bool { return time.Now().Before(c.end()) }

// run tries to store the response until stop (or the end of the window,
// if earlier), at least once while the window is open. It returns nil
// once stored, an error wrapping ErrLeaseLost when the claim is held by
// nobody or someone else, or the last error (wrapping
// ErrStoreUnavailable) when time ran out.
func (c *completion) run(ctx context.Context, stop time.Time) (err error) {
	e := c.e
	ctx, end := e.phase(ctx, PhaseComplete, c.key)
	defer func() { end(err) }()
	backoff := 20 * time.Millisecond
	err = fmt.Errorf("%w: no time left to store the response", ErrStoreUnavailable)
	for first := true; ; first = false {
		end := c.end()
		now := time.Now()
		if !now.Before(end) {
			return err
		}
		if stop.Before(end) {
			switch {
			case now.Before(stop):
				end = stop
			case !first:
				return err
			default:
				// No wait at all: one attempt still, bounded like a renewal.
				if d := now.Add(e.cfg.lease / 3); d.Before(end) {
					end = d
				}
			}
		}
		if now.Sub(c.confirmed) >= e.cfg.lease/3 {
			// A failed renewal decides nothing: ErrLeaseLost may mean an
			// earlier Complete landed and lost its reply, which the next
			// Complete tells (completing is idempotent for its holder).
			if e.storeCall(ctx, end, func(ctx context.Context) error {
				return e.store.Renew(ctx, c.key, c.token, e.cfg.lease)
			}) == nil {
				c.confirmed = now
			}
		}
		err = e.storeCall(ctx, end, func(ctx context.Context) error {
			return e.store.Complete(ctx, c.key, c.token, c.resp, c.ttl)
		})
		if err == nil || errors.Is(err, ErrLeaseLost) {
			return err
		}
		if !errors.Is(err, ErrStoreUnavailable) {
			err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
		}
		// Sleep no longer than until the next renewal is due.
		wait := min(backoff, time.Until(end), time.Until(c.confirmed.Add(e.cfg.lease/3)))
		if time.Until(end) <= 0 {
			return err
		}
		wait = max(wait, time.Millisecond)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		backoff = min(2*backoff, time.Second)
	}
}

// storeCall runs f with ctx bounded by end and by the store timeout.
func (e *Engine) storeCall(ctx context.Context, end time.Time, f func(context.Context) error) error {
	if t := e.cfg.storeTimeout; t > 0 {
		if d := time.Now().Add(t); d.Before(end) {
			end = d
		}
	}
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	return f(ctx)
}

// background runs the work an Engine does after a request has been
// answered: completions deferred by a store outage, and the release of
// claims whose Claim call failed but may still land. It is bounded: past
// maxBackground tasks, a completion is finished by its request instead,
// and an orphan release is skipped (its lease lapses by itself).
type background struct {
	e     *Engine
	wg    sync.WaitGroup
	slots chan struct{}
	stop  chan struct{} // closed by Shutdown: orphan releases stop waiting
	once  sync.Once
}

const maxBackground = 1024

func (b *background) init(e *Engine) {
	b.e = e
	b.slots = make(chan struct{}, maxBackground)
	b.stop = make(chan struct{})
}

// start runs f in a goroutine if a slot is free.
func (b *background) start(f func()) bool {
	select {
	case b.slots <- struct{}{}:
	default:
		return false
	}
	b.wg.Add(1)
	go func() {
		defer func() { <-b.slots; b.wg.Done() }()
		f()
	}()
	return true
}

// hand continues c in the background, reporting its end to the observer.
// It returns false when no slot is free.
func (b *background) hand(ctx context.Context, x Exchange, c *completion) bool {
	e := b.e
	method, path := x.Method(), strings.Clone(x.Path())
	ctx = context.WithoutCancel(ctx)
	return b.start(func() {
		err := c.run(ctx, c.until)
		ev := Event{Outcome: EventStoredLate, KeyHash: c.key, Method: method, Path: path, Status: c.resp.Status}
		if err != nil {
			ev.Outcome, ev.Err = EventCompletionLost, err
			if !errors.Is(err, ErrLeaseLost) {
				// Let a retry run at once rather than wait for the lease:
				// the client was never shown this response.
				rerr := e.releaseInBackground(ctx, c.key, c.token)
				ev.Err = errors.Join(err, rerr)
				if rerr != nil && !errors.Is(rerr, ErrLeaseLost) {
					defer b.releaseRetried(ctx, method, path, c.key, c.token, rerr)
				}
			}
		}
		e.emit(ctx, ev)
	})
}

// orphanSchedule is when a claim whose call failed is released, counted
// from the failure: once soon, then after the delays in which a client
// library's re-sent copies or a stalled backend's queue may still run it.
var orphanSchedule = []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second}

// releaseOrphan releases, in the background, a claim whose Claim call
// failed: it may still land, and a lease nobody holds would answer 409 to
// every retry until it lapsed. The release is a compare-and-set on the
// token, so it never touches another holder's claim.
func (b *background) releaseOrphan(ctx context.Context, x Exchange, key string, token Token) {
	e := b.e
	method, path := x.Method(), strings.Clone(x.Path())
	ctx = context.WithoutCancel(ctx)
	b.start(func() {
		begin := time.Now()
		var last error
		for i, at := range orphanSchedule {
			if at >= e.cfg.lease {
				break
			}
			b.sleep(time.Until(begin.Add(at))) // on Shutdown, one last try at once
			err := e.releaseInBackground(ctx, key, token)
			// While the store fails (a failover, a restart), try again
			// sooner than the schedule's next point, at most a second
			// apart: a claim that landed before the outage would
			// otherwise hold its key until then after the store is back.
			// The last point's failures go on in releaseRetried below.
			if i+1 < len(orphanSchedule) {
				err = b.retryRelease(ctx, key, token, err, begin.Add(min(orphanSchedule[i+1], e.cfg.lease)))
			}
			if err == nil {
				e.emit(ctx, Event{Outcome: EventOrphanReleased, KeyHash: key, Method: method, Path: path})
			}
			select {
			case <-b.stop:
				return
			default:
			}
			last = err
		}
		if storeFailed(last) {
			// The store still fails: a claim that landed would lock the
			// key until its lease lapsed. Keep trying, as for a failed
			// release.
			b.releaseRetried(ctx, method, path, key, token, last)
		}
	})
}

// storeFailed reports whether a background Release failed on the store:
// not done, and not refused because the claim is held by nobody or by
// another holder.
func storeFailed(err error) bool { return err != nil && !errors.Is(err, ErrLeaseLost) }

// sleep waits d, or until the engine shuts down; it reports whether it
// waited the whole of d.
func (b *background) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.stop:
		return false
	}
}

// releaseLater retries, in the background, a Release that failed on a
// store error: otherwise the claim would answer 409 to every retry until
// its lease lapsed, although its handler's outcome was not stored. It
// tries with a growing pause until the store answers (released, or held
// by nobody or someone else), for at most one lease — by then the claim
// has lapsed anyway — and once more at once when the engine shuts down.
func (b *background) releaseLater(ctx context.Context, method, path, key string, token Token, err error) {
	ctx = context.WithoutCancel(ctx)
	b.start(func() { b.releaseRetried(ctx, method, path, key, token, err) })
}

// releaseRetried is releaseLater's loop, run on a background goroutine.
// err is the store failure of the Release it follows.
func (b *background) releaseRetried(ctx context.Context, method, path, key string, token Token, err error) {
	if b.retryRelease(ctx, key, token, err, time.Now().Add(b.e.cfg.lease)) == nil {
		b.e.emit(ctx, Event{Outcome: EventReleasedLate, KeyHash: key, Method: method, Path: path})
	}
}

// retryRelease repeats a Release whose last try failed with err: while err
// is a store failure, it tries again after a pause growing from 100 ms to
// a second, as long as that pause ends by until; when the engine shuts
// down, it tries once more at once and stops. It returns the last try's
// error.
func (b *background) retryRelease(ctx context.Context, key string, token Token, err error, until time.Time) error {
	for pause := 100 * time.Millisecond; storeFailed(err) && !time.Now().Add(pause).After(until); pause = min(2*pause, time.Second) {
		waited := b.sleep(pause)
		err = b.e.releaseInBackground(ctx, key, token)
		if !waited {
			break
		}
	}
	return err
}

// releaseInBackground is one Release of background work, bounded like a
// renewal (a third of the lease, or the store timeout if shorter).
func (e *Engine) releaseInBackground(ctx context.Context, key string, token Token) error {
	return e.storeCall(ctx, time.Now().Add(e.cfg.lease/3), func(ctx context.Context) error {
		return e.store.Release(ctx, key, token)
	})
}

// Shutdown waits until the engine's background work is done: responses
// whose storing a store outage deferred, and the release of claims whose
// call failed. Call it after the server has stopped taking requests
// (after [net/http.Server.Shutdown]); until ctx ends, it returns nil once
// that work is done, and ctx's error otherwise. Pending orphan releases
// are attempted once more at once. The Engine stays usable.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.bg.once.Do(func() { close(e.bg.stop) })
	done := make(chan struct{})
	go func() { e.bg.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// emit reports an event that no request carries any more.
func (e *Engine) emit(ctx context.Context, ev Event) {
	if e.cfg.observer != nil {
		e.cfg.observer.Observe(ctx, ev)
	}
}
