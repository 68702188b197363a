package core

import (
	"context"
	"io"
)

// Exchange is one HTTP request and its response as an adapter presents them
// to the [Engine]. Adapters (idemhttp, idemchi, idemgin, idemecho,
// idemfiber) implement it by translating their framework's request and
// response; all decisions are the Engine's. An Exchange is used by one
// goroutine, for one request, and never after [Engine.Serve] returns.
type Exchange interface {
	// Context is the request's context.
	Context() context.Context
	// Method is the request method, upper case.
	Method() string
	// Path is the request path as received, in its escaped form.
	Path() string
	// RawQuery is the query string without '?'.
	RawQuery() string
	// Header returns every value of the request header field name (looked up
	// case-insensitively), one element per field line as received.
	Header(name string) []string
	// Body returns a reader of the request body and its declared length
	// (-1 when unknown). The Engine reads at most the body limit plus one byte.
	Body() (io.Reader, int64)
	// Native returns the framework's own request object, such as
	// *http.Request, *gin.Context, echo.Context or *fiber.Ctx, for user
	// functions such as a [KeyScopeFunc].
	Native() any

	// Next runs the downstream handler unguarded: it reads the original body
	// and writes straight to the client.
	Next()
	// Capture runs the downstream handler with ctx as its request context
	// (the request's own, carrying the claim the handler runs under: see
	// [HeldClaim], [MarkApplied]) and body as its request body (the whole
	// body, with the matching length), buffering the response instead of
	// sending it, and returns it. wrote reports whether the handler wrote
	// anything at all — a status, a body byte, a flush; headers set without
	// a write do not count — which decides whether a handler whose request
	// was cancelled ran: one that wrote nothing is released. An adapter
	// whose framework never cancels a request may always report true. The
	// returned Response must not alias memory the framework reuses after
	// the request; it is read-only from then on (the Engine and the stores
	// never modify it), so it may share a header map with other captured
	// responses. Capture returns an error wrapping [ErrNotReplayable] if
	// the handler took over the connection. A panic in the handler
	// propagates.
	Capture(ctx context.Context, body []byte) (resp *Response, wrote bool, err error)
	// Send writes resp to the client: status, every header value of
	// resp.Header, then of resp.Extra (replacing fields of the same name),
	// and body. It must not modify resp, its header maps, value slices or
	// body: the Engine shares prebuilt problem responses between requests,
	// and a store may share a replayed response between them. Nor may it
	// keep resp once it returns: the Engine reuses the Response it passes
	// for a replay.
	Send(resp *Response)
}

// BodyBytes is an optional interface of an [Exchange] whose framework
// already holds the whole request body in memory (fiber, for instance). The
// Engine then fingerprints the slice in place instead of reading a copy;
// the slice must stay valid until [Engine.Serve] returns. A nil slice means
// the body is not held as the handler will see it (a compressed body that
// the framework decodes on demand, say): the Engine then reads
// [Exchange.Body], at most the body limit plus one byte.
type BodyBytes interface {
	BodyBytes() []byte
}
