// Package idemhttp guards net/http handlers with idemkit: a request with an
// Idempotency-Key runs its handler once, and a retry with the same key and
// payload gets the stored response back byte for byte.
//
//	engine := core.New(memstore.New(), core.WithHeaderScope("X-Api-Key"))
//	mux := http.NewServeMux()
//	mux.Handle("POST /payments", idemhttp.Middleware(engine)(payments))
//
// The handler's response is buffered while it runs, stored, and only then
// sent: a client that saw a response gets the same one on every retry.
// Streaming (Flush) therefore has no effect on guarded requests. The
// writer a guarded handler gets implements [http.Flusher], [http.Hijacker]
// (hijacking makes the request non-replayable and releases its claim) and
// Unwrap, so that [http.ResponseController] reaches the connection for
// deadlines; it does not implement io.ReaderFrom or [http.Pusher].
// Unguarded requests (other methods, or no key where keys are optional)
// reach the handler untouched.
//
// The request's native object ([core.Exchange.Native]) is its
// *http.Request: the functions given to [core.ScopeBy], [core.SkipBy] and
// [core.RouteOptionsBy] take one, for example
//
//	core.ScopeBy(func(r *http.Request) string { return r.Header.Get("X-Api-Key") })
//
// An engine whose functions take another framework's type refuses every
// guarded request with 500 (problem code misconfigured).
package idemhttp
