package core

import "errors"

// Sentinel errors. Errors returned by this package and by stores wrap one of
// these with context; test for them with [errors.Is].
var (
	// ErrStoreUnavailable reports that the store could not answer: the backend
	// is unreachable, timed out, read-only, or full. Stores wrap their driver
	// errors with it.
	ErrStoreUnavailable = errors.New("core: store unavailable")
	// ErrLeaseLost reports that a Complete, Release or Renew was refused
	// because the caller's fencing token no longer holds the record.
	ErrLeaseLost = errors.New("core: lease lost")
	// ErrCorruptRecord reports a stored record that the Engine or a store
	// cannot use: bytes that do not decode (the record codec of package
	// github.com/idemkit/idemkit/core/codec refuses them with it), or a
	// completed response no Engine would have stored or that fails
	// authentication ([WithHMACSecret]). Stores wrap it, with
	// ErrStoreUnavailable, when a record read back is damaged; the Engine
	// reports it to the [Observer] when it refuses a record, and discards
	// the record through a [Discarder]. It is core's, not the codec's,
	// because applications see it: there is one sentinel.
	ErrCorruptRecord = errors.New("core: corrupt stored record")

	// ErrMissingKey reports a guarded request without an Idempotency-Key on a
	// route that requires one.
	ErrMissingKey = errors.New("core: missing idempotency key")
	// ErrInvalidKey reports a malformed Idempotency-Key field.
	ErrInvalidKey = errors.New("core: invalid idempotency key")
	// ErrBodyTooLarge reports a request body over the configured limit.
	ErrBodyTooLarge = errors.New("core: request body too large")
	// ErrFingerprintMismatch reports a key reused with another payload.
	ErrFingerprintMismatch = errors.New("core: idempotency key reused with another request")
	// ErrInFlight reports that another request with the same key is running.
	ErrInFlight = errors.New("core: request with this idempotency key in flight")
	// ErrNotReplayable reports that the handler took over the connection
	// (for example by hijacking it), so no response can be stored.
	ErrNotReplayable = errors.New("core: response not replayable")
)
