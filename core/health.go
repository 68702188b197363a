package core

import (
	"context"
	"errors"
)

// ErrDegraded reports a store that serves without an optional part, such
// as a tiered store whose cache tier is down: requests are still answered
// correctly, more slowly. A [Checker] wraps it; a health endpoint answers
// 200 for it and 503 for any other error.
var ErrDegraded = errors.New("core: store degraded")

// Checker is an optional interface of a [Store]: Check reports whether the
// store can serve guarded requests safely right now. It returns nil when
// it can, an error wrapping [ErrDegraded] when it can but without an
// optional part, and any other error (wrapping [ErrStoreUnavailable] when
// the backend does not answer) when requests would be refused or unsafe —
// for instance a Redis whose eviction policy may evict live claims, or a
// Postgres without the expected schema. Check must honour ctx and be cheap
// enough for a readiness probe.
type Checker interface {
	Check(ctx context.Context) error
}

// Check asks the engine's store whether it can serve (see [Checker]). A
// store that does not implement Checker is assumed healthy.
func (e *Engine) Check(ctx context.Context) error {
	if c, ok := e.store.(Checker); ok {
		return c.Check(ctx)
	}
	return nil
}
