package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Call names one unit of work for [Engine.Do]: a job, a message, an RPC.
type Call struct {
	// Key is the idempotency key: 1 to the engine's maximum key length
	// (255 by default) printable ASCII characters, such as a task ID or a
	// key the producer chose.
	Key string
	// Scope says whom the key belongs to (a tenant, a queue, a client), as
	// a [KeyScopeFunc] does for HTTP: the storage key is derived from
	// (Scope, Key), so two scopes that pick the same key never share a
	// record. The empty scope is one key space like any other.
	Scope string
	// Name is the kind of work (a task type, an RPC method). It is part of
	// the fingerprint, and observers see it as [Event.Path].
	Name string
	// Input is the work's payload. Its fingerprint, with Name, is taken
	// once, before fn runs: a repeat of Key with other input is refused
	// with [ErrFingerprintMismatch]. It is at most the engine's body limit.
	Input []byte
}

// InFlightError is the error [Engine.Do] returns while another call holds
// the key. It wraps [ErrInFlight].
type InFlightError struct {
	// RetryAfter is the remaining lease of the holder: a good time to try
	// again.
	RetryAfter time.Duration
}

func (e *InFlightError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", ErrInFlight, e.RetryAfter)
}

// Unwrap returns [ErrInFlight].
func (e *InFlightError) Unwrap() error { return ErrInFlight }

// Do runs fn at most once per (call.Scope, call.Key), as the engine runs an
// HTTP handler at most once per scoped Idempotency-Key, with the same
// decisions, leases, renewal, fencing and store:
//
//   - the first call runs fn with a context that carries the claim
//     ([HeldClaim], [MarkApplied], [MarkNotApplied]); a result fn returns
//     with a nil error is stored and returned;
//   - a repeat returns the stored result without running fn (the returned
//     slice is the caller's own), or an error wrapping [ErrResultOmitted]
//     when the result was over the stored-response limit;
//   - while another call holds the key, Do returns an [*InFlightError] (or
//     waits for the result, with [WithWaitForInFlight]);
//   - a repeat with other input returns an error wrapping
//     [ErrFingerprintMismatch];
//   - an error from fn releases the claim, so a repeat runs fn again, and
//     is returned as it is — unless fn declared it applied with
//     [MarkApplied]: then the failure is stored, and a repeat returns an
//     error wrapping [ErrFailureReplayed] with its text;
//   - a store that cannot be reached gives an error wrapping
//     [ErrStoreUnavailable], fn not run (or run unguarded, with
//     [WithFailOpen]); a result whose storing a store outage defers gives
//     one too, and a repeat once it is stored gets the result.
//
// A panic in fn releases the claim and is re-raised. Invalid keys give an
// error wrapping [ErrInvalidKey] or [ErrMissingKey], input over the body
// limit one wrapping [ErrBodyTooLarge].
func (e *Engine) Do(ctx context.Context, call Call, fn func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	if err := validCallKey(call.Key, e.cfg.maxKeyLen); err != nil {
		return nil, err
	}
	if int64(len(call.Input)) > e.cfg.maxBody {
		return nil, fmt.Errorf("%w: %d bytes of input, limit %d", ErrBodyTooLarge, len(call.Input), e.cfg.maxBody)
	}
	x := &doExchange{ctx: ctx, name: call.Name, fn: fn}
	fp := DefaultFingerprint(x, call.Input)
	var scopeID string
	if call.Scope != "" {
		scopeID = scopeDigest(e.cfg.secret, call.Scope)
	}
	e.serveKey(ctx, x, storageKey(e.cfg.secret, call.Scope, call.Key), scopeID, fp, call.Input, e.cfg.ttl)
	return x.result()
}

// ErrFailureReplayed reports, from [Engine.Do], a stored failure: the first
// call's fn failed after declaring its work applied ([MarkApplied]), and
// that outcome is what every repeat gets.
var ErrFailureReplayed = errors.New("core: the stored outcome is a failure")

// ErrResultOmitted reports, from [Engine.Do], a repeat of work whose result
// was larger than the stored-response limit ([WithMaxResponseBytes]): the
// work ran once and its result was returned then, but only its success is
// stored, not its bytes. The work is not run again.
var ErrResultOmitted = errors.New("core: the stored result was too large to keep")

// validCallKey checks a Do key: 1 to maxLen printable ASCII characters.
func validCallKey(key string, maxLen int) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrMissingKey)
	case len(key) > maxLen:
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidKey, maxLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return fmt.Errorf("%w: a control or non-ASCII byte at position %d", ErrInvalidKey, i+1)
		}
	}
	return nil
}

// doExchange presents a call of [Engine.Do] to the engine as an exchange,
// so that Do and HTTP share one implementation of every decision. Its
// "response" is fn's result with status 200, or fn's error text with
// status 500 (which the completion policy releases unless fn declared the
// work applied).
type doExchange struct {
	ctx   context.Context
	name  string
	fn    func(ctx context.Context) ([]byte, error)
	fnErr error
	out   []byte
	sent  Response // what the engine sent, copied: it keeps nothing we get
	// omitted: the replayed result was over the stored-response limit, so
	// it was delivered once and kept without its bytes.
	omitted bool
	ev      Event // the engine's decision (the last event observed)
}

func (x *doExchange) Context() context.Context { return x.ctx }
func (x *doExchange) Method() string           { return "" }
func (x *doExchange) Path() string             { return x.name }
func (x *doExchange) RawQuery() string         { return "" }
func (x *doExchange) Header(string) []string   { return nil }
func (x *doExchange) Body() (io.Reader, int64) { return nil, 0 }
func (x *doExchange) Native() any              { return nil }
func (x *doExchange) Next()                    {}
func (x *doExchange) observed(ev Event)        { x.ev = ev }
func (x *doExchange) Send(resp *Response) {
	x.sent = Response{Status: resp.Status, Header: resp.Header, Body: bytes.Clone(resp.Body)}
	x.omitted = resp.Extra.Get("Idempotency-Replay") == "omitted"
}
func (x *doExchange) Capture(ctx context.Context, _ []byte) (*Response, bool, error) {
	out, err := x.fn(ctx)
	x.out, x.fnErr = out, err
	if err != nil {
		return &Response{Status: http.StatusInternalServerError, Body: []byte(err.Error())}, true, nil
	}
	return &Response{Status: http.StatusOK, Body: out}, true, nil
}

// result turns the engine's decision into Do's answer.
func (x *doExchange) result() ([]byte, error) {
	switch x.ev.Outcome {
	case OutcomeExecuted, OutcomeReleased, OutcomeFailOpen, OutcomeStoreFailed:
		// fn ran: its own answer, stored or not.
		return x.out, x.fnErr
	case OutcomeReplayed:
		if x.omitted {
			return nil, fmt.Errorf("%w: the work ran once; its result was over the stored-result limit", ErrResultOmitted)
		}
		if x.sent.Status >= http.StatusInternalServerError {
			return nil, fmt.Errorf("%w: %s", ErrFailureReplayed, x.sent.Body)
		}
		return x.sent.Body, nil
	case OutcomeInFlight:
		secs, _ := strconv.Atoi(x.sent.Header.Get("Retry-After"))
		return nil, &InFlightError{RetryAfter: time.Duration(secs) * time.Second}
	case OutcomeMismatch:
		return nil, fmt.Errorf("%w: the key was first used with other input", ErrFingerprintMismatch)
	case OutcomeStoreDeferred:
		return nil, fmt.Errorf("%w: the work ran, and its result is being stored: a repeat gets it once stored", ErrStoreUnavailable)
	case OutcomeStoreUnavailable:
		if x.ev.Err != nil {
			return nil, x.ev.Err
		}
		return nil, ErrStoreUnavailable
	}
	return nil, fmt.Errorf("%w: no decision (%q)", ErrStoreUnavailable, x.ev.Outcome)
}
