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
// [idemhttp]; this package adds chi-specific scoping helpers. Functions of
// the request for [core.ScopeBy], [core.SkipBy] and [core.RouteOptionsBy]
// take the *http.Request. chi's route pattern
// (chi.RouteContext(r.Context()).RoutePattern()) is only complete once
// routing has ended, so where the middleware runs before it, decide by
// path or by a value set by an earlier middleware.
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

// URLParamScope scopes keys by a chi URL parameter, such as a tenant in
// /tenants/{tenant}/payments. Use it only where the parameter is
// authenticated upstream: a scope a client can choose freely isolates
// nothing.
func URLParamScope(name string) core.Option {
	return core.ScopeBy(func(r *http.Request) string { return chi.URLParam(r, name) })
}
