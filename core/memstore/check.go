package memstore

import (
	"context"
	"fmt"

	"github.com/idemkit/idemkit/core"
)

var _ core.Checker = (*Store)(nil)

// Check implements [core.Checker]: an open store always serves; a closed
// one returns an error wrapping [ErrClosed] (and so
// [core.ErrStoreUnavailable]), as every other call does.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: check: %w: %w", core.ErrStoreUnavailable, err)
	}
	if s.closed.Load() {
		return fmt.Errorf("memstore: check: %w", ErrClosed)
	}
	return nil
}
