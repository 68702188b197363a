package core

import (
	"context"
	"log/slog"
	"time"
)

// Outcome names what the Engine decided for a request, or a lifecycle
// event of a claim. Values are stable and meant for logs and metrics labels.
type Outcome string

// Decisions, one per guarded request, and lifecycle events.
const (
	OutcomePassThrough      Outcome = "pass-through"         // method not guarded, or key optional and absent
	OutcomeMissingKey       Outcome = "missing-key"          // 400
	OutcomeInvalidKey       Outcome = "invalid-key"          // 400
	OutcomeBodyTooLarge     Outcome = "body-too-large"       // 413
	OutcomeInvalidBody      Outcome = "invalid-body"         // 400: the body could not be read
	OutcomeExecuted         Outcome = "executed"             // handler ran, response stored
	OutcomeReleased         Outcome = "released"             // handler ran, response not stored (policy, panic, cancel)
	OutcomeReplayed         Outcome = "replayed"             // stored response sent again
	OutcomeMismatch         Outcome = "fingerprint-mismatch" // 422
	OutcomeInFlight         Outcome = "in-flight"            // 409
	OutcomeStoreUnavailable Outcome = "store-unavailable"    // 503
	OutcomeFailOpen         Outcome = "fail-open"            // store unavailable, handler ran unguarded
	OutcomeStoreFailed      Outcome = "store-failed"         // handler ran, storing failed for good (lease lost, or the store down for a whole lease); response sent unstored
	OutcomeStoreDeferred    Outcome = "store-deferred"       // handler ran, storing failed for now: 503 sent, storing goes on in the background
	OutcomeMisconfigured    Outcome = "misconfigured"        // 500: a ScopeBy, SkipBy or RouteOptionsBy function could not read the request (ErrNativeType); handler not run

	EventLeaseRenewed Outcome = "lease-renewed"      // a background renewal succeeded
	EventLeaseLost    Outcome = "lease-lost"         // a renewal or completion found the claim taken over
	EventRenewFailed  Outcome = "lease-renew-failed" // a renewal failed on a store error; it is retried

	EventStoredLate     Outcome = "stored-late"     // a deferred response was stored in the background
	EventCompletionLost Outcome = "completion-lost" // a deferred response could not be stored within the lease: a retry may run the handler again
	EventReleasedLate   Outcome = "released-late"   // a release that had failed on a store error succeeded in the background
	EventOrphanReleased Outcome = "orphan-released" // a claim whose call had failed landed anyway and was released in the background

	EventStoreDegraded  Outcome = "store-degraded"  // a store lost an optional part (a cache tier) and serves without it
	EventStoreRecovered Outcome = "store-recovered" // that part is back

	// EventEvicted reports a completed record removed before its retention
	// ended, to make room in a full bounded store (memstore); KeyHash is its
	// storage key. A retry of that key runs the handler again.
	EventEvicted Outcome = "evicted"

	// EventRecordDiscarded: a stored record failed validation or
	// authentication, or the store could not read it (Err wraps
	// ErrCorruptRecord), and it was removed through the store's Discarder
	// so the key is claimed again. A record that could not be removed is
	// reported by the request's store-unavailable event instead.
	EventRecordDiscarded Outcome = "record-discarded"
)

// Event is what an [Observer] sees. It never carries the raw key or a body.
type Event struct {
	Outcome Outcome
	// KeyHash is the storage key (a digest of scope and key); empty before
	// the key is parsed.
	KeyHash string
	Method  string
	Path    string
	// Status is the HTTP status sent, when one was.
	Status int
	// StoreLatency is the time spent in store calls for this event.
	StoreLatency time.Duration
	// Err is the error behind the event, if any.
	Err error
}

// Observer sees every decision of an [Engine]. Observe is called
// synchronously on the request's goroutine (or the lease renewer's), so it
// must be fast and safe for concurrent use.
type Observer interface {
	Observe(ctx context.Context, ev Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(ctx context.Context, ev Event)

// Observe calls f(ctx, ev).
func (f ObserverFunc) Observe(ctx context.Context, ev Event) { f(ctx, ev) }

// SlogObserver logs every event to logger: errors and lost leases at Warn,
// store outages at Error, everything else at Debug.
func SlogObserver(logger *slog.Logger) Observer {
	return ObserverFunc(func(ctx context.Context, ev Event) {
		level := slog.LevelDebug
		switch ev.Outcome {
		case OutcomeStoreUnavailable, OutcomeStoreFailed, OutcomeFailOpen, EventCompletionLost, OutcomeMisconfigured:
			level = slog.LevelError
		case EventLeaseLost, EventRenewFailed, EventStoreDegraded, OutcomeStoreDeferred, EventEvicted, EventRecordDiscarded:
			level = slog.LevelWarn
		}
		if !logger.Enabled(ctx, level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("outcome", string(ev.Outcome)),
			slog.String("method", ev.Method),
			slog.String("path", ev.Path),
		}
		if ev.KeyHash != "" {
			attrs = append(attrs, slog.String("key_hash", ev.KeyHash))
		}
		if ev.Status != 0 {
			attrs = append(attrs, slog.Int("status", ev.Status))
		}
		if ev.StoreLatency != 0 {
			attrs = append(attrs, slog.Duration("store_latency", ev.StoreLatency))
		}
		if ev.Err != nil {
			attrs = append(attrs, slog.String("error", ev.Err.Error()))
		}
		logger.LogAttrs(ctx, level, "idempotency", attrs...)
	})
}
