// Package httpx is the net/http plumbing that idemkit's adapters share:
// the request path and header values reported to the engine
// ([EscapedPath], [HeaderValues]), the request copy a guarded handler sees
// ([RequestWithBody]), the writer that captures its response ([Recorder])
// and the writing of a stored or refused response ([WriteResponse]).
//
// It lives under an internal path so that only idemkit's own modules
// (idemhttp, idemgin, idemecho, bench) can import it: it is not part of
// any adapter's API, and it changes with the adapters. Its module is
// released in lockstep with the others (RELEASING.md).
package httpx
