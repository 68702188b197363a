package tieredstore

import (
	"context"
	"fmt"

	"github.com/idemkit/idemkit/core"
)

var _ core.Discarder = (*Store)(nil)

// Discard implements [core.Discarder] on both tiers. The hot tier holds
// copies, which the durable tier can always give again: whatever copy it
// holds of the key under req.Fingerprint goes, sound or not (when the hot
// tier is a Discarder and its breaker lets the calls through), so that the
// claim after the discard asks the durable tier. Then the durable tier
// deletes its record if it is the one req describes (when it is a
// Discarder). A corrupt hot copy over a sound durable record thus costs
// the copy alone: the claim after it replays the durable record and warms
// the hot tier again. A failure of the hot tier is left to its breaker;
// the durable tier's is returned.
//
// A warm-up started before the discard (in the background, after a
// replay) may still land after it: a retry then finds the copy once more,
// and the engine discards it again on the next request.
func (s *Store) Discard(ctx context.Context, req core.DiscardRequest) error {
	if hot, ok := s.hot.(core.Discarder); ok {
		if allowed, probe := s.hotAllowed(); allowed {
			s.callHot(ctx, probe, func(ctx context.Context) error {
				hc, err := s.hot.Lookup(ctx, req.Key, req.Fingerprint)
				switch {
				case err != nil:
					// A copy the hot tier cannot read itself: it discards what it
					// cannot read.
					return hot.Discard(ctx, core.DiscardRequest{Key: req.Key, Fingerprint: req.Fingerprint, Reason: req.Reason})
				case hc.Response != nil:
					return hot.Discard(ctx, core.DiscardRequest{Key: req.Key, Fingerprint: req.Fingerprint, Response: hc.Response, Reason: req.Reason})
				}
				return nil
			})
		}
	}
	if durable, ok := s.durable.(core.Discarder); ok {
		if err := durable.Discard(ctx, req); err != nil {
			return fmt.Errorf("tieredstore: discard: %w", err)
		}
	}
	return nil
}
