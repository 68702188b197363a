package core

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Defaults of the options below.
const (
	DefaultTTL              = 24 * time.Hour
	DefaultLease            = 30 * time.Second
	DefaultMaxKeyLength     = 255
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxResponseBytes = 1 << 20
	DefaultStoreTimeout     = 0 // no engine-side bound: the stores bound their own calls
	DefaultRetryAfter       = time.Second
	DefaultCompleteWait     = time.Second
	DefaultReplayHeader     = "Idempotency-Replayed"
	DefaultProblemTypeBase  = "https://github.com/idemkit/idemkit/blob/main/docs/problems.md#"
)

// DefaultMethods are the methods guarded unless [WithMethods] says otherwise.
var DefaultMethods = []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// KeyScopeFunc returns the scope of a request: the authenticated client,
// tenant or API key. The storage key is derived from (scope, key), so two
// clients that pick the same key never see each other's responses. Without
// a scope function every client shares one key space: see the package docs.
// The engine calls it once per guarded request, before the claim.
type KeyScopeFunc func(x Exchange) string

// FingerprintFunc computes the fingerprint of a request from the exchange
// and its whole body. It runs once, before the handler. [DefaultFingerprint]
// is the default.
type FingerprintFunc func(x Exchange, body []byte) Fingerprint

// CompletionPolicy decides whether a handler's response is stored (true) or
// the claim released so a retry runs the handler again (false). It must not
// modify resp: a captured response is read-only, and an adapter may share
// its header map between responses.
type CompletionPolicy func(resp *Response) bool

// DefaultCompletionPolicy stores every response with a status below 500.
func DefaultCompletionPolicy(resp *Response) bool { return resp.Status < 500 }

// HeaderFilter reports whether a response header field (canonical name) is
// stored and replayed. Hop-by-hop fields are never stored, whatever it says.
type HeaderFilter func(name string) bool

// DefaultHeaderFilter stores every field except Set-Cookie.
func DefaultHeaderFilter(name string) bool { return name != "Set-Cookie" }

// Option configures an [Engine].
type Option func(*config)

type config struct {
	methods      []string // upper case, no repeats: a scan of a few is cheaper than a map lookup
	required     bool
	strict       bool
	maxKeyLen    int
	ttl          time.Duration
	lease        time.Duration
	maxBody      int64
	maxResponse  int
	headerFilter HeaderFilter
	replayHeader string
	wait         time.Duration
	failOpen     bool
	problemBase  string
	fingerprint  FingerprintFunc
	scope        func(Exchange) (string, error) // WithKeyScope's, or ScopeBy's (which may fail)
	secret       []byte
	policy       CompletionPolicy
	observer     Observer
	storeTimeout time.Duration
	retryAfter   time.Duration
	completeWait time.Duration
	transactions bool
	skip         func(Exchange) (bool, error)         // WithSkip's, or SkipBy's
	route        func(Exchange) (RouteOptions, error) // WithRouteOptions's, or RouteOptionsBy's
	renderer     ProblemRenderer

	// invalid holds the panic message of an option whose bad value the
	// config does not keep (an empty header name, a nil function); New
	// panics with the first.
	invalid string

	// unauthenticatedUntil: records without a MAC replay until then.
	unauthenticatedUntil time.Time
}

func defaultConfig() config {
	c := config{
		methods:      slices.Clone(DefaultMethods),
		required:     true,
		maxKeyLen:    DefaultMaxKeyLength,
		ttl:          DefaultTTL,
		lease:        DefaultLease,
		maxBody:      DefaultMaxBodyBytes,
		maxResponse:  DefaultMaxResponseBytes,
		headerFilter: DefaultHeaderFilter,
		replayHeader: DefaultReplayHeader,
		problemBase:  DefaultProblemTypeBase,
		fingerprint:  DefaultFingerprint,
		policy:       DefaultCompletionPolicy,
		storeTimeout: DefaultStoreTimeout,
		retryAfter:   DefaultRetryAfter,
		completeWait: DefaultCompleteWait,
	}
	return c
}

// WithMethods sets the guarded methods [POST, PUT, PATCH, DELETE]; requests
// with other methods pass straight through. No method at all, or an empty
// one, is invalid: New panics.
func WithMethods(methods ...string) Option {
	if len(methods) == 0 {
		return invalidOption("core: WithMethods(): want at least one method")
	}
	if slices.Contains(methods, "") {
		return invalidOption(fmt.Sprintf("core: WithMethods(%q): want no empty method", methods))
	}
	return func(c *config) {
		c.methods = make([]string, 0, len(methods))
		for _, m := range methods {
			if m = strings.ToUpper(m); !slices.Contains(c.methods, m) {
				c.methods = append(c.methods, m)
			}
		}
	}
}

// WithKeyRequired sets whether a guarded request without a key is refused
// with 400 (true, the default) or passes through unguarded (false).
func WithKeyRequired(required bool) Option { return func(c *config) { c.required = required } }

// WithStrictKeys accepts only the Structured Field String form of the key
// ("quoted"); bare tokens are refused with 400. Off by default.
func WithStrictKeys(strict bool) Option { return func(c *config) { c.strict = strict } }

// WithMaxKeyLength sets the longest accepted key in characters [255]. n
// must be positive.
func WithMaxKeyLength(n int) Option { return func(c *config) { c.maxKeyLen = n } }

// WithTTL sets how long completed responses are kept [24h]. d must be
// positive.
func WithTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithLease sets the lease of a claim [30s]. It is renewed in the background
// every third of its length while the handler runs. d must be positive.
func WithLease(d time.Duration) Option { return func(c *config) { c.lease = d } }

// WithMaxBodyBytes sets the largest accepted request body [1 MiB]; larger
// bodies are refused with 413 before the handler runs. n must not be
// negative; 0 accepts only empty bodies.
func WithMaxBodyBytes(n int64) Option { return func(c *config) { c.maxBody = n } }

// WithMaxResponseBytes sets the largest response body that is stored
// [1 MiB]. Larger bodies are delivered, and stored without their body. n
// must not be negative; 0 stores no response body.
func WithMaxResponseBytes(n int) Option { return func(c *config) { c.maxResponse = n } }

// WithHeaderFilter sets which response headers are stored and replayed
// [all but Set-Cookie; hop-by-hop fields never]. f must not be nil.
func WithHeaderFilter(f HeaderFilter) Option { return func(c *config) { c.headerFilter = f } }

// WithReplayHeader sets the response header that marks a replay
// [Idempotency-Replayed]; its value is "true". name must be a valid
// header field name (not empty).
func WithReplayHeader(name string) Option {
	if !validHeaderName(name) {
		return invalidOption(fmt.Sprintf("core: WithReplayHeader(%q): want a header field name", name))
	}
	return func(c *config) { c.replayHeader = http.CanonicalHeaderKey(name) }
}

// validHeaderName reports whether name is a field name (an RFC 9110 token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(name[i])) &&
			!('0' <= name[i] && name[i] <= '9' || 'a' <= name[i] && name[i] <= 'z' || 'A' <= name[i] && name[i] <= 'Z') {
			return false
		}
	}
	return true
}

// WithWaitForInFlight makes a request that finds its key in flight wait up to
// d for the result and replay it, instead of answering 409 at once [0:
// off]. d must not be negative.
func WithWaitForInFlight(d time.Duration) Option { return func(c *config) { c.wait = d } }

// WithFailOpen runs the handler unguarded when the store is unavailable,
// instead of answering 503 [off: fail closed]. A retry during an outage may
// then run the handler twice.
func WithFailOpen(failOpen bool) Option { return func(c *config) { c.failOpen = failOpen } }

// WithProblemTypeBase sets the URI prefix of the problem+json type member;
// the error code is appended.
func WithProblemTypeBase(base string) Option { return func(c *config) { c.problemBase = base } }

// WithFingerprint replaces [DefaultFingerprint], for example to ignore a
// volatile field of the body. f must not be nil.
func WithFingerprint(f FingerprintFunc) Option { return func(c *config) { c.fingerprint = f } }

// WithKeyScope sets the scope function; see [KeyScopeFunc]. A nil f is
// the default: no scope, one key space for every client. [ScopeBy] builds
// one that reads the framework's own request type.
func WithKeyScope(f KeyScopeFunc) Option {
	return func(c *config) {
		c.scope = nil
		if f != nil {
			c.scope = func(x Exchange) (string, error) { return f(x), nil }
		}
	}
}

// WithHeaderScope scopes keys by the value of a request header, such as an
// API key header. A request without that header gets the empty scope. An
// empty name is invalid: New panics.
func WithHeaderScope(name string) Option {
	if name == "" {
		return invalidOption(`core: WithHeaderScope(""): want a header name`)
	}
	return WithKeyScope(func(x Exchange) string {
		if v := x.Header(name); len(v) > 0 {
			return v[0]
		}
		return ""
	})
}

// invalidOption is an option whose value New refuses, with msg.
func invalidOption(msg string) Option {
	return func(c *config) {
		if c.invalid == "" {
			c.invalid = msg
		}
	}
}

// WithHMACSecret derives storage keys with HMAC-SHA-256 under secret
// instead of plain SHA-256, so that keys in a store dump cannot be tested
// against guesses without the secret. It also authenticates stored
// records: each carries a MAC ([RecordMACHeader]) bound to its storage key
// and fingerprint, under a key derived from secret, and a record without a
// valid one is refused as corrupt instead of replayed (see [Discarder]).
// An empty secret is invalid (New panics): a secret read from an unset
// variable would otherwise leave keys unkeyed without a word. The secret
// never appears in a panic message.
func WithHMACSecret(secret []byte) Option {
	if len(secret) == 0 {
		return invalidOption("core: WithHMACSecret(empty secret): want at least one byte")
	}
	return func(c *config) { c.secret = append([]byte(nil), secret...) }
}

// WithUnauthenticatedRecordsUntil eases an upgrade under [WithHMACSecret]:
// until t, a record stored without a MAC — by a version of idemkit before
// record authentication, under the same secret — is replayed (validated
// and filtered like any record) instead of refused, so that retries of
// requests served before the upgrade are not run again. A record with a
// wrong MAC is refused at any time. Set t to the upgrade's end plus the
// retention (WithTTL); until then, a record forged without a MAC is
// accepted as it was before the upgrade. Without a secret it has no
// effect.
func WithUnauthenticatedRecordsUntil(t time.Time) Option {
	return func(c *config) { c.unauthenticatedUntil = t }
}

// WithCompletionPolicy replaces [DefaultCompletionPolicy]. p must not be
// nil.
func WithCompletionPolicy(p CompletionPolicy) Option { return func(c *config) { c.policy = p } }

// WithObserver sets the hook that sees every decision; see [Observer]. A
// nil o is the default: nothing is observed.
func WithObserver(o Observer) Option { return func(c *config) { c.observer = o } }

// WithStoreTimeout bounds every store call by a context deadline of d; a
// call that runs out counts as the store being unavailable (503). The
// default, 0, sets no engine-side deadline: the request's own context still
// applies, and the stores bound their calls themselves, so a hung backend
// still ends in 503 — pgxstore gives every call without a deadline its own
// (pgxstore.WithTimeout, 5 s by default), so does redisstore
// (redisstore.WithTimeout, 5 s by default), memstore never blocks. A
// user-written Store should do the same, or the engine should be given a
// timeout here. Without one the engine saves two timers and their context
// allocations per request, a measurable share of the memstore path (see
// docs/performance.md). d must not be negative. Renewals are always bounded
// by a third of the lease.
func WithStoreTimeout(d time.Duration) Option { return func(c *config) { c.storeTimeout = d } }

// WithRetryAfter sets the Retry-After sent with 503 responses [1s],
// rounded up to whole seconds. d must be positive.
func WithRetryAfter(d time.Duration) Option { return func(c *config) { c.retryAfter = d } }

// WithCompleteWait sets how long a request whose handler has run waits for
// its response to be stored [1s] while the store fails or does not answer.
// Past that the client gets 503 store-unavailable, telling it to retry with
// the same key, and storing goes on in the background — renewing the claim
// whenever the store answers — until it succeeds or one lease has passed.
// Meanwhile duplicates get 409, and a retry after the response is stored
// gets it replayed: a store outage shorter than the lease loses no
// response. Past the lease the failure is reported to the observer
// ([EventCompletionLost]) and a retry may run the handler again.
// [Engine.Shutdown] waits for that background work. d must not be
// negative; 0 hands storing to the background at the first failure.
func WithCompleteWait(d time.Duration) Option { return func(c *config) { c.completeWait = d } }

// validate returns the panic message of the first invalid option value,
// or "" when every value is valid. The messages name the option and the
// value, as memstore's do.
func (c *config) validate() string {
	switch {
	case c.invalid != "":
		return c.invalid
	case c.ttl <= 0:
		return fmt.Sprintf("core: WithTTL(%v): want a positive duration", c.ttl)
	case c.lease <= 0:
		return fmt.Sprintf("core: WithLease(%v): want a positive duration", c.lease)
	case c.maxKeyLen <= 0:
		return fmt.Sprintf("core: WithMaxKeyLength(%d): want a positive length", c.maxKeyLen)
	case c.maxBody < 0:
		return fmt.Sprintf("core: WithMaxBodyBytes(%d): want a size of 0 or more", c.maxBody)
	case c.maxResponse < 0:
		return fmt.Sprintf("core: WithMaxResponseBytes(%d): want a size of 0 or more", c.maxResponse)
	case c.fingerprint == nil:
		return "core: WithFingerprint(nil): want a function"
	case c.policy == nil:
		return "core: WithCompletionPolicy(nil): want a function"
	case c.headerFilter == nil:
		return "core: WithHeaderFilter(nil): want a function"
	case c.wait < 0:
		return fmt.Sprintf("core: WithWaitForInFlight(%v): want a duration of 0 or more", c.wait)
	case c.storeTimeout < 0:
		return fmt.Sprintf("core: WithStoreTimeout(%v): want a duration of 0 or more", c.storeTimeout)
	case c.retryAfter <= 0:
		return fmt.Sprintf("core: WithRetryAfter(%v): want a positive duration", c.retryAfter)
	case c.completeWait < 0:
		return fmt.Sprintf("core: WithCompleteWait(%v): want a duration of 0 or more", c.completeWait)
	}
	return ""
}
