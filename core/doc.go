// Package core is idemkit's framework-free idempotency engine: the state
// machine behind the Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header),
// the [Store] contract every backend implements (and [Cache], for the hot
// tier of a tiered store), key parsing, fingerprints,
// and RFC 9457 problem responses. It depends on the standard library only.
//
// A request with an Idempotency-Key runs its handler once; a retry with the
// same key and the same payload gets the stored response back, byte for
// byte, with Idempotency-Replayed: true, and the handler does not run again.
//
//	engine := core.New(memstore.New(), core.WithHeaderScope("X-Api-Key"))
//	http.Handle("POST /payments", idemhttp.Middleware(engine)(payments))
//
// Adapters (idemhttp, idemchi, idemgin, idemecho, idemfiber) translate a
// framework's request and response into an [Exchange] and call
// [Engine.Serve]; all decisions are made here.
//
// # Decisions
//
// For each guarded request (POST, PUT, PATCH, DELETE by default) the engine
// parses the key ([ParseKey]), reads the body up to the limit, computes the
// fingerprint once ([DefaultFingerprint]), derives the storage key from the
// scope and the key (a SHA-256 or HMAC digest: stores never see raw keys),
// and asks the store to [Store.Claim] it:
//
//	absent or expired        → run the handler once, store, then send
//	in flight, same payload  → 409 with Retry-After (or wait, WithWaitForInFlight)
//	completed, same payload  → replay status, headers and body
//	other payload            → 422 (reported before a conflict)
//	store unavailable        → 503 with Retry-After (or run unguarded, WithFailOpen)
//
// Responses the [CompletionPolicy] accepts (status < 500 by default) are
// stored before they are sent; others — a 5xx, a panic (re-raised), a
// cancelled request — release the claim so a retry runs the handler again.
//
// # Guarantees
//
// Exactly one concurrent request per scoped key runs the handler, on any
// store that passes the conformance suite. A claim is a lease with a fencing
// token, renewed while the handler runs: if the process dies the lease
// lapses and a later retry may run the handler again. So execution is
// exactly-once while processes live, and at-least-once across crashes.
//
// # Scopes
//
// Without a scope ([WithKeyScope], [WithHeaderScope], [ScopeBy]) every
// client shares one key space: a client that guesses or reuses another
// client's key gets that client's stored response. Always scope keys by the
// authenticated principal in a multi-client deployment. [ScopeBy] (and
// [SkipBy], [RouteOptionsBy]) read the framework's own request type; an
// engine mounted in another adapter than they were written for refuses
// every guarded request with 500 ([CodeMisconfigured], [ErrNativeType])
// rather than serving it in one key space.
//
// # Errors
//
// Every refusal is application/problem+json with a stable code
// ([CodeMissingKey], [CodeInvalidKey], [CodeBodyTooLarge], [CodeInvalidBody],
// [CodeFingerprintMismatch], [CodeInFlight], [CodeStoreUnavailable],
// [CodeMisconfigured]) and
// Cache-Control: no-store. Go errors wrap the package's sentinels; test them
// with [errors.Is].
package core
