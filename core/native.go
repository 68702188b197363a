package core

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// ErrNativeType reports a request whose native object ([Exchange.Native])
// is not of the type a function given to [ScopeBy], [SkipBy] or
// [RouteOptionsBy] reads: the engine is mounted in another adapter than
// the function was written for. The engine refuses such a request with
// 500 (problem code misconfigured), reports [OutcomeMisconfigured] with an
// error wrapping ErrNativeType, and does not run the handler.
var ErrNativeType = errors.New("core: request of an unexpected native type")

// ScopeBy returns an [Option] that scopes keys ([WithKeyScope]) with f,
// called with the request's native object ([Exchange.Native]) as a T:
// *http.Request under idemhttp and idemchi, *gin.Context under idemgin,
// echo.Context under idemecho, *fiber.Ctx under idemfiber. T is inferred
// from f:
//
//	core.ScopeBy(func(c *gin.Context) string { return c.GetString("tenant") })
//
// A request whose native object is not a T — the engine mounted in
// another adapter than f was written for — is refused with 500 (problem
// code misconfigured, [ErrNativeType]) and the handler does not run: a
// scope that cannot be read would put every client in one key space. f is
// called where a [KeyScopeFunc] is: once the key and the body are read, so
// a request without a key is refused (or passed through) as it would be
// without a scope. [Engine.Do] (and so the job and gRPC adapters) never calls a scope
// function: a [Call] carries its scope.
func ScopeBy[T any](f func(T) string) Option {
	if f == nil {
		return invalidOption("core: ScopeBy(nil): want a function")
	}
	scope := byNative("core.ScopeBy", f)
	return func(c *config) { c.scope = scope }
}

// SkipBy returns an [Option] that leaves the requests for which f returns
// true unguarded ([WithSkip]), f being called with the request's native
// object as a T, as in [ScopeBy] (echo's Skipper and fiber's Next
// convention):
//
//	core.SkipBy(func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/webhooks/") })
//
// A request of a guarded method whose native object is not a T is refused
// with 500 (problem code misconfigured, [ErrNativeType]) and the handler
// does not run: an unreadable predicate neither skips nor guards silently.
func SkipBy[T any](f func(T) bool) Option {
	if f == nil {
		return invalidOption("core: SkipBy(nil): want a function")
	}
	skip := byNative("core.SkipBy", f)
	return func(c *config) { c.skip = skip }
}

// RouteOptionsBy returns an [Option] that chooses the [RouteOptions] of
// each request ([WithRouteOptions]) with f, called with the request's
// native object as a T, as in [ScopeBy]:
//
//	core.RouteOptionsBy(func(c echo.Context) core.RouteOptions { ... c.Path() ... })
//
// A request whose native object is not a T is refused with 500 (problem
// code misconfigured, [ErrNativeType]) and the handler does not run,
// rather than served with the engine's defaults.
func RouteOptionsBy[T any](f func(T) RouteOptions) Option {
	if f == nil {
		return invalidOption("core: RouteOptionsBy(nil): want a function")
	}
	route := byNative("core.RouteOptionsBy", f)
	return func(c *config) { c.route = route }
}

// byNative calls f with an exchange's native object as a T, or fails with
// an error wrapping [ErrNativeType] that names option when the object is
// not a T.
func byNative[T, R any](option string, f func(T) R) func(Exchange) (R, error) {
	want := typeName[T]()
	return func(x Exchange) (R, error) {
		n, ok := x.Native().(T)
		if !ok {
			var zero R
			return zero, nativeTypeError(option, want, x.Native())
		}
		return f(n), nil
	}
}

// typeName is the Go name of T, as %T prints it ("*http.Request",
// "echo.Context").
func typeName[T any]() string { return reflect.TypeFor[T]().String() }

func nativeTypeError(option, want string, got any) error {
	if got == nil {
		return fmt.Errorf("%w: %s reads a %s, the request has no native object", ErrNativeType, option, want)
	}
	return fmt.Errorf("%w: %s reads a %s, the request's native object is a %T", ErrNativeType, option, want, got)
}

// misconfiguredDetail turns an error wrapping [ErrNativeType] into a
// problem detail: it names the option and the types, never the key or
// the body.
func misconfiguredDetail(err error) string {
	reason, _ := strings.CutPrefix(err.Error(), ErrNativeType.Error()+": ")
	return "The idempotency middleware is misconfigured: " + reason + "."
}
