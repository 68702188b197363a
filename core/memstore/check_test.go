package memstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

func TestCheck(t *testing.T) {
	s := memstore.New()
	if err := core.New(s).Check(context.Background()); err != nil {
		t.Errorf("Check of an open store = %v; want nil", err)
	}
	s.Close()
	if err := s.Check(context.Background()); !errors.Is(err, memstore.ErrClosed) || !errors.Is(err, core.ErrStoreUnavailable) {
		t.Errorf("Check of a closed store = %v; want an error wrapping ErrClosed and core.ErrStoreUnavailable", err)
	}
}
