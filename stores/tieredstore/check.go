package tieredstore

import (
	"context"
	"fmt"

	"github.com/idemkit/idemkit/core"
)

var _ core.Checker = (*Store)(nil)

// checkKey is the key Check looks up in the hot tier. Storage keys are hex
// digests, so it names no record.
const checkKey = "tieredstore-check"

// Check implements [core.Checker]. The durable tier must answer: its
// Check's error (when it implements [core.Checker]) is returned, wrapped,
// and the tiered store cannot serve. The hot tier is optional: when it
// does not answer a lookup within the hot timeout, or the circuit breaker
// is skipping it, Check returns an error wrapping [core.ErrDegraded]
// (requests are served by the durable tier alone, correctly, more slowly).
//
// The hot tier is asked to answer, not to pass its own Check: a cache may
// evict whatever it holds (see the package documentation), so a check
// meant for a Store, such as one that refuses an evicting Redis, says
// nothing about a cache.
func (s *Store) Check(ctx context.Context) error {
	if c, ok := s.durable.(core.Checker); ok {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("tieredstore: durable tier: %w", err)
		}
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.hotTimeout)
	_, err := s.hot.Lookup(hctx, checkKey, core.Fingerprint{})
	cancel()
	if err != nil {
		// %v, not %w: the cause is the hot tier's ErrStoreUnavailable, and the
		// tiered store is not unavailable.
		return fmt.Errorf("tieredstore: hot tier: %w: %v", core.ErrDegraded, err)
	}
	if s.Degraded() {
		return fmt.Errorf("tieredstore: hot tier: %w: the circuit breaker skips it until a request probes it", core.ErrDegraded)
	}
	return nil
}
