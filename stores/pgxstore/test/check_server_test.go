package pgxstore

import (
	"errors"
	"testing"

	"github.com/idemkit/idemkit/core"
	. "github.com/idemkit/idemkit/stores/pgxstore"
)

// TestCheckServerStopped: Check answers nil while a private server runs,
// an error wrapping core.ErrStoreUnavailable (not ErrSchema) once it is
// stopped, and nil again after it is started.
func TestCheckServerStopped(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	srv, pool := privateServer(t, 2)
	s := New(pool)
	if err := s.Check(ctx); err != nil {
		t.Fatalf("Check with the server up: %v; want nil", err)
	}
	srv.Stop()
	if err := s.Check(ctx); !errors.Is(err, core.ErrStoreUnavailable) || errors.Is(err, ErrSchema) {
		t.Errorf("Check with the server stopped: %v; want an error wrapping core.ErrStoreUnavailable", err)
	}
	srv.Start()
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after the server came back: %v; want nil", err)
	}
}
