package pgxstore

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
	"github.com/jackc/pgx/v5/pgtype"
)

// FuzzDecodeRow feeds decode, which turns a completed row's columns into a
// response, arbitrary column values, as a damaged or forged row would hold:
// it never panics; what it refuses wraps core.ErrCorruptRecord; what it
// accepts has header fields that may be sent (token names, values without
// CR, LF or NUL), the body as stored and the row's status, which the
// engine then vets (200–599) like any store's.
func FuzzDecodeRow(f *testing.F) {
	f.Add(int32(201), true, codec.AppendHeader(nil, http.Header{"Content-Type": {"text/plain"}, "Vary": {"a", "b"}}), []byte("made"), false, false)
	f.Add(int32(200), true, []byte{}, []byte(nil), true, true)
	f.Add(int32(101), true, codec.AppendHeader(nil, http.Header{"Upgrade": {"websocket"}}), []byte{}, false, false)
	f.Add(int32(200), false, []byte(nil), []byte(nil), false, true)
	f.Add(int32(-1), true, append(codec.AppendHeader(nil, http.Header{"A": {"1"}}), 0xff), []byte{0}, false, false)
	f.Fuzz(func(t *testing.T, status int32, valid bool, headers, body []byte, omitted, nilHeaders bool) {
		if nilHeaders {
			headers = nil
		}
		resp, err := decode(pgtype.Int4{Int32: status, Valid: valid}, headers, body, omitted)
		if err != nil {
			if !errors.Is(err, core.ErrCorruptRecord) {
				t.Fatalf("decode refused a row with %v; want an error wrapping core.ErrCorruptRecord", err)
			}
			return
		}
		if !valid || headers == nil {
			t.Fatalf("decode accepted a completed row without a status or headers")
		}
		if resp.Status != int(status) || resp.BodyOmitted != omitted || !bytes.Equal(resp.Body, body) || resp.Body == nil || resp.Header == nil {
			t.Fatalf("decode = %+v; want the row's status %d, omitted %v, body %q, non-nil header and body", resp, status, omitted, body)
		}
		for name, vals := range resp.Header {
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) }) {
				t.Fatalf("decoded a header name that is not a token: %q", name)
			}
			for _, v := range vals {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("decoded a header value with CR, LF or NUL: %q", v)
				}
			}
		}
		again, _, err := codec.DecodeHeader(codec.AppendHeader(nil, resp.Header))
		if err != nil || (len(again) > 0 || len(resp.Header) > 0) && !reflect.DeepEqual(again, resp.Header) {
			t.Fatalf("re-encoding decoded headers changed them: %v vs %v (%v)", resp.Header, again, err)
		}
	})
}
