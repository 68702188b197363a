package core

import (
	"net/http"
	"strconv"
	"time"
)

// SkipFunc reports whether a request is left unguarded: it passes straight
// to the handler ([Exchange.Next]) and is observed as
// [OutcomePassThrough]. It is echo's Skipper and fiber's Next convention;
// [SkipBy] builds one that reads the framework's own request type.
type SkipFunc func(x Exchange) bool

// WithSkip sets a predicate, called once for each request with a guarded
// method before anything else is read, that leaves the requests for which
// it returns true unguarded. Requests of other methods pass through
// without calling it; [Engine.Do] never calls it. A nil f is the default:
// no request is skipped.
func WithSkip(f SkipFunc) Option {
	return func(c *config) {
		c.skip = nil
		if f != nil {
			c.skip = func(x Exchange) (bool, error) { return f(x), nil }
		}
	}
}

// KeyRequirement overrides [WithKeyRequired] for one request; see
// [RouteOptions].
type KeyRequirement uint8

// The key requirements of [RouteOptions].
const (
	// KeyRequirementDefault follows the engine's [WithKeyRequired].
	KeyRequirementDefault KeyRequirement = iota
	// KeyRequirementRequired refuses a request without a key (400).
	KeyRequirementRequired
	// KeyRequirementOptional passes a request without a key through,
	// unguarded.
	KeyRequirementOptional
)

// RouteOptions are the settings a [RouteOptionsFunc] chooses for one
// request. The zero value keeps every engine setting.
type RouteOptions struct {
	// TTL, when positive, replaces [WithTTL] for the response this request
	// stores.
	TTL time.Duration
	// KeyRequired replaces [WithKeyRequired] for this request, unless it
	// is KeyRequirementDefault.
	KeyRequired KeyRequirement
}

// RouteOptionsFunc chooses the [RouteOptions] of a request, typically by
// its route (a path prefix, a router's route pattern read through
// [Exchange.Native]). The engine calls it once per guarded request that is
// not skipped, before reading the key.
type RouteOptionsFunc func(x Exchange) RouteOptions

// WithRouteOptions lets one engine serve routes with different retention
// and key requirements: f is consulted once per guarded request. Without
// it (the default) the engine's own settings apply and nothing is called.
// [Engine.Do] never calls it: Do's calls use the engine's TTL. A nil f is
// the default. [RouteOptionsBy] builds one that reads the framework's own
// request type.
func WithRouteOptions(f RouteOptionsFunc) Option {
	return func(c *config) {
		c.route = nil
		if f != nil {
			c.route = func(x Exchange) (RouteOptions, error) { return f(x), nil }
		}
	}
}

// ProblemRenderer renders a refusal of the engine — 400 missing or invalid
// key or unreadable body, 413, 422 key reused, 409 in flight, 503 store
// unavailable, 500 misconfigured — in an application's own error format. p is the
// problem+json the engine would send (its Code is stable: see the Code
// constants); retryAfter is the Retry-After the engine sends with it (0:
// none). x is the request, for a request ID or content negotiation; it
// must only be read.
//
// The renderer chooses the body and the header; the status is always
// p.Status, and the engine itself sets Cache-Control: no-store and, when
// retryAfter is positive, Retry-After (in whole seconds, rounded up),
// replacing any the renderer set there: a client's retry logic depends on
// them.
// A nil result sends the default problem+json. [Engine.Do] sends no HTTP
// response and never calls it. The returned Response is
// not modified, and is not kept once sent, so a renderer may return a
// shared one.
type ProblemRenderer func(x Exchange, p Problem, retryAfter time.Duration) *Response

// WithProblemRenderer replaces the problem+json body of every refusal with
// what r renders; see [ProblemRenderer]. Without it (the default) the
// engine sends problem+json responses built once, in [New]; so does a
// nil r.
func WithProblemRenderer(r ProblemRenderer) Option { return func(c *config) { c.renderer = r } }

// sendProblem sends the refusal of kind (detail replacing the default detail when
// not empty, retryAfter 0 for none) and returns its status: the prebuilt
// problem+json, or what the configured renderer makes of it.
func (e *Engine) sendProblem(x Exchange, kind problemKind, detail string, retryAfter time.Duration) int {
	if _, do := x.(*doExchange); e.cfg.renderer != nil && !do {
		if resp := e.renderProblem(x, kind, detail, retryAfter); resp != nil {
			x.Send(resp)
			return resp.Status
		}
	}
	resp := e.problemResponse(kind, detail, retryAfter)
	x.Send(resp)
	return resp.Status
}

// renderProblem calls the renderer and fixes what the contract requires
// in a copy of its answer: the status, Cache-Control and Retry-After. It
// returns nil when the renderer answers nil.
func (e *Engine) renderProblem(x Exchange, kind problemKind, detail string, retryAfter time.Duration) *Response {
	pd := problemDefs[kind]
	if detail == "" {
		detail = pd.detail
	}
	p := Problem{Type: e.cfg.problemBase + pd.code, Title: pd.title, Status: pd.status, Detail: detail, Code: pd.code}
	r := e.cfg.renderer(x, p, retryAfter)
	if r == nil {
		return nil
	}
	out := *r
	out.Status = pd.status
	extra := make(http.Header, len(r.Extra)+2)
	for k, v := range r.Extra {
		extra[k] = v
	}
	extra["Cache-Control"] = valNoStore
	if retryAfter > 0 {
		extra["Retry-After"] = []string{strconv.FormatInt(retryAfterSecs(retryAfter), 10)}
	}
	out.Extra = extra
	return &out
}
