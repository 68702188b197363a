package tieredstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/idemkit/idemkit/core"
)

// Defaults of the options below.
const (
	DefaultHotTimeout       = 100 * time.Millisecond
	DefaultBreakerThreshold = 3
	DefaultBreakerCooldown  = 2 * time.Second
	DefaultWarmTTL          = 5 * time.Minute
)

var _ core.Store = (*Store)(nil)

type config struct {
	hotTimeout time.Duration
	threshold  int
	cooldown   time.Duration
	warmTTL    time.Duration
	observer   core.Observer
}

// Option configures a [Store].
type Option func(*config)

// WithHotTimeout bounds every hot-tier call [100ms]; a slower call counts
// as a hot failure.
func WithHotTimeout(d time.Duration) Option { return func(c *config) { c.hotTimeout = d } }

// WithBreaker sets how many consecutive hot failures open the breaker [3]
// and how long it stays open before one request probes the hot tier [2s].
func WithBreaker(threshold int, cooldown time.Duration) Option {
	return func(c *config) { c.threshold, c.cooldown = threshold, cooldown }
}

// WithWarmTTL sets how long a record warmed from the durable tier stays in
// the hot tier [5 min].
func WithWarmTTL(d time.Duration) Option { return func(c *config) { c.warmTTL = d } }

// WithObserver reports degraded mode (the breaker opening) and recovery as
// [core.EventStoreDegraded] and [core.EventStoreRecovered] events.
func WithObserver(o core.Observer) Option { return func(c *config) { c.observer = o } }

// Store is the tiered [core.Store]. See the package documentation for its
// consistency rules.
type Store struct {
	hot, durable core.Store
	cfg          config

	pending sync.WaitGroup // background hot writes

	mu        sync.Mutex
	failures  int
	openUntil time.Time // breaker open while now < openUntil
	probing   bool      // a half-open probe is in flight
	degraded  bool
}

// New returns a Store with hot in front of durable. It panics if either is
// nil.
func New(hot, durable core.Store, opts ...Option) *Store {
	if hot == nil || durable == nil {
		panic("tieredstore: New: nil store")
	}
	c := config{hotTimeout: DefaultHotTimeout, threshold: DefaultBreakerThreshold, cooldown: DefaultBreakerCooldown, warmTTL: DefaultWarmTTL}
	for _, o := range opts {
		o(&c)
	}
	if c.hotTimeout <= 0 || c.threshold < 1 || c.cooldown <= 0 || c.warmTTL <= 0 {
		panic("tieredstore: New: options out of range")
	}
	return &Store{hot: hot, durable: durable, cfg: c}
}

// Degraded reports whether the hot tier is currently bypassed.
func (s *Store) Degraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.degraded
}

// Claim implements [core.Store.Claim].
func (s *Store) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	holdHot := false
	if s.hotAllowed() {
		var hc core.Claim
		err := s.callHot(ctx, func(ctx context.Context) (err error) {
			hc, err = s.hot.Claim(ctx, req)
			return err
		})
		if err == nil {
			switch hc.Status {
			case core.ClaimReplay:
				return hc, nil
			case core.ClaimAcquired:
				holdHot = true
			}
		}
	}
	dc, err := s.durable.Claim(ctx, req)
	if err != nil {
		if holdHot {
			s.releaseHot(ctx, req.Key, req.Token)
		}
		return core.Claim{}, fmt.Errorf("tieredstore: claim: %w", err)
	}
	if holdHot {
		switch dc.Status {
		case core.ClaimReplay:
			// The replayed response is read-only; the hot Complete copies it.
			s.callHot(ctx, func(ctx context.Context) error {
				return ignoreLeaseLost(s.hot.Complete(ctx, req.Key, req.Token, dc.Response, s.cfg.warmTTL))
			})
		case core.ClaimInFlight, core.ClaimMismatch:
			s.releaseHot(ctx, req.Key, req.Token)
		}
	}
	return dc, nil
}

// Complete implements [core.Store.Complete]: the durable tier first, then
// the hot tier.
func (s *Store) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if err := s.durable.Complete(ctx, key, token, resp, ttl); err != nil {
		return fmt.Errorf("tieredstore: complete: %w", err)
	}
	if s.hotAllowed() {
		// The durable tier holds the record: the client may see it now. The
		// hot write follows in the background, bounded by the hot timeout;
		// it may read resp after Complete returns, since the caller hands
		// resp over and never modifies it (the Store contract).
		bg := context.WithoutCancel(ctx)
		s.pending.Add(1)
		go func() {
			defer s.pending.Done()
			s.callHot(bg, func(ctx context.Context) error {
				return ignoreLeaseLost(s.hot.Complete(ctx, key, token, resp, ttl))
			})
		}()
	}
	return nil
}

// Flush waits until every background hot-tier write has finished. Tests
// and graceful shutdowns use it; requests never wait for it.
func (s *Store) Flush() { s.pending.Wait() }

// Release implements [core.Store.Release].
func (s *Store) Release(ctx context.Context, key string, token core.Token) error {
	err := s.durable.Release(ctx, key, token)
	s.releaseHot(ctx, key, token)
	if err != nil {
		return fmt.Errorf("tieredstore: release: %w", err)
	}
	return nil
}

// Renew implements [core.Store.Renew].
func (s *Store) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	if err := s.durable.Renew(ctx, key, token, lease); err != nil {
		return fmt.Errorf("tieredstore: renew: %w", err)
	}
	if s.hotAllowed() {
		s.callHot(ctx, func(ctx context.Context) error {
			return ignoreLeaseLost(s.hot.Renew(ctx, key, token, lease))
		})
	}
	return nil
}

func (s *Store) releaseHot(ctx context.Context, key string, token core.Token) {
	if s.hotAllowed() {
		s.callHot(ctx, func(ctx context.Context) error {
			return ignoreLeaseLost(s.hot.Release(ctx, key, token))
		})
	}
}

// ignoreLeaseLost treats a hot record that is not ours (never claimed there,
// flushed, or expired) as nothing to do: the hot tier is a cache.
func ignoreLeaseLost(err error) error {
	if errors.Is(err, core.ErrLeaseLost) {
		return nil
	}
	return err
}

// callHot runs f against the hot tier under the hot timeout and feeds the
// breaker. Errors caused by the caller's own context do not count.
func (s *Store) callHot(ctx context.Context, f func(context.Context) error) error {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.hotTimeout)
	err := f(hctx)
	cancel()
	if err != nil && ctx.Err() != nil {
		return err
	}
	s.record(ctx, err)
	return err
}

// hotAllowed reports whether a call may go to the hot tier: the breaker is
// closed, or its cool-down has passed and no other probe is running.
func (s *Store) hotAllowed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.degraded {
		return true
	}
	if time.Now().Before(s.openUntil) || s.probing {
		return false
	}
	s.probing = true
	return true
}

func (s *Store) record(ctx context.Context, err error) {
	s.mu.Lock()
	var ev core.Outcome
	if err == nil {
		s.failures = 0
		s.probing = false
		if s.degraded {
			s.degraded = false
			ev = core.EventStoreRecovered
		}
	} else {
		s.failures++
		if s.degraded {
			s.probing = false
			s.openUntil = time.Now().Add(s.cfg.cooldown)
		} else if s.failures >= s.cfg.threshold {
			s.degraded = true
			s.openUntil = time.Now().Add(s.cfg.cooldown)
			ev = core.EventStoreDegraded
		}
	}
	s.mu.Unlock()
	if ev != "" && s.cfg.observer != nil {
		s.cfg.observer.Observe(ctx, core.Event{Outcome: ev, Err: err})
	}
}
