package core

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"time"
	"unsafe"

	"github.com/idemkit/idemkit/core/internal/wire"
)

// RecordMACHeader is the response header field that carries a stored
// record's authentication code when the Engine has an HMAC secret
// ([WithHMACSecret]). The Engine adds it to the response it stores and
// removes it, once verified, from the response it replays: it travels
// inside the record's headers, so every store keeps it without knowing
// about it. The name is reserved: a handler's own field of that name is
// never stored.
const RecordMACHeader = "Idemkit-Record-Mac"

// Discarder is an optional interface of a [Store] (found by type
// assertion) that lets the Engine remove a record it cannot use: a
// completed record whose response fails validation or authentication on
// replay, or a record the store itself reports corrupt (an error wrapping
// [ErrCorruptRecord] from Claim). Without it such a record answers 503
// until it expires; with it the Engine discards the record, reports it to
// the observer (EventRecordDiscarded) and claims the key again, once.
//
// memstore, redisstore, pgxstore and tieredstore implement it; the
// conformance module's TestDiscarder checks an implementation.
type Discarder interface {
	// Discard deletes the record of req.Key if, and only if, it is still
	// the record the Engine found unusable, and never a pending claim the
	// store can read:
	//   - req.Response non-nil: the completed record stored under
	//     req.Fingerprint whose response Claim returned as req.Response
	//     (a store compares its record's identity, as memstore does, or
	//     the stored bytes with the encoding of req.Response);
	//   - req.Response nil: a record of req.Key that the store still
	//     cannot read (the store compares the very bytes it failed on).
	// Deleting nothing because the record changed or is gone is not an
	// error: the Engine claims again and sees what is there. Errors follow
	// the Store's rules (ErrStoreUnavailable for the backend's).
	Discard(ctx context.Context, req DiscardRequest) error
}

// DiscardRequest is the input of [Discarder.Discard].
type DiscardRequest struct {
	// Key is the storage key.
	Key string
	// Fingerprint is the fingerprint of the request whose claim found the
	// record.
	Fingerprint Fingerprint
	// Response is the response Claim returned, read-only; nil when the
	// store reported the record corrupt itself.
	Response *Response
	// Reason is why the record was refused, wrapping [ErrCorruptRecord].
	Reason error
}

// vet validates a completed record a store returned for a replay, whatever
// the store, and returns the header to send: stored's own when nothing
// needs to go (the common case), else the slot's reusable map filled with
// the fields that may be replayed (Send keeps nothing it is given, so the
// map serves the slot's next replay; the caller clears it after Send).
// Neither allocates once the slot has its map. A record that no Engine
// would have stored — a status outside 200–599, a header field that is not
// a token or a value with CR, LF or NUL, and under a secret a missing or
// wrong authentication code — is refused with an error wrapping
// [ErrCorruptRecord]. The fields the Engine never stores (hop-by-hop ones,
// those the header filter refuses, Content-Length of an omitted body, the
// record's MAC) are dropped, so a record written by someone else, or
// before a filter changed, never replays them.
func (e *Engine) vet(stored *Response, skey string, fp Fingerprint, slot *tokenSlot) (http.Header, error) {
	if !wire.FinalStatus(stored.Status) {
		return nil, corrupt(fmt.Sprintf("status %d is not a final response status", stored.Status))
	}
	var connTokens []string
	drops := false
	for name, vals := range stored.Header {
		c, ok := canonicalFieldName(name)
		if !ok || !validFieldValues(vals) {
			return nil, corrupt("a header field cannot be sent: a name that is not a token or a value with CR, LF or NUL")
		}
		if c == "Connection" {
			connTokens = append(connTokens, connectionTokens(vals)...)
		}
		if !drops && e.dropOnReplay(c, stored.BodyOmitted, nil) {
			drops = true
		}
	}
	if e.macKey != nil {
		if err := e.verifyMAC(stored, skey, fp); err != nil {
			return nil, err
		}
	}
	if !drops {
		return stored.Header, nil
	}
	if slot.header == nil {
		slot.header = make(http.Header, len(stored.Header))
	}
	for name, vals := range stored.Header {
		if c, _ := canonicalFieldName(name); !e.dropOnReplay(c, stored.BodyOmitted, connTokens) {
			slot.header[name] = vals
		}
	}
	return slot.header, nil
}

// canonicalFieldName returns the canonical form of a field name (as
// [http.CanonicalHeaderKey] makes it) and whether the name is a token.
// Fields are judged by that form, as a client reads them: a stored
// "set-cookie" is a Set-Cookie field. A name already canonical, the
// usual case, is checked in one pass and returned as it is.
func canonicalFieldName(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	canonical, upper := true, true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !wire.TokenByte[c] {
			return name, false
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return name, true
	}
	return http.CanonicalHeaderKey(name), true
}

// validFieldValues reports whether every value may be sent.
func validFieldValues(vals []string) bool {
	for _, v := range vals {
		if !wire.ValidFieldValue(v) {
			return false
		}
	}
	return true
}

// dropOnReplay reports whether a stored field, by its canonical name, is
// left out of a replay: the fields storable never stores, and the record's
// MAC.
func (e *Engine) dropOnReplay(name string, omitted bool, connTokens []string) bool {
	return name == RecordMACHeader || hopByHop(name) || !e.cfg.headerFilter(name) ||
		(omitted && name == "Content-Length") || containsFold(connTokens, name)
}

// seal returns resp with its MAC field added when the Engine has a secret;
// resp itself otherwise. resp is read-only: the MAC goes into a copy of
// the header map.
func (e *Engine) seal(resp *Response, skey string, fp Fingerprint) *Response {
	if e.macKey == nil {
		return resp
	}
	var sum [sha256.Size]byte
	e.recordMAC(&sum, resp, skey, fp)
	out := *resp
	out.Header = make(http.Header, len(resp.Header)+1)
	for name, vals := range resp.Header {
		out.Header[name] = vals
	}
	out.Header[RecordMACHeader] = []string{base64.RawURLEncoding.EncodeToString(sum[:])}
	return &out
}

// verifyMAC checks the MAC field of a stored record.
func (e *Engine) verifyMAC(stored *Response, skey string, fp Fingerprint) error {
	vals := stored.Header[RecordMACHeader]
	if len(vals) == 0 && !e.cfg.unauthenticatedUntil.IsZero() && time.Now().Before(e.cfg.unauthenticatedUntil) {
		return nil // stored before record authentication, and still accepted
	}
	if len(vals) != 1 {
		return corrupt("record not authenticated: no MAC under the configured secret")
	}
	var sum [sha256.Size]byte
	e.recordMAC(&sum, stored, skey, fp)
	var enc [43]byte // base64.RawURLEncoding.EncodedLen(sha256.Size)
	base64.RawURLEncoding.Encode(enc[:], sum[:])
	v := vals[0]
	if len(v) != len(enc) || !hmac.Equal(enc[:], unsafe.Slice(unsafe.StringData(v), len(v))) {
		return corrupt("record not authenticated: MAC does not match")
	}
	return nil
}

// macLabel opens every record MAC's input, so that it can never be read as
// another message under the same key.
const macLabel = "idemkit record v1"

// recordMAC computes the record's MAC into sum: HMAC-SHA-256 under the
// engine's record key over the label, the storage key, the fingerprint,
// the status, the body-omitted flag, the header in the record codec's
// canonical encoding (codec.AppendHeader) without the MAC field, and the
// body, each of variable length prefixed with it. Binding the storage key and the
// fingerprint means a record authenticated for one key or payload is
// refused under any other.
func (e *Engine) recordMAC(sum *[sha256.Size]byte, resp *Response, skey string, fp Fingerprint) {
	ms := e.macs.Get().(*macState)
	defer e.macs.Put(ms)
	ms.h.Reset()
	b := append(ms.buf[:0], macLabel...)
	b = appendField(b, skey)
	b = append(b, fp[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(resp.Status))
	if resp.BodyOmitted {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = appendHeaderExcept(b, resp.Header, RecordMACHeader)
	b = binary.AppendUvarint(b, uint64(len(resp.Body)))
	ms.buf = b[:0]
	ms.h.Write(b)
	ms.h.Write(resp.Body)
	ms.h.Sum(ms.sum[:0])
	*sum = ms.sum
}

// macState is a pooled HMAC under an engine's record key, with a scratch
// buffer, so that sealing and verifying allocate nothing.
type macState struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// recordKeyLabel derives the record MAC key from the secret. Storage keys
// are HMACs under the secret itself of uvarint(len(scope)) || scope || key,
// and they are visible in the store: the label's first byte, 'i' (105),
// would announce a 105-byte scope in a 19-byte message, so no storage key
// is ever computed over it and the record key stays secret.
const recordKeyLabel = "idemkit record key"

// initRecordMAC derives the record key when a secret is configured.
func (e *Engine) initRecordMAC() {
	if e.cfg.secret == nil {
		return
	}
	m := hmac.New(sha256.New, e.cfg.secret)
	m.Write([]byte(recordKeyLabel))
	e.macKey = m.Sum(nil)
	key := e.macKey
	e.macs.New = func() any { return &macState{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 512)} }
}

// sanitizeClaim bounds what a store reports. The Retry-After of an
// in-flight claim lies within [1 s, the lease]: no lease the engine grants
// has more left, and an unknown, negative or absurd value (a lease in the
// year 3000, a Redis key without a TTL) becomes a bound, never an
// overflow.
func (e *Engine) sanitizeClaim(c *Claim) {
	if c.Status == ClaimInFlight {
		ra := c.RetryAfter
		if ra <= 0 {
			ra = e.cfg.retryAfter
		}
		c.RetryAfter = min(max(ra, time.Second), max(e.cfg.lease, time.Second))
	}
}

// discard removes a record found unusable through the store's Discarder
// and reports whether it did, so that the key may be claimed again; the
// observer then sees EventRecordDiscarded with reason. Without a
// Discarder it does nothing; a failed Discard returns its error, for the
// caller's 503.
// discardOnce discards a record the engine refused for reason, once per
// request (discarded says whether it has): it reports whether the key is
// to be claimed again, or else the error to answer with — err, with the
// discard's own failure joined.
func (e *Engine) discardOnce(ctx context.Context, x Exchange, skey string, fp Fingerprint, resp *Response, reason, err error, discarded *bool, latency *time.Duration) (bool, error) {
	if *discarded {
		return false, err
	}
	ok, derr := e.discard(ctx, x, skey, fp, resp, reason, latency)
	if ok {
		*discarded = true
		return true, nil
	}
	return false, errors.Join(err, derr)
}

func (e *Engine) discard(ctx context.Context, x Exchange, skey string, fp Fingerprint, resp *Response, reason error, latency *time.Duration) (bool, error) {
	d, ok := e.store.(Discarder)
	if !ok {
		return false, nil
	}
	start := e.clock()
	dctx, cancel := e.storeCtx(ctx)
	err := d.Discard(dctx, DiscardRequest{Key: skey, Fingerprint: fp, Response: resp, Reason: reason})
	cancel()
	took := e.since(start)
	*latency += took
	if err != nil {
		return false, fmt.Errorf("core: discarding the record: %w", err)
	}
	e.observe(ctx, x, Event{Outcome: EventRecordDiscarded, KeyHash: skey, StoreLatency: took, Err: reason})
	return true, nil
}

// appendHeaderExcept is the record codec's header encoding
// (codec.AppendHeader) leaving out the field skip.
func appendHeaderExcept(dst []byte, h http.Header, skip string) []byte {
	var buf [16]string // the usual header sorts on the stack
	names := buf[:0]
	for name := range h {
		if name != skip {
			names = append(names, name)
		}
	}
	return wire.AppendHeader(dst, h, names)
}

func corrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorruptRecord, what) }
