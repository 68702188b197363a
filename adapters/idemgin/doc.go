// Package idemgin guards gin handlers with idemkit: a request with an
// Idempotency-Key runs its handlers once, and a retry with the same key and
// payload gets the stored response back byte for byte.
//
//	engine := core.New(memstore.New(), core.WithHeaderScope("X-Api-Key"))
//	r := gin.New()
//	r.Use(gin.Recovery())
//	r.POST("/payments", idemgin.Middleware(engine), createPayment)
//
// [Middleware] is a thin translation of a [gin.Context] to a
// [core.Exchange]; every decision is the [core.Engine]'s, so the options are
// those of package core ([core.WithKeyScope] or [core.ScopeBy] for scopes,
// [core.WithKeyRequired], [core.WithCompletionPolicy], …).
//
// While the rest of the chain runs, c.Writer is replaced by a buffering
// [gin.ResponseWriter]: c.JSON, c.Data, c.String, c.Status with
// c.Writer.Write, c.AbortWithStatus… all land in the buffer, which is stored
// and only then written to the client, so a client that saw a response gets
// the same one on every retry. Flush has no effect on a guarded request;
// Hijack hands over the connection and makes the request non-replayable (the
// claim is released). When the engine answers by itself (a replay or a
// problem+json refusal) the chain is aborted with [gin.Context.Abort], so
// later handlers do not run.
//
// Register [gin.Recovery] (or your own recovery) before the middleware: a
// panicking handler releases the claim, and the panic continues to the
// recovery handler, which then writes to the real response writer.
// Unguarded requests (other methods, or no key where keys are optional) go
// through c.Next untouched.
//
// Without a scope every client shares one key space: one client that
// guesses or reuses another's key receives the other's response. Scope keys
// by the authenticated client, tenant or API key.
//
// The request's native object ([core.Exchange.Native]) is its *gin.Context: the
// functions given to [core.ScopeBy], [core.SkipBy] and [core.RouteOptionsBy]
// take one, for example
//
//	core.ScopeBy(func(c *gin.Context) string { return c.GetString("tenant") })
//
// An engine whose functions take another framework's type refuses every
// guarded request with 500 (problem code misconfigured).
package idemgin
