package codec

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"unsafe"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/internal/wire"
)

const version = 1

// AppendHeader appends a compact binary encoding of h to dst and returns the
// extended slice. Field names are written in sorted order, so equal headers
// encode to equal bytes; every value of every field is kept in order. Stores
// that keep headers apart from the body use it with [DecodeHeader].
func AppendHeader(dst []byte, h http.Header) []byte {
	var buf [16]string // the usual header sorts on the stack
	names := buf[:0]
	for name := range h {
		names = append(names, name)
	}
	return wire.AppendHeader(dst, h, names)
}

// DecodeHeader decodes a header encoded by [AppendHeader]. It returns the
// header and the number of bytes read, or an error wrapping
// [core.ErrCorruptRecord], also for fields that AppendHeader would not have
// written from a response the engine stores: names that are not RFC 9110
// tokens or not in sorted order, values holding CR, LF or NUL. It never
// panics, whatever the input.
func DecodeHeader(b []byte) (http.Header, int, error) {
	return decodeHeader(b, false)
}

func decodeHeader(b []byte, alias bool) (http.Header, int, error) {
	d := decoder{b: b, alias: alias}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(b)) {
		return nil, 0, corrupt("header count")
	}
	h := make(http.Header, int(n))
	// One slab holds the values of every field that has one (most fields):
	// a field with more takes its own slice.
	slab := make([]string, n)
	var prev string
	for i := uint64(0); i < n; i++ {
		name := d.str()
		cnt := d.uvarint()
		if d.err != nil || cnt > uint64(len(b)) {
			return nil, 0, corrupt("header field")
		}
		// AppendHeader writes each name once, in sorted order: anything
		// else was not written by it, and would not encode back the same.
		if i > 0 && name <= prev {
			return nil, 0, corrupt("header names out of order or repeated")
		}
		if !wire.ValidFieldName(name) {
			return nil, 0, corrupt("header name is not a token")
		}
		prev = name
		var vals []string
		if cnt == 1 {
			vals, slab = slab[:0:1], slab[1:]
		} else {
			vals = make([]string, 0, int(cnt))
		}
		for j := uint64(0); j < cnt; j++ {
			v := d.str()
			if !wire.ValidFieldValue(v) {
				return nil, 0, corrupt("header value holds CR, LF or NUL")
			}
			vals = append(vals, v)
		}
		if d.err != nil {
			return nil, 0, corrupt("header value")
		}
		h[name] = vals
	}
	return h, d.off, nil
}

// EncodeResponse encodes resp into one self-describing byte slice: a version
// byte, flags, the status, the headers and the raw body, without base64 or
// any other inflation (the package documentation gives the format).
// [DecodeResponse] reverses it exactly.
func EncodeResponse(resp *core.Response) []byte {
	return AppendResponse(make([]byte, 0, EncodedSizeHint(resp)), resp)
}

// EncodedSizeHint estimates the length of resp's [EncodeResponse]
// encoding: the body, plus room for the status and a typical header
// field. A store sizes a buffer for [AppendResponse] with it, so that the
// body is copied once.
func EncodedSizeHint(resp *core.Response) int {
	return 16 + 64*len(resp.Header) + len(resp.Body)
}

// AppendResponse appends the [EncodeResponse] encoding of resp to dst, so
// that a store can put its own record header in front without a second
// copy of the body.
func AppendResponse(dst []byte, resp *core.Response) []byte {
	var flags byte
	if resp.BodyOmitted {
		flags |= 1
	}
	dst = append(dst, version, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(resp.Status))
	dst = AppendHeader(dst, resp.Header)
	return append(dst, resp.Body...)
}

// DecodeResponse decodes bytes made by [EncodeResponse]. It never writes
// to b and the result keeps no reference to it: header values and the body
// are copies. It returns an error wrapping [core.ErrCorruptRecord] for any
// malformed input, and for any input that cannot be a stored final
// response although it parses: a status outside 200–599, a header name
// that is not an RFC 9110 token, a value holding CR, LF or NUL, names out
// of [AppendHeader]'s order or repeated, a body stored with the omitted
// flag. It never panics.
func DecodeResponse(b []byte) (*core.Response, error) {
	return decodeResponse(b, false)
}

// DecodeResponseInPlace decodes like [DecodeResponse] but copies nothing:
// the header values and the body of the result alias b, so b must never be
// modified afterwards, and the result is read-only, as the [core.Store]
// contract has every replayed response. It suits a store decoding a reply
// of its driver that nothing else holds (redisstore decodes its Lua
// script's reply with it): a replay then allocates the Response and,
// unless its header encoding repeats, the header map and its value slices,
// and no bytes. A header whose encoding repeats is decoded once and its
// map shared by the results, which must therefore never modify it.
func DecodeResponseInPlace(b []byte) (*core.Response, error) {
	return decodeResponse(b, true)
}

func decodeResponse(b []byte, alias bool) (*core.Response, error) {
	if len(b) < 4 {
		return nil, corrupt("short record")
	}
	if b[0] != version {
		return nil, corrupt(fmt.Sprintf("unknown version %d", b[0]))
	}
	if b[1]&^1 != 0 {
		return nil, corrupt("unknown flags")
	}
	status := int(binary.BigEndian.Uint16(b[2:4]))
	if !wire.FinalStatus(status) {
		return nil, corrupt(fmt.Sprintf("status %d is not a final response status", status))
	}
	var h http.Header
	var n int
	var err error
	if alias {
		h, n, err = decodeSharedHeader(b[4:])
	} else {
		h, n, err = decodeHeader(b[4:], false)
	}
	if err != nil {
		return nil, err
	}
	body := b[4+n:]
	if b[1]&1 != 0 && len(body) > 0 {
		return nil, corrupt("body stored although marked omitted")
	}
	resp := &core.Response{Status: status, Header: h, BodyOmitted: b[1]&1 != 0}
	switch {
	case len(body) == 0:
		resp.Body = []byte{}
	case alias:
		resp.Body = body[:len(body):len(body)]
	default:
		resp.Body = append([]byte(nil), body...)
	}
	return resp, nil
}

// decodeSharedHeader decodes a header for [DecodeResponseInPlace], whose
// result is read-only: a header whose encoding repeats (the same
// Content-Type on every record of an endpoint, say) is decoded once and
// its map shared, through [HeaderSets], by every response decoded from
// those bytes. A header that is not kept (yet) is decoded aliasing b, as
// the rest of the record is; one that is kept is a copy, so it keeps no
// reply alive.
func decodeSharedHeader(b []byte) (http.Header, int, error) {
	n, ok := headerLen(b)
	if !ok {
		return decodeHeader(b, true) // reports where it is malformed
	}
	enc := b[:n]
	h, keep := decodedHeaders.Lookup(enc)
	if h != nil {
		return h, n, nil
	}
	if !keep {
		return decodeHeader(b, true)
	}
	h, _, err := decodeHeader(enc, false)
	if err != nil {
		return nil, 0, err
	}
	decodedHeaders.Keep(enc, h)
	return h, n, nil
}

// decodedHeaders are the headers decodeSharedHeader shares.
var decodedHeaders HeaderSets

// headerLen returns the length of the header encoding at the start of b,
// walking its varints without decoding a string.
func headerLen(b []byte) (int, bool) {
	d := decoder{b: b}
	fields := d.uvarint()
	for i := uint64(0); i < fields && d.err == nil; i++ {
		d.skip()
		vals := d.uvarint()
		for j := uint64(0); j < vals && d.err == nil; j++ {
			d.skip()
		}
	}
	return d.off, d.err == nil
}

func corrupt(what string) error { return fmt.Errorf("%w: %s", core.ErrCorruptRecord, what) }

type decoder struct {
	b     []byte
	off   int
	err   error
	alias bool // strings point into b instead of copying it
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.err = core.ErrCorruptRecord
		return 0
	}
	d.off += n
	return v
}

// skip steps over one length-prefixed string.
func (d *decoder) skip() {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)-d.off) {
		d.err = core.ErrCorruptRecord
	}
	if d.err == nil {
		d.off += int(n)
	}
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.err = core.ErrCorruptRecord
		return ""
	}
	var s string
	switch {
	case n == 0:
	case d.alias:
		s = unsafe.String(&d.b[d.off], int(n))
	default:
		s = string(d.b[d.off : d.off+int(n)])
	}
	d.off += int(n)
	return s
}
