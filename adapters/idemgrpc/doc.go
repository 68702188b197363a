// Package idemgrpc guards unary gRPC methods with idemkit: a call with an
// idempotency-key metadata value runs its handler once, and a retry with
// the same key and the same request message gets the stored response
// message back, with the header metadata idempotency-replayed: true.
//
//	engine := core.New(memstore.New())
//	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(
//		auth, // yours: whatever WithScope reads
//		idemgrpc.UnaryServerInterceptor(engine, idemgrpc.WithScope(clientID)),
//	))
//
// [UnaryServerInterceptor] presents each guarded call to
// [core.Engine.Do]: leases, renewal, fencing, the store and the engine's
// options (core.WithLease, core.WithTTL, core.WithWaitForInFlight,
// core.WithFailOpen, core.WithMaxBodyBytes, core.WithHMACSecret, …) work as
// they do for HTTP; see docs/contract.md for the contract.
//
// # Scopes
//
// Without [WithScope] every client shares one key space: a client that
// guesses or reuses another client's key gets that client's stored
// response. In a service with more than one client, always scope keys by
// the authenticated principal (from the auth metadata an earlier
// interceptor checked, or the peer's certificate).
//
// Calls run through [core.Engine.Do], which has no native request object
// and never calls the engine's scope, skip or route-options functions
// ([core.WithKeyScope], [core.ScopeBy], [core.SkipBy],
// [core.RouteOptionsBy], …): an engine shared with an HTTP adapter keeps
// them for HTTP, and calls are scoped by [WithScope] (a function of the
// context and the full method name) instead; [WithMethods] chooses the
// guarded methods.
//
// # Keys and fingerprints
//
// The key is the idempotency-key metadata, parsed as the Idempotency-Key
// HTTP header is ([core.ParseKey]): a quoted string ("8e03…") or a bare
// token, one value only. Every unary method is guarded unless
// [WithMethods] names some; a guarded call without a key is refused unless
// [WithKeyRequired](false). The fingerprint covers the full method name and
// the request message in deterministic wire format, and a key belongs to a
// scope, not to a method: the same key on another method, or with another
// message, is refused.
//
// # Status codes
//
//	missing or invalid key          InvalidArgument
//	request over the body limit     InvalidArgument
//	key reused with another request FailedPrecondition
//	same key in flight              Aborted, with a google.rpc.RetryInfo detail
//	store unavailable               Unavailable (retry with the same key)
//	replay                          the stored response, or the stored status
//
// # Handler errors
//
// A handler's error is returned as it is. Whether it is stored follows
// the HTTP adapters' completion policy ([DefaultFailurePolicy],
// [WithFailurePolicy]): the codes a retry cannot change (InvalidArgument,
// NotFound, AlreadyExists, PermissionDenied, FailedPrecondition,
// OutOfRange, Unauthenticated — the 4xx of gRPC) are stored, and every
// retry gets the same status, message and details; the others (Internal,
// Unavailable, Unknown, DeadlineExceeded, Unimplemented, …) release the
// claim, so a retry runs the handler again. A handler overrides that for
// one call with [core.MarkApplied] (its side effect happened: the error is
// stored and replayed) or [core.MarkNotApplied] (nothing happened:
// released).
//
// # Stored results
//
// The engine stores one byte of kind, then protobuf wire format: 'm' and
// the response message, or 's' and a google.rpc.Status (an error of a
// stored code); an error the handler declared applied is stored as the
// engine stores any failure of [core.Engine.Do], its text carrying the same
// google.rpc.Status, so its replay has the same code, message and
// details. A replay decodes
// the message into the method's response type, found by its descriptor in
// [protoregistry.GlobalFiles] (generated code registers it; nothing to
// configure); a service written without generated code names its types
// with [WithResponse]. A response larger than the engine keeps
// (core.WithMaxResponseBytes) is delivered and stored without its body:
// its retries get DataLoss, never a second execution.
//
// Only unary methods are guarded, and only their response message and
// status are stored: header and trailer metadata the handler sets are sent
// on the first call, not replayed.
package idemgrpc
