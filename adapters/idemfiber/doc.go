// Package idemfiber guards fiber (v2) handlers with idemkit: a request with
// an Idempotency-Key runs its handler once, and a retry with the same key
// and payload gets the stored response back byte for byte.
//
//	engine := core.New(memstore.New(), core.WithHeaderScope("X-Api-Key"))
//	app := fiber.New()
//	app.Use(recover.New())
//	app.Post("/payments", idemfiber.Middleware(engine), createPayment)
//
// [Middleware] is a thin translation of a [fiber.Ctx] to a [core.Exchange];
// every decision is the [core.Engine]'s, so the options are those of
// package core ([core.WithKeyScope] or [core.ScopeBy] for scopes,
// [core.WithKeyRequired], [core.WithCompletionPolicy], …).
//
// # Buffers
//
// fasthttp reuses request and response buffers once a handler returns, and
// fiber's strings (c.Method(), c.Path(), …) point into them unless the app
// is Immutable. The adapter therefore copies every byte that outlives the
// request: the method, path, query and header values it hands to the
// engine, and the captured status, headers and body, which are copied out
// of c.Response() before anything is stored. The request body is
// fingerprinted in place (the exchange implements [core.BodyBytes] with
// c.Body()), since the engine is done with it before the handler returns.
//
// # Compressed bodies
//
// c.Body() decompresses a body sent with Content-Encoding gzip, deflate or
// br, whole and without a limit, so a small gzip bomb would inflate to
// hundreds of megabytes before any size check. For such a body the adapter
// decodes the raw bytes itself, as c.Body() would (the codings in the order
// listed, up to the first it does not know), streaming, and the engine stops
// reading one byte past its body limit: a body that inflates past the limit
// gets 413 having cost about the limit in memory, and a malformed stream
// (an empty one included: every coding encodes even an empty body as some
// bytes) gets 400 (invalid-body) where c.Body() would have handed the
// handler the decoder's error text. The fingerprint is over the decoded body, which the
// handler, reading c.Body(), then sees. fiber's BodyLimit bounds the raw,
// compressed body. Requests the middleware passes through unguarded are
// left to fiber: there a handler's c.Body() still inflates without limit.
//
// # Streamed bodies
//
// With fiber's StreamRequestBody, a chunked body, or one longer than
// fasthttp reads before calling the handler, arrives as a stream, which
// c.Body() would read whole (past any limit) and, on a read error, replace
// by the error's text or the bytes received so far. The adapter hands the
// engine the stream instead: a body cut short or with a malformed chunk
// gets 400 (invalid-body) and stores nothing, a body over the limit is
// refused one byte past it, and the handler's c.Body() returns the bytes
// the engine read.
//
// A streamed body that is also compressed is decoded from the stream as
// the engine reads it, so the decoded body is refused one byte past the
// limit, and the compressed bytes read are kept for the handler, whose
// c.Body() decodes them as fiber does. Those are bounded too: they may run
// at most 256 KiB plus an eighth ahead of the decoded bytes (the decoders'
// read-ahead, and any encoder's overhead, are far less), so a body of empty
// deflate blocks or gzip members, which decodes to nothing, gets 413 after
// 256 KiB, and at most the limit plus an eighth plus 256 KiB of compressed
// bytes are ever held. (fasthttp does not apply fiber's BodyLimit to a
// chunked streamed body.)
//
// # Capture
//
// Before the rest of the chain runs, whatever outer middleware already put
// in c.Response() (a request ID, CORS headers) is set aside and the
// response cleared, so only the handler's own output is captured and
// stored; afterwards the outer response is put back (also on panic) and the
// engine's final response is written over it: its status, every value of
// every header (a stored header replaces the outer value of the same name)
// and its body. Content-Length is left to fasthttp.
//
// A handler's returned error is rendered inside the capture with the app's
// ErrorHandler, as fiber itself would after the chain, so it is a response
// like any other and follows the completion policy: a fiber.NewError(400)
// is stored and replayed, a 5xx error releases the claim. The middleware
// then returns nil. Unguarded requests return the handler's error
// unchanged. A handler that hijacks the connection (c.Context().Hijack)
// makes the request non-replayable; its claim is released.
//
// Register fiber's recover middleware before this one: a panicking handler
// releases the claim and the panic continues to the recover middleware.
//
// # Context
//
// The exchange's context is c.UserContext(): fasthttp has no per-request
// context that is cancelled when the client goes away, so a guarded request
// is never treated as cancelled unless you set a cancellable context with
// c.SetUserContext before the middleware.
//
// Without a scope every client shares one key space: one client that
// guesses or reuses another's key receives the other's response. Scope keys
// by the authenticated client, tenant or API key.
//
// The request's native object ([core.Exchange.Native]) is its *fiber.Ctx: the
// functions given to [core.ScopeBy], [core.SkipBy] and [core.RouteOptionsBy]
// take one, for example
//
//	core.ScopeBy(func(c *fiber.Ctx) string { return c.Locals("tenant").(string) })
//
// An engine whose functions take another framework's type refuses every
// guarded request with 500 (problem code misconfigured).
package idemfiber
