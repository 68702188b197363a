package core

import (
	"context"
	"sync/atomic"
)

// heldClaim is what a handler's context carries while it runs under a
// claim: the storage key, the fencing token, and the outcome the handler
// declared, if any.
type heldClaim struct {
	key      string
	token    Token
	declared atomic.Uint32 // a declaration
}

// Declarations of a handler's outcome, overriding the completion policy.
const (
	declaredNone uint32 = iota
	declaredApplied
	declaredNotApplied
)

type heldClaimKey struct{}

func withHeldClaim(ctx context.Context, hc *heldClaim) context.Context {
	return context.WithValue(ctx, heldClaimKey{}, hc)
}

func heldClaimFrom(ctx context.Context) *heldClaim {
	hc, _ := ctx.Value(heldClaimKey{}).(*heldClaim)
	return hc
}

// HeldClaim returns the storage key and the fencing token of the claim
// under which the handler with context ctx runs, and whether there is one.
// A handler can make its own writes conditional on still holding the claim
// (a store's compare-and-set on the token), or hand both to a store that
// completes the record in the handler's own transaction.
func HeldClaim(ctx context.Context) (key string, token Token, ok bool) {
	if hc := heldClaimFrom(ctx); hc != nil {
		return hc.key, hc.token, true
	}
	return "", "", false
}

// MarkApplied declares that the request's side effect happened, whatever
// the handler answers: its response is stored and replayed even when the
// completion policy would release it (a 5xx after the charge went
// through). ctx is the handler's request context; MarkApplied reports
// false when ctx carries no claim (an unguarded request). The last
// declaration of a request counts.
func MarkApplied(ctx context.Context) bool { return declare(ctx, declaredApplied) }

// MarkNotApplied declares that the request had no effect, whatever the
// handler answers: the claim is released, so a retry runs the handler
// again, even for a response the completion policy would store (a 2xx
// that reports a rejected operation, say). It reports false when ctx
// carries no claim. The last declaration of a request counts.
func MarkNotApplied(ctx context.Context) bool { return declare(ctx, declaredNotApplied) }

func declare(ctx context.Context, d uint32) bool {
	hc := heldClaimFrom(ctx)
	if hc == nil {
		return false
	}
	hc.declared.Store(d)
	return true
}
