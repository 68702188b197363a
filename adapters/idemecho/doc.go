// Package idemecho guards echo (v4) handlers with idemkit: a request with
// an Idempotency-Key runs its handler once, and a retry with the same key
// and payload gets the stored response back byte for byte.
//
//	engine := core.New(memstore.New(), core.WithHeaderScope("X-Api-Key"))
//	e := echo.New()
//	e.Use(middleware.Recover())
//	e.POST("/payments", createPayment, idemecho.Middleware(engine))
//
// [Middleware] is a thin translation of an [echo.Context] to a
// [core.Exchange]; every decision is the [core.Engine]'s, so the options are
// those of package core ([core.WithKeyScope] or [core.ScopeBy] for scopes,
// [core.WithKeyRequired], [core.WithCompletionPolicy], …).
//
// # Capture
//
// While the rest of the chain runs, the context holds a fresh
// [echo.Response] over a buffering writer (the original is put back
// afterwards, also on panic). The chain's writes, its own Before and After
// hooks, and the Committed, Status and Size bookkeeping all happen on that
// response; the original one is written exactly once, when the engine sends
// the final response, so hooks registered by outer middleware run once and
// loggers outside see the real status and size.
//
// # Handler errors
//
// echo renders a returned error after the middleware has regained control.
// That would be too late to store it, so a guarded request's error is
// rendered inside the capture, by calling [echo.Context.Error] (your
// HTTPErrorHandler) right after the handler returns, and the middleware then
// returns nil. A returned error is therefore a response like any other and
// follows the completion policy: echo.NewHTTPError(http.StatusBadRequest) is
// stored and replayed; a plain error (rendered as 500 by the default
// handler) or a 5xx HTTPError releases the claim so a retry runs the
// handler again. A handler that already wrote its response and also
// returns an error keeps the written response (echo's default error handler
// ignores errors once the response is committed). Unguarded requests
// return the handler's error unchanged.
//
// Flush has no effect on a guarded request; Hijack hands over the connection
// and makes the request non-replayable (the claim is released). Register
// middleware.Recover before this middleware: a panicking handler releases
// the claim and the panic continues to the recovery middleware.
//
// Without a scope every client shares one key space: one client that
// guesses or reuses another's key receives the other's response. Scope keys
// by the authenticated client, tenant or API key.
//
// The request's native object ([core.Exchange.Native]) is its echo.Context: the
// functions given to [core.ScopeBy], [core.SkipBy] and [core.RouteOptionsBy]
// take one, for example
//
//	core.ScopeBy(func(c echo.Context) string { return c.Get("tenant").(string) })
//
// An engine whose functions take another framework's type refuses every
// guarded request with 500 (problem code misconfigured).
package idemecho
