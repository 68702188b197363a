package tieredstore

import (
	"context"
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
// as a hot failure. d must be positive (New panics otherwise).
func WithHotTimeout(d time.Duration) Option { return func(c *config) { c.hotTimeout = d } }

// WithBreaker sets how many consecutive hot failures open the breaker [3]
// and how long it stays open before one request probes the hot tier [2s].
// threshold and cooldown must be positive (New panics otherwise).
func WithBreaker(threshold int, cooldown time.Duration) Option {
	return func(c *config) { c.threshold, c.cooldown = threshold, cooldown }
}

// WithWarmTTL sets how long at most a record warmed from the durable tier
// stays in the hot tier [5 min]; less when the durable tier reports that
// the record expires sooner. d must be positive (New panics otherwise).
func WithWarmTTL(d time.Duration) Option { return func(c *config) { c.warmTTL = d } }

// WithObserver reports degraded mode (the breaker opening) and recovery as
// [core.EventStoreDegraded] and [core.EventStoreRecovered] events. A nil o
// is the default: nothing is reported.
func WithObserver(o core.Observer) Option { return func(c *config) { c.observer = o } }

// Store is the tiered [core.Store]. See the package documentation for its
// consistency rules.
type Store struct {
	hot     core.Cache
	durable core.Store
	cfg     config

	pending sync.WaitGroup // background warm-ups of the hot tier

	mu        sync.Mutex
	failures  int
	openUntil time.Time // breaker open while now < openUntil
	probing   bool      // a half-open probe is in flight
	degraded  bool
}

// New returns a Store with the cache hot in front of durable, which
// arbitrates every claim. hot is typically a [redisstore.Store] with a key
// prefix of its own, or a memstore.Store for an in-process cache; it must
// not serve as a Store at the same time. New panics if either is nil, or if
// an option's value is invalid, naming the option and the value.
//
// [redisstore.Store]: https://pkg.go.dev/github.com/idemkit/idemkit/stores/redisstore#Store
func New(hot core.Cache, durable core.Store, opts ...Option) *Store {
	if hot == nil || durable == nil {
		panic("tieredstore: New: nil store")
	}
	c := config{hotTimeout: DefaultHotTimeout, threshold: DefaultBreakerThreshold, cooldown: DefaultBreakerCooldown, warmTTL: DefaultWarmTTL}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.hotTimeout <= 0:
		panic(fmt.Sprintf("tieredstore: WithHotTimeout(%v): want a positive duration", c.hotTimeout))
	case c.threshold < 1:
		panic(fmt.Sprintf("tieredstore: WithBreaker(%d, %v): want a positive threshold", c.threshold, c.cooldown))
	case c.cooldown <= 0:
		panic(fmt.Sprintf("tieredstore: WithBreaker(%d, %v): want a positive cooldown", c.threshold, c.cooldown))
	case c.warmTTL <= 0:
		panic(fmt.Sprintf("tieredstore: WithWarmTTL(%v): want a positive duration", c.warmTTL))
	}
	return &Store{hot: hot, durable: durable, cfg: c}
}

// Degraded reports whether the hot tier is currently bypassed.
func (s *Store) Degraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.degraded
}

// Claim implements [core.Store.Claim]: a replay or a mismatch found in the
// hot tier is final; anything else is decided by the durable tier, whose
// replays warm the hot tier in the background.
func (s *Store) Claim(ctx context.Context, req core.ClaimRequest) (core.Claim, error) {
	if ok, probe := s.hotAllowed(); ok {
		var hc core.Cached
		err := s.callHot(ctx, probe, func(ctx context.Context) (err error) {
			hc, err = s.hot.Lookup(ctx, req.Key, req.Fingerprint)
			return err
		})
		switch {
		case err != nil:
		case hc.Response != nil:
			return core.Claim{Status: core.ClaimReplay, Response: hc.Response}, nil
		case hc.Mismatch:
			return core.Claim{Status: core.ClaimMismatch}, nil
		}
	}
	dc, err := s.durable.Claim(ctx, req)
	if err != nil {
		return core.Claim{}, fmt.Errorf("tieredstore: claim: %w", err)
	}
	if dc.Status != core.ClaimReplay {
		return dc, nil
	}
	if ok, probe := s.hotAllowed(); ok {
		// The replayed response is read-only for everyone: the caller sends
		// it, the hot Put encodes or keeps it, nobody modifies it.
		// The copy lives no longer than the record (when the durable tier
		// says how long that is) nor than the warm TTL.
		ttl := s.cfg.warmTTL
		if dc.TTL > 0 {
			ttl = min(ttl, dc.TTL)
		}
		bg := context.WithoutCancel(ctx)
		s.pending.Add(1)
		go func() {
			defer s.pending.Done()
			s.callHot(bg, probe, func(ctx context.Context) error {
				return s.hot.Put(ctx, req.Key, req.Fingerprint, dc.Response, ttl)
			})
		}()
	}
	return dc, nil
}

// Complete implements [core.Store.Complete] on the durable tier alone: the
// hot tier learns the record from its first replay.
func (s *Store) Complete(ctx context.Context, key string, token core.Token, resp *core.Response, ttl time.Duration) error {
	if err := s.durable.Complete(ctx, key, token, resp, ttl); err != nil {
		return fmt.Errorf("tieredstore: complete: %w", err)
	}
	return nil
}

// Flush waits until every background warm-up of the hot tier has
// finished. Tests and graceful shutdowns use it; requests never wait for
// it.
func (s *Store) Flush() { s.pending.Wait() }

// Release implements [core.Store.Release] on the durable tier.
func (s *Store) Release(ctx context.Context, key string, token core.Token) error {
	if err := s.durable.Release(ctx, key, token); err != nil {
		return fmt.Errorf("tieredstore: release: %w", err)
	}
	return nil
}

// Renew implements [core.Store.Renew] on the durable tier.
func (s *Store) Renew(ctx context.Context, key string, token core.Token, lease time.Duration) error {
	if err := s.durable.Renew(ctx, key, token, lease); err != nil {
		return fmt.Errorf("tieredstore: renew: %w", err)
	}
	return nil
}

// callHot runs f against the hot tier under the hot timeout and feeds the
// breaker. Errors caused by the caller's own context do not count, except
// for the half-open probe (probe set): the breaker waits for its verdict
// before it lets any other call through, so the probe runs detached from
// its caller's cancellation, bounded by the hot timeout alone, and its
// outcome is recorded whatever happens to the request that carries it.
// Should f panic, the probe is given up so that the next request probes.
func (s *Store) callHot(ctx context.Context, probe bool, f func(context.Context) error) error {
	parent := ctx
	recorded := false
	if probe {
		parent = context.WithoutCancel(ctx)
		defer func() {
			if !recorded {
				s.abandonProbe()
			}
		}()
	}
	hctx, cancel := context.WithTimeout(parent, s.cfg.hotTimeout)
	err := f(hctx)
	cancel()
	if err != nil && !probe && ctx.Err() != nil {
		return err
	}
	s.record(ctx, err)
	recorded = true
	return err
}

// hotAllowed reports whether a call may go to the hot tier (the breaker
// is closed, or its cool-down has passed and no other probe is running)
// and whether that call is the half-open probe, which the caller must
// pass to callHot.
func (s *Store) hotAllowed() (ok, probe bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.degraded {
		return true, false
	}
	if time.Now().Before(s.openUntil) || s.probing {
		return false, false
	}
	s.probing = true
	return true, true
}

// abandonProbe ends a probe that gave no verdict: the next request after
// the cool-down probes again.
func (s *Store) abandonProbe() {
	s.mu.Lock()
	s.probing = false
	s.mu.Unlock()
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
