package codec_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// benchRecord is a typical stored response: a JSON body of 1 KiB under
// two header fields.
var benchRecord = &core.Response{
	Status: http.StatusCreated,
	Header: http.Header{"Content-Type": {"application/json"}, "Location": {"/payments/123"}},
	Body:   bytes.Repeat([]byte("x"), 1024),
}

// BenchmarkCodec measures the record codec stores use: encoding into a
// reused buffer, and decoding with copies and in place.
func BenchmarkCodec(b *testing.B) {
	enc := codec.EncodeResponse(benchRecord)
	b.Run("Append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, codec.EncodedSizeHint(benchRecord))
		for b.Loop() {
			buf = codec.AppendResponse(buf[:0], benchRecord)
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.DecodeResponse(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeInPlace", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := codec.DecodeResponseInPlace(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
