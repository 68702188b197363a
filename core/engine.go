package core

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idemkit/idemkit/core/internal/wire"
)

// Engine is the idempotency state machine. It is framework-free: adapters
// present each request as an [Exchange] and call [Engine.Serve]. An Engine
// is safe for concurrent use and is usually built once per application (or
// per route group with its own options).
type Engine struct {
	store    Store
	cfg      config
	problems [numProblemKinds][]*Response // prebuilt, by kind and Retry-After seconds
	// The replay markers, shared read-only by every replay as its
	// Response.Extra: with the body kept, and with the body omitted.
	replayMarks, omittedMarks http.Header
	renewers                  sync.Pool // of *renewer, each with its timer
	bg                        background
	phases                    PhaseObserver // the observer, when it traces phases
	tx                        Transactor    // with WithTransactions: the store's (see tx.go)
	// macKey authenticates stored records when a secret is configured
	// (nil otherwise); macs pools HMAC states under it.
	macKey []byte
	macs   sync.Pool // of *macState
}

// New returns an Engine over store with the given options. It panics if
// store is nil or an option's value is invalid (each option's doc says
// which are), with a message naming the option and the value: those are
// programming errors.
func New(store Store, opts ...Option) *Engine {
	if store == nil {
		panic("core: New: nil Store")
	}
	e := &Engine{store: store, cfg: defaultConfig()}
	for _, o := range opts {
		o(&e.cfg)
	}
	c := &e.cfg
	if msg := c.validate(); msg != "" {
		panic(msg)
	}
	// A record is a final response: whatever the policy says, an interim
	// or out-of-range status is not stored (it would be refused on replay).
	policy := c.policy
	c.policy = func(resp *Response) bool { return wire.FinalStatus(resp.Status) && policy(resp) }
	e.initRecordMAC()
	e.buildProblems()
	e.bg.init(e)
	e.phases, _ = c.observer.(PhaseObserver)
	if c.transactions {
		t, ok := store.(Transactor)
		if !ok {
			panic(fmt.Sprintf("core: WithTransactions(true): want a Store that implements Transactor, not %T", store))
		}
		e.tx = t
	}
	e.replayMarks = http.Header{c.replayHeader: valTrue}
	e.omittedMarks = http.Header{c.replayHeader: valTrue, "Idempotency-Replay": valOmitted}
	return e
}

// Serve handles one exchange according to the idempotency contract: it
// passes unguarded requests through (other methods, and those [WithSkip]
// picks), applies [WithRouteOptions], refuses bad ones with problem+json
// (or what [WithProblemRenderer] renders), replays completed ones, and runs
// the handler (through x.Capture) at most once per scoped key. A panic in the handler releases the claim and is
// re-raised.
func (e *Engine) Serve(x Exchange) {
	method := x.Method()
	if !slices.Contains(e.cfg.methods, method) {
		x.Next()
		return
	}
	ctx := x.Context()
	if e.cfg.skip != nil {
		skip, err := e.cfg.skip(x)
		if err != nil {
			e.misconfigured(ctx, x, err)
			return
		}
		if skip {
			e.observe(ctx, x, Event{Outcome: OutcomePassThrough})
			x.Next()
			return
		}
	}
	required, ttl := e.cfg.required, e.cfg.ttl
	if e.cfg.route != nil {
		ro, err := e.cfg.route(x)
		if err != nil {
			e.misconfigured(ctx, x, err)
			return
		}
		if ro.TTL > 0 {
			ttl = ro.TTL
		}
		switch ro.KeyRequired {
		case KeyRequirementRequired:
			required = true
		case KeyRequirementOptional:
			required = false
		}
	}
	values := x.Header(KeyHeader)
	if len(values) == 0 {
		if !required {
			e.observe(ctx, x, Event{Outcome: OutcomePassThrough})
			x.Next()
			return
		}
		e.refuse(ctx, x, Event{Outcome: OutcomeMissingKey, Err: ErrMissingKey}, problemMissingKey, "")
		return
	}
	key, err := ParseKey(values, e.cfg.strict, e.cfg.maxKeyLen)
	if err != nil {
		e.refuse(ctx, x, Event{Outcome: OutcomeInvalidKey, Err: err}, problemInvalidKey, invalidKeyDetail(err))
		return
	}

	body, err := e.readBody(x)
	if err != nil {
		if errors.Is(err, ErrBodyTooLarge) {
			e.refuse(ctx, x, Event{Outcome: OutcomeBodyTooLarge, Err: err}, problemBodyTooLarge, "")
		} else {
			e.refuse(ctx, x, Event{Outcome: OutcomeInvalidBody, Err: err}, problemInvalidBody, "")
		}
		return
	}
	fp := e.cfg.fingerprint(x, body)
	var scope, scopeID string
	if e.cfg.scope != nil {
		if scope, err = e.cfg.scope(x); err != nil {
			e.misconfigured(ctx, x, err)
			return
		}
		scopeID = scopeDigest(e.cfg.secret, scope)
	}
	skey := storageKey(e.cfg.secret, scope, key)
	e.serveKey(ctx, x, skey, scopeID, fp, body, ttl)
}

// misconfigured refuses a request that a function of the engine's
// configuration could not read (err wraps [ErrNativeType]) with 500: the
// handler does not run.
func (e *Engine) misconfigured(ctx context.Context, x Exchange, err error) {
	e.refuse(ctx, x, Event{Outcome: OutcomeMisconfigured, Err: err}, problemMisconfigured, misconfiguredDetail(err))
}

// invalidKeyDetail turns a ParseKey error into a problem detail. The
// reasons ParseKey gives never contain the key itself.
func invalidKeyDetail(err error) string {
	reason, ok := strings.CutPrefix(err.Error(), ErrInvalidKey.Error()+": ")
	if !ok {
		return ""
	}
	return "The Idempotency-Key header is invalid: " + reason + "."
}

func (e *Engine) serveKey(ctx context.Context, x Exchange, skey, scopeID string, fp Fingerprint, body []byte, ttl time.Duration) {
	var deadline time.Time
	if e.cfg.wait > 0 {
		deadline = time.Now().Add(e.cfg.wait)
	}
	backoff := 10 * time.Millisecond
	var latency time.Duration
	slot := tokenSlots.Get().(*tokenSlot)
	defer tokenSlots.Put(slot)
	discarded := false // a corrupt record is discarded and the key claimed again once
	for {
		if slot.token == "" {
			slot.token = newToken()
		}
		token := slot.token
		sent := time.Now() // the lease runs from no earlier than this
		pctx, end := e.phase(ctx, PhaseClaim, skey)
		claim, err := e.claim(pctx, ClaimRequest{Key: skey, Fingerprint: fp, Token: token, Lease: e.cfg.lease, Scope: scopeID})
		end(err)
		if e.cfg.observer != nil {
			latency += time.Since(sent)
		}
		if claim.Status == ClaimAcquired || err != nil {
			// The store holds the token now, or may: it is never offered
			// again. Any other answer stored nothing (see [Token]).
			slot.token = ""
		}
		if err != nil {
			// The claim may still land (a client library re-sends it, a
			// stalled backend runs it late): release it in the background,
			// so that no lease this engine cannot see locks the key.
			e.bg.releaseOrphan(ctx, x, skey, token)
			if errors.Is(err, ErrCorruptRecord) {
				var again bool
				if again, err = e.discardOnce(ctx, x, skey, fp, nil, err, err, &discarded, &latency); again {
					continue
				}
			}
			e.storeDown(ctx, x, skey, body, latency, err)
			return
		}
		e.sanitizeClaim(&claim)
		switch claim.Status {
		case ClaimAcquired:
			if e.tx != nil {
				e.executeTx(ctx, x, skey, fp, token, body, latency, sent, ttl)
				return
			}
			e.execute(ctx, x, skey, fp, token, body, latency, sent, ttl)
			return
		case ClaimReplay:
			if claim.Response == nil {
				e.storeDown(ctx, x, skey, body, latency, fmt.Errorf("%w: replay without a response", ErrStoreUnavailable))
				return
			}
			h, reason := e.vet(claim.Response, skey, fp, slot)
			if reason != nil {
				again, err := e.discardOnce(ctx, x, skey, fp, claim.Response, reason, fmt.Errorf("%w: %w", ErrStoreUnavailable, reason), &discarded, &latency)
				if again {
					continue
				}
				e.storeDown(ctx, x, skey, body, latency, err)
				return
			}
			e.replay(ctx, x, slot, skey, claim.Response, h, latency)
			return
		case ClaimMismatch:
			e.refuse(ctx, x, Event{Outcome: OutcomeMismatch, KeyHash: skey, StoreLatency: latency, Err: ErrFingerprintMismatch}, problemMismatch, "")
			return
		case ClaimInFlight:
			if !deadline.IsZero() {
				wait := min(backoff, time.Until(deadline))
				if wait > 0 {
					t := time.NewTimer(wait)
					select {
					case <-t.C:
						backoff = min(backoff*2, 250*time.Millisecond)
						continue
					case <-ctx.Done():
						t.Stop()
					}
				}
			}
			status := e.sendProblem(x, problemInFlight, "", claim.RetryAfter)
			e.observe(ctx, x, Event{Outcome: OutcomeInFlight, KeyHash: skey, Status: status, StoreLatency: latency, Err: ErrInFlight})
			return
		default:
			slot.token = ""
			e.storeDown(ctx, x, skey, body, latency, fmt.Errorf("%w: invalid claim status %d", ErrStoreUnavailable, claim.Status))
			return
		}
	}
}

// clock and since time store calls for the observer's Event.StoreLatency;
// without an observer they read no clock.
func (e *Engine) clock() time.Time {
	if e.cfg.observer == nil {
		return time.Time{}
	}
	return time.Now()
}

func (e *Engine) since(start time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}

// storeCtx bounds ctx by the store timeout when one is configured; without
// one it costs nothing (no timer, no allocation).
func (e *Engine) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.cfg.storeTimeout > 0 {
		return context.WithTimeout(ctx, e.cfg.storeTimeout)
	}
	return ctx, func() {}
}

func (e *Engine) claim(ctx context.Context, req ClaimRequest) (Claim, error) {
	ctx, cancel := e.storeCtx(ctx)
	defer cancel()
	c, err := e.store.Claim(ctx, req)
	if err != nil && !errors.Is(err, ErrStoreUnavailable) {
		err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return c, err
}

// storeDown answers a request whose store call failed: 503, or the handler
// unguarded when fail-open is configured.
func (e *Engine) storeDown(ctx context.Context, x Exchange, skey string, body []byte, latency time.Duration, err error) {
	if e.cfg.failOpen {
		resp, _, cerr := x.Capture(ctx, body)
		if cerr == nil {
			x.Send(resp)
			e.observe(ctx, x, Event{Outcome: OutcomeFailOpen, KeyHash: skey, Status: resp.Status, StoreLatency: latency, Err: err})
		} else {
			e.observe(ctx, x, Event{Outcome: OutcomeFailOpen, KeyHash: skey, StoreLatency: latency, Err: errors.Join(err, cerr)})
		}
		return
	}
	status := e.sendProblem(x, problemStoreUnavailable, "", e.cfg.retryAfter)
	e.observe(ctx, x, Event{Outcome: OutcomeStoreUnavailable, KeyHash: skey, Status: status, StoreLatency: latency, Err: err})
}

// replay sends a stored response, with header h (vet's), and the replay
// markers. The stored response is read-only (a store may share it between
// requests): the markers travel in a shallow copy's Extra, so no header
// map is built. The copy lives in the request's pooled slot (Send keeps
// nothing it is given), not in an allocation of its own.
func (e *Engine) replay(ctx context.Context, x Exchange, slot *tokenSlot, skey string, stored *Response, h http.Header, latency time.Duration) {
	out := &slot.out
	*out = *stored
	out.Header = h
	out.Extra = e.replayMarks
	if stored.BodyOmitted {
		out.Extra = e.omittedMarks
		out.Body = nil
	}
	x.Send(out)
	status := out.Status
	*out = Response{} // the pool keeps no stored response alive
	clear(slot.header)
	e.observe(ctx, x, Event{Outcome: OutcomeReplayed, KeyHash: skey, Status: status, StoreLatency: latency})
}

func (e *Engine) refuse(ctx context.Context, x Exchange, ev Event, kind problemKind, detail string) {
	ev.Status = e.sendProblem(x, kind, detail, 0)
	e.observe(ctx, x, ev)
}

// execute runs the handler under a claim held with token (acquired by a
// claim sent at claimed), then stores or releases, then sends.
func (e *Engine) execute(ctx context.Context, x Exchange, skey string, fp Fingerprint, token Token, body []byte, latency time.Duration, claimed time.Time, ttl time.Duration) {
	bg := context.WithoutCancel(ctx)
	resp, release, why, confirmed := e.runHandler(ctx, bg, ctx, x, skey, token, body, claimed, nil)
	if release {
		e.releaseAfter(ctx, bg, x, skey, token, resp, why, latency, nil)
		return
	}

	start := e.clock()
	stored := e.seal(e.storable(resp), skey, fp)
	// The first attempt as any store call (a store bounds its own calls);
	// only a failure pays for the retry loop.
	err := e.complete(bg, skey, token, stored, ttl)
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		c := e.newCompletion(skey, token, stored, confirmed, ttl)
		if err = c.run(bg, time.Now().Add(e.cfg.completeWait)); errors.Is(err, ErrStoreUnavailable) && c.open() {
			err = e.deferCompletion(ctx, x, c, err, latency+e.since(start))
			if err == errDeferred {
				return
			}
		}
	}
	ev := Event{Outcome: OutcomeExecuted, KeyHash: skey, Status: resp.Status, StoreLatency: latency + e.since(start)}
	if err != nil {
		// The claim was taken over, or the store stayed down for the
		// whole window: the response is sent unstored, and a retry may run
		// the handler again (the documented at-least-once case).
		ev.Outcome, ev.Err = OutcomeStoreFailed, err
		if errors.Is(err, ErrLeaseLost) {
			e.observe(ctx, x, Event{Outcome: EventLeaseLost, KeyHash: skey, Err: err})
		}
	}
	x.Send(resp)
	e.observe(ctx, x, ev)
}

// deferCompletion hands c over to the background and tells the client to
// come back for the response, rather than showing it one that is not
// stored yet (a response is stored before it is sent); it then returns
// errDeferred. With no room for more background work it goes on storing
// here instead, and returns how that ended.
func (e *Engine) deferCompletion(ctx context.Context, x Exchange, c *completion, err error, latency time.Duration) error {
	if !e.bg.hand(ctx, x, c) {
		return c.run(context.WithoutCancel(ctx), c.until)
	}
	status := e.sendProblem(x, problemStoreDeferred, "", e.cfg.retryAfter)
	e.observe(ctx, x, Event{Outcome: OutcomeStoreDeferred, KeyHash: c.key, Status: status, StoreLatency: latency, Err: err})
	return errDeferred
}

var errDeferred = errors.New("core: storing deferred to the background")

// complete stores resp once, retained for ttl, bounded by the store
// timeout when one is set.
func (e *Engine) complete(ctx context.Context, skey string, token Token, resp *Response, ttl time.Duration) error {
	ctx, end := e.phase(ctx, PhaseComplete, skey)
	ctx, cancel := e.storeCtx(ctx)
	defer cancel()
	err := e.store.Complete(ctx, skey, token, resp, ttl)
	if err != nil && !errors.Is(err, ErrStoreUnavailable) && !errors.Is(err, ErrLeaseLost) {
		err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	end(err)
	return err
}

// runHandler runs the handler under the claim held with token, from the
// context base (the request's, or a transaction's; bg is the request's
// without its cancellation, for store calls), renewing the claim
// meanwhile; it returns what the handler answered, whether that releases
// the claim (and why), and when the lease was last known held. If the
// handler panics, undo (when not nil: a transaction's rollback) runs, the
// claim is released and the panic re-raised.
func (e *Engine) runHandler(ctx, bg, base context.Context, x Exchange, skey string, token Token, body []byte, claimed time.Time, undo func(context.Context) error) (resp *Response, release bool, why error, confirmed time.Time) {
	hc := &heldClaim{key: skey, token: token}
	r := e.startRenewer(bg, x, skey, token, claimed)
	var wrote bool
	var capErr error
	hctx, end := e.phase(withHeldClaim(base, hc), PhaseHandler, skey)
	func() {
		defer func() {
			if p := recover(); p != nil {
				perr := fmt.Errorf("core: handler panicked: %v", p)
				end(perr)
				r.stop()
				rerr := e.release(bg, skey, token)
				if undo != nil {
					rerr = errors.Join(undo(bg), rerr)
				}
				e.observe(ctx, x, Event{Outcome: OutcomeReleased, KeyHash: skey, Err: errors.Join(perr, rerr)})
				panic(p)
			}
		}()
		resp, wrote, capErr = x.Capture(hctx, body)
	}()
	end(capErr)
	confirmed = r.stop()
	release, why = e.releases(ctx, hc, resp, wrote, capErr)
	return resp, release, why, confirmed
}

// releaseAfter releases the claim of a handler whose outcome is not stored
// (after undo, when not nil: a transaction's rollback), sends its response
// if there is one, and reports why.
func (e *Engine) releaseAfter(ctx, bg context.Context, x Exchange, skey string, token Token, resp *Response, why error, latency time.Duration, undo func(context.Context) error) {
	start := e.clock()
	var rerr error
	if undo != nil {
		rerr = undo(bg)
	}
	if err := e.release(bg, skey, token); err != nil {
		rerr = errors.Join(rerr, err)
		if !errors.Is(err, ErrLeaseLost) {
			// The claim would lock the key until its lease lapsed.
			e.bg.releaseLater(ctx, x.Method(), strings.Clone(x.Path()), skey, token, err)
		}
	}
	ev := Event{Outcome: OutcomeReleased, KeyHash: skey, StoreLatency: latency + e.since(start), Err: errors.Join(why, rerr)}
	if resp != nil {
		x.Send(resp)
		ev.Status = resp.Status
	}
	e.observe(ctx, x, ev)
}

// releases decides whether a handler's outcome releases the claim instead
// of being stored, and why. A declaration by the handler overrides the
// completion policy; a client that went away decides nothing, unless the
// handler wrote nothing at all while its request was cancelled.
func (e *Engine) releases(ctx context.Context, hc *heldClaim, resp *Response, wrote bool, capErr error) (bool, error) {
	switch {
	case capErr != nil:
		return true, capErr
	case resp == nil:
		return true, errors.New("core: the adapter captured no response")
	}
	switch hc.declared.Load() {
	case declaredApplied:
		return false, nil
	case declaredNotApplied:
		return true, errDeclaredNotApplied
	}
	if !wrote && ctx.Err() != nil {
		return true, fmt.Errorf("core: request cancelled before the handler wrote anything: %w", ctx.Err())
	}
	return !e.cfg.policy(resp), nil
}

var errDeclaredNotApplied = errors.New("core: the handler declared the request not applied")

func (e *Engine) release(ctx context.Context, skey string, token Token) error {
	ctx, end := e.phase(ctx, PhaseRelease, skey)
	ctx, cancel := e.storeCtx(ctx)
	defer cancel()
	err := e.store.Release(ctx, skey, token)
	end(err)
	return err
}

// storable returns the version of resp that is stored: hop-by-hop and
// filtered headers removed, fields that could not be replayed (a name
// that is not a token, a value with CR, LF or NUL; see vet) and the
// reserved RecordMACHeader too, and the body omitted when over the limit.
func (e *Engine) storable(resp *Response) *Response {
	var connTokens []string
	for name, vals := range resp.Header {
		if len(name) == len("Connection") && http.CanonicalHeaderKey(name) == "Connection" {
			connTokens = append(connTokens, connectionTokens(vals)...)
		}
	}
	drop := func(name string, vals []string) bool {
		// Judged by the canonical name, as a client reads it: a handler's
		// "set-cookie" is a Set-Cookie field.
		c, ok := canonicalFieldName(name)
		return !ok || !validFieldValues(vals) || c == RecordMACHeader || hopByHop(c) ||
			!e.cfg.headerFilter(c) || containsFold(connTokens, c)
	}
	oversized := len(resp.Body) > e.cfg.maxResponse
	filter := oversized
	for name, vals := range resp.Header {
		if drop(name, vals) {
			filter = true
			break
		}
	}
	if !filter {
		// Nothing to drop: the captured response is stored as it is (the
		// store may keep it; nobody modifies it afterwards).
		return resp
	}
	out := &Response{Status: resp.Status, Header: resp.Header, Body: resp.Body}
	{
		// Something must go: a new map, never a change to the captured one,
		// which an adapter may share between responses.
		out.Header = make(http.Header, len(resp.Header))
		for name, vals := range resp.Header {
			if !drop(name, vals) {
				out.Header[name] = vals
			}
		}
	}
	if oversized {
		out.Body = nil
		out.BodyOmitted = true
		delete(out.Header, "Content-Length")
	}
	return out
}

// readBody reads the whole request body, at most maxBody bytes. It returns
// the body (in place when the exchange holds it already) or an error
// wrapping ErrBodyTooLarge.
//
// Memory follows the bytes received, not the length a client declares: a
// body is read into pooled chunks as it arrives and copied once, at its
// received size, into the slice the fingerprint and the handler see. A
// client that declares 1 MiB and sends one byte holds one chunk.
func (e *Engine) readBody(x Exchange) ([]byte, error) {
	if bb, ok := x.(BodyBytes); ok {
		if b := bb.BodyBytes(); b != nil {
			if int64(len(b)) > e.cfg.maxBody {
				return nil, ErrBodyTooLarge
			}
			return b, nil
		}
	}
	r, n := x.Body()
	if n > e.cfg.maxBody {
		return nil, ErrBodyTooLarge
	}
	if r == nil || n == 0 {
		return nil, nil
	}
	if n > 0 && n <= bodyChunkSize {
		// A small declared length: one slice of at most a chunk, read in
		// place. The server has already bounded the body to its
		// Content-Length.
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, bodyError(err)
		}
		return b, nil
	}
	limit := e.cfg.maxBody + 1 // one byte over tells a body that is too large
	if n > 0 {
		limit = n
	}
	b, err := readChunks(r, limit, e.cfg.maxBody)
	if err != nil {
		if err == ErrBodyTooLarge {
			return nil, err
		}
		return nil, bodyError(err)
	}
	if n > 0 && int64(len(b)) < n {
		return nil, bodyError(io.ErrUnexpectedEOF)
	}
	return b, nil
}

// bodyChunkSize is the unit by which readBody's buffer grows.
const bodyChunkSize = 4 << 10

type bodyChunk [bodyChunkSize]byte

var bodyChunks = sync.Pool{New: func() any { return new(bodyChunk) }}

// readChunks reads r until EOF or limit bytes into pooled chunks, taking a
// chunk only when the previous one is full, and returns a copy of what it
// read, allocated at the size received; or ErrBodyTooLarge, copying
// nothing, when it read more than most bytes.
func readChunks(r io.Reader, limit, most int64) ([]byte, error) {
	var (
		backing [16]*bodyChunk
		chunks  = backing[:0]
		total   int64
		err     error
	)
	defer func() {
		for _, c := range chunks {
			bodyChunks.Put(c)
		}
	}()
	for total < limit {
		off := int(total % bodyChunkSize)
		if off == 0 && int64(len(chunks))*bodyChunkSize == total {
			chunks = append(chunks, bodyChunks.Get().(*bodyChunk))
		}
		end := bodyChunkSize
		if rest := limit - total; rest < int64(end-off) {
			end = off + int(rest)
		}
		var m int
		m, err = r.Read(chunks[len(chunks)-1][off:end])
		total += int64(m)
		if err != nil {
			break
		}
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	if total > most {
		return nil, ErrBodyTooLarge
	}
	if total == 0 {
		return nil, nil
	}
	b := make([]byte, total)
	for i, c := range chunks {
		copy(b[i*bodyChunkSize:], c[:])
	}
	return b, nil
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: %w", ErrBodyTooLarge, err)
	}
	return fmt.Errorf("core: reading request body: %w", err)
}

func (e *Engine) observe(ctx context.Context, x Exchange, ev Event) {
	if dx, ok := x.(*doExchange); ok {
		dx.observed(ev)
	}
	if e.cfg.observer == nil {
		return
	}
	ev.Method, ev.Path = x.Method(), x.Path()
	e.cfg.observer.Observe(ctx, ev)
}

// emit reports an event from the renewer. The renewer runs beside the
// handler, so it never touches the Exchange: method and path were copied
// when it started.
func (r *renewer) emit(ev Event) {
	if r.e.cfg.observer == nil {
		return
	}
	ev.Method, ev.Path = r.method, r.path
	r.e.cfg.observer.Observe(r.ctx, ev)
}

// renewer extends a claim's lease every third of its length while the
// handler runs. It is a timer, not a goroutine, between renewals. Renewers
// are pooled with their timers: a request whose handler ends before the
// first renewal (nearly all) re-arms a stopped timer instead of allocating
// one (docs/performance.md).
type renewer struct {
	e       *Engine
	method  string
	path    string
	ctx     context.Context
	key     string
	token   Token
	every   time.Duration
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
	// confirmed is when the lease was last known held: the sending of the
	// claim, then of each successful renewal.
	confirmed time.Time
}

// startRenewer starts renewing the claim; ctx must not be cancelled with the
// request (execute passes the request context WithoutCancel).
func (e *Engine) startRenewer(ctx context.Context, x Exchange, key string, token Token, claimed time.Time) *renewer {
	r, _ := e.renewers.Get().(*renewer)
	if r == nil {
		r = &renewer{e: e, every: e.cfg.lease / 3}
		r.timer = time.AfterFunc(time.Hour, r.renew)
		r.timer.Stop()
	}
	r.mu.Lock()
	r.ctx, r.key, r.token, r.stopped, r.confirmed = ctx, key, token, false, claimed
	if e.cfg.observer != nil {
		r.method, r.path = x.Method(), x.Path()
	}
	r.timer.Reset(r.every)
	r.mu.Unlock()
	return r
}

func (r *renewer) renew() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	// A renewal never outlives its period, nor the store timeout when one
	// is configured.
	bound := r.every
	if t := r.e.cfg.storeTimeout; t > 0 {
		bound = min(t, bound)
	}
	ctx, cancel := context.WithTimeout(r.ctx, bound)
	start := time.Now()
	err := r.e.store.Renew(ctx, r.key, r.token, r.e.cfg.lease)
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	switch {
	case err == nil:
		r.confirmed = start
		r.emit(Event{Outcome: EventLeaseRenewed, KeyHash: r.key, StoreLatency: time.Since(start)})
	case errors.Is(err, ErrLeaseLost):
		r.emit(Event{Outcome: EventLeaseLost, KeyHash: r.key, StoreLatency: time.Since(start), Err: err})
		return
	default:
		r.emit(Event{Outcome: EventRenewFailed, KeyHash: r.key, StoreLatency: time.Since(start), Err: err})
	}
	r.timer.Reset(r.every)
}

// stop ends the renewals and returns when the lease was last known held.
// The renewer goes back to the pool only when its timer was still pending,
// so no renewal of this claim has started and none can: a renewer whose
// callback ran (or runs) is left to the collector.
func (r *renewer) stop() time.Time {
	r.mu.Lock()
	r.stopped = true
	confirmed := r.confirmed
	pending := r.timer.Stop()
	if pending {
		r.ctx, r.key, r.token, r.method, r.path = nil, "", "", "", ""
	}
	r.mu.Unlock()
	if pending {
		r.e.renewers.Put(r)
	}
	return confirmed
}

var (
	valTrue    = []string{"true"}
	valOmitted = []string{"omitted"}
)

// tokenSlot holds a drawn fencing token until a claim stores it. Most
// claims on a busy key are replays, 409s and 422s, which store nothing:
// their token goes back to the pool with the slot and is offered to the
// next claim, so only an acquired claim costs a draw. A token fences the
// one claim that holds it (docs/contract.md C-LEASE-1); one that no store
// kept fences nothing.
// A replay also builds its marked copy of the stored response in the
// slot, and its filtered header when fields must go.
type tokenSlot struct {
	token  Token
	out    Response
	header http.Header // a replay's filtered header (see vet), cleared after use
}

var tokenSlots = sync.Pool{New: func() any { return new(tokenSlot) }}

// newToken returns a fencing token: 128 bits from the runtime's ChaCha8
// generator (math/rand/v2, seeded from the OS per thread), base64url. A
// token has to be unique per claim that holds it and never leaves the
// server; crypto/rand cost a getrandom system call per request in the
// profiles.
func newToken() Token {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	var out [22]byte // base64.RawURLEncoding.EncodedLen(16)
	base64.RawURLEncoding.Encode(out[:], b[:])
	return Token(out[:])
}

// hopByHop reports the hop-by-hop fields, by canonical name: a switch,
// which the compiler turns into a few length and string comparisons,
// costs a third of a map lookup on the replay path.
func hopByHop(name string) bool {
	switch name {
	case "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func connectionTokens(vals []string) []string {
	var out []string
	for _, v := range vals {
		start := 0
		for i := 0; i <= len(v); i++ {
			if i == len(v) || v[i] == ',' {
				tok := trimOWS(v[start:i])
				if tok != "" {
					out = append(out, tok)
				}
				start = i + 1
			}
		}
	}
	return out
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func containsFold(list []string, name string) bool {
	for _, t := range list {
		if http.CanonicalHeaderKey(t) == name {
			return true
		}
	}
	return false
}
