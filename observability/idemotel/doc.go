// Package idemotel reports what an idempotency [core.Engine] decides to
// OpenTelemetry: metrics by outcome, the duration of store steps, and spans
// for the steps of a guarded request.
//
//	obs := idemotel.New() // the global meter and tracer providers
//	engine := core.New(store, core.WithObserver(obs))
//
// No semantic convention covers idempotency yet; the names below are ours,
// in the conventions' style, and stable. docs/operations.md describes them
// with the alerts worth setting.
//
// # Metrics
//
//   - idempotency.requests (counter, {request}): one per decision on a
//     guarded request or an [core.Engine.Do] call. Attributes:
//     idempotency.outcome, a [core.Outcome] decision value (executed,
//     replayed, in-flight, fingerprint-mismatch, missing-key, invalid-key,
//     body-too-large, invalid-body, released, store-unavailable,
//     store-failed, store-deferred, fail-open, misconfigured,
//     pass-through); and
//     http.request.method (a standard method or _OTHER; absent for
//     Engine.Do).
//   - idempotency.events (counter, {event}): lifecycle events outside the
//     decision. Attribute: idempotency.event (lease-renewed, lease-lost,
//     lease-renew-failed, stored-late, completion-lost, orphan-released,
//     store-degraded, store-recovered, evicted, record-discarded).
//   - idempotency.store.duration (histogram, s): each store step, from its
//     start to its end. Attributes: idempotency.store.operation (claim,
//     complete, release) and, on failure, error.type (store-unavailable,
//     lease-lost, corrupt-record, timeout, canceled, _OTHER). A storing
//     that fails once and is retried records its first attempt, then the
//     retry window as a second complete.
//
// No metric carries the key, its digest, the path or an error's text: each
// attribute takes its values from a fixed set.
//
// # Spans
//
// The steps are spans of kind internal, children of the span in the
// request's context (otelhttp's server span, or yours around Engine.Do):
// idempotency.claim, idempotency.handler, idempotency.complete and
// idempotency.release. The handler runs with its span's context, so the
// spans it starts nest under idempotency.handler. Store steps carry
// idempotency.store.operation; every step carries idempotency.key_hash,
// the storage-key digest that logs ([core.SlogObserver]) and the stores
// show too (never the raw key; [WithoutKeyHash] leaves it off). A step that
// fails ends with status Error and error.type; the error's text is not
// recorded (it may carry what a handler panicked with).
//
// The decision is set on the request's span as idempotency.outcome, and,
// for an Engine.Do call, the call's name as idempotency.call.name. Lifecycle
// events become span events named idempotency.<event> on the span in their
// context, while that span is recording.
//
// # HTTP server metrics
//
// When otelhttp's handler ([otelhttp.NewHandler]) runs outside the
// middleware, the decision is also added to its http.server.* metrics as
// idempotency.outcome, through [otelhttp.LabelerFromContext], so one
// dashboard splits request duration by executed and replayed. chi, gin and
// echo are net/http handlers: wrap the router with otelhttp.NewHandler to
// get the same. Other instrumentations (otelgin's and otelecho's own
// metrics, fiber) are not labelled. [WithoutHTTPLabeler] turns this off.
// This is why the module requires otelhttp: built into a program, it adds
// only github.com/felixge/httpsnoop to what the OpenTelemetry API brings.
package idemotel
