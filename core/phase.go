package core

import "context"

// Phase names a step of a guarded request (or of a call of [Engine.Do])
// for a [PhaseObserver].
type Phase string

// The steps of a guarded request. Claim always runs; then Handler, and
// Complete or Release, when the claim was acquired.
const (
	PhaseClaim    Phase = "claim"    // the store call that claims the key
	PhaseHandler  Phase = "handler"  // the handler, under the claim
	PhaseComplete Phase = "complete" // storing the response (retries included)
	PhaseRelease  Phase = "release"  // releasing the claim
)

// PhaseObserver is an optional interface of an [Observer], for tracing: the
// engine calls StartPhase when a step of a guarded request begins, with
// the request's context and the storage-key digest, and the function it
// returns when the step ends, with the step's error (nil on success). The
// handler runs with the context StartPhase returned for [PhaseHandler], so
// that what the handler traces nests under that step; the store calls of
// the other steps get theirs. StartPhase is called on the request's
// goroutine (or a background completion's); it must be fast and safe for
// concurrent use. The module observability/idemotel implements it with
// OpenTelemetry spans.
type PhaseObserver interface {
	StartPhase(ctx context.Context, phase Phase, keyHash string) (context.Context, func(err error))
}

func noPhaseEnd(error) {}

// phase starts p with the configured PhaseObserver, if any; without one it
// costs a nil check.
func (e *Engine) phase(ctx context.Context, p Phase, key string) (context.Context, func(error)) {
	if e.phases == nil {
		return ctx, noPhaseEnd
	}
	return e.phases.StartPhase(ctx, p, key)
}
