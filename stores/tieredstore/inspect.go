package tieredstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/idemkit/idemkit/core"
)

var _ core.Inspector = (*Store)(nil)

// errNotInspector is returned when the durable tier is not a [core.Inspector].
var errNotInspector = errors.New("tieredstore: the durable tier does not implement core.Inspector")

// Inspect implements [core.Inspector] from the durable tier, which holds
// every record (the hot tier holds copies of completed ones).
func (s *Store) Inspect(ctx context.Context, key string) (core.RecordInfo, error) {
	d, ok := s.durable.(core.Inspector)
	if !ok {
		return core.RecordInfo{}, errNotInspector
	}
	info, err := d.Inspect(ctx, key)
	if err != nil {
		return core.RecordInfo{}, fmt.Errorf("tieredstore: inspect: %w", err)
	}
	return info, nil
}

// Delete implements [core.Inspector] on both tiers: the durable record,
// then the hot tier's copy when the hot tier is a [core.Inspector]
// (memstore and redisstore are), so that no copy replays a deleted
// record. It calls the hot tier whatever its breaker says, and returns its
// failure: the copy would otherwise replay until it expires. It returns
// [core.ErrNotFound] only when neither tier held the key. A warm-up of
// the hot tier started by a replay just before the Delete may still land
// after it; delete again to clear that copy.
func (s *Store) Delete(ctx context.Context, key string) error {
	d, ok := s.durable.(core.Inspector)
	if !ok {
		return errNotInspector
	}
	derr := d.Delete(ctx, key)
	if derr != nil && !errors.Is(derr, core.ErrNotFound) {
		return fmt.Errorf("tieredstore: delete: %w", derr)
	}
	h, ok := s.hot.(core.Inspector)
	if !ok {
		if derr != nil {
			return fmt.Errorf("tieredstore: delete: %w", derr)
		}
		return nil
	}
	herr := h.Delete(ctx, key)
	switch {
	case herr != nil && !errors.Is(herr, core.ErrNotFound):
		return fmt.Errorf("tieredstore: delete: hot tier: %w", herr)
	case herr != nil && derr != nil:
		return fmt.Errorf("tieredstore: delete: %w", derr)
	}
	return nil
}
