// Package idemchi guards chi (github.com/go-chi/chi/v5) routes with
// idemkit. It is middleware in chi's own shape, usable with r.Use on a
// router, a Group or a Route:
//
//	engine := core.New(memstore.New(), core.WithHeaderScope("X-Api-Key"))
//	r := chi.NewRouter()
//	r.Group(func(r chi.Router) {
//		r.Use(idemchi.Middleware(engine))
//		r.Post("/payments", createPayment)
//	})
//
// chi handlers are net/http handlers, so the translation is the one of
// [idemhttp]; this package adds chi-specific scoping helpers.
package idemchi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/idemkit/idemkit/adapters/idemhttp"
	"github.com/idemkit/idemkit/core"
)

// Middleware returns chi middleware that guards requests through engine.
func Middleware(engine *core.Engine) func(http.Handler) http.Handler {
	if engine == nil {
		panic("idemchi: Middleware: nil Engine")
	}
	return idemhttp.Middleware(engine)
}

// Scope returns a [core.Option] that scopes keys with f, called with the
// request; see [core.KeyScopeFunc].
func Scope(f func(r *http.Request) string) core.Option { return idemhttp.Scope(f) }

// URLParamScope scopes keys by a chi URL parameter, such as a tenant in
// /tenants/{tenant}/payments. Use it only where the parameter is
// authenticated upstream: a scope a client can choose freely isolates
// nothing.
func URLParamScope(name string) core.Option {
	return idemhttp.Scope(func(r *http.Request) string { return chi.URLParam(r, name) })
}
