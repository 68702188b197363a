package service

import (
	"context"
	"fmt"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
)

// StoreNames lists the -store values.
const StoreNames = "memory|redis|postgres|tiered"

// OpenStore opens the store named by -store. Server URLs come from
// IDEMKIT_REDIS_URL and IDEMKIT_POSTGRES_URL; postgres and tiered apply the
// schema on start. The returned close function releases everything.
func OpenStore(ctx context.Context, name string) (core.Store, func(), error) {
	switch name {
	case "memory":
		s := memstore.New()
		return s, func() { s.Close() }, nil
	case "redis", "postgres", "tiered":
		return nil, nil, fmt.Errorf("store %q is not available in this build yet; use -store memory", name)
	}
	return nil, nil, fmt.Errorf("unknown store %q; want one of %s", name, StoreNames)
}
