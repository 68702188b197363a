package tieredstore

import (
	"context"
	"fmt"

	"github.com/idemkit/idemkit/core"
)

var _ core.Discarder = (*Store)(nil)

// Discard implements [core.Discarder] on both tiers, each of which keeps
// only records it can vouch for: the hot tier's copy first (when the hot
// tier is a Discarder and its breaker lets a call through), so that a
// claim after the discard does not find a copy of what the durable tier
// drops, then the durable tier's record (when it is a Discarder). Each
// tier deletes only its own record matching req, so a corrupt hot copy
// over a sound durable record costs the copy alone: the claim after it
// replays the durable record and warms the hot tier again. A failure of
// the hot tier is left to its breaker; the durable tier's is returned.
func (s *Store) Discard(ctx context.Context, req core.DiscardRequest) error {
	if hot, ok := s.hot.(core.Discarder); ok && s.hotAllowed() {
		s.callHot(ctx, func(ctx context.Context) error { return hot.Discard(ctx, req) })
	}
	if durable, ok := s.durable.(core.Discarder); ok {
		if err := durable.Discard(ctx, req); err != nil {
			return fmt.Errorf("tieredstore: discard: %w", err)
		}
	}
	return nil
}
