package codec_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

func TestEncodeDecodeResponse(t *testing.T) {
	bin := make([]byte, 1<<20)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	tests := []*core.Response{
		{Status: 201, Header: http.Header{"Location": {"/a"}, "X-Multi": {"1", "2, 3", ""}}, Body: []byte(`{"ok":true}`)},
		{Status: 204, Header: http.Header{}, Body: []byte{}},
		{Status: 200, Header: http.Header{"Content-Type": {"application/octet-stream"}}, Body: []byte{0, 0xff, 0xfe, 0, 'a'}},
		{Status: 200, Header: http.Header{}, Body: bin},
		{Status: 201, Header: http.Header{"Location": {"/b"}}, Body: []byte{}, BodyOmitted: true},
		{Status: 200, Header: http.Header{"A": {"1"}, "B": {"2", "3"}, "C": {}, "D": {"4"}, "E": {"5"}}, Body: []byte("x")},
	}
	for i, want := range tests {
		got, err := codec.DecodeResponse(codec.EncodeResponse(want))
		if err != nil {
			t.Fatalf("case %d: DecodeResponse: %v", i, err)
		}
		if got.Status != want.Status || !reflect.DeepEqual(got.Header, want.Header) || !bytes.Equal(got.Body, want.Body) || got.BodyOmitted != want.BodyOmitted {
			t.Errorf("case %d: round trip = %+v; want %+v", i, got, want)
		}
	}
}

// TestDecodedFieldsAreSeparate checks that the single-valued fields, which
// share one slab of values, cannot reach each other through append.
func TestDecodedFieldsAreSeparate(t *testing.T) {
	// A header of its own per run: an in-place result whose encoding
	// repeats shares an interned map, which nobody may modify.
	run := strconv.FormatInt(time.Now().UnixNano(), 10)
	h := http.Header{"A": {"1"}, "B": {"2"}, "C": {"3"}, "Run": {run}}
	for _, alias := range []bool{false, true} {
		b := codec.EncodeResponse(&core.Response{Status: 200, Header: h, Body: []byte{}})
		decode := codec.DecodeResponse
		if alias {
			decode = codec.DecodeResponseInPlace
		}
		got, err := decode(b)
		if err != nil {
			t.Fatal(err)
		}
		got.Header["A"] = append(got.Header["A"], "x")
		got.Header.Add("B", "y")
		if !reflect.DeepEqual(got.Header, http.Header{"A": {"1", "x"}, "B": {"2", "y"}, "C": {"3"}, "Run": {run}}) {
			t.Errorf("alias %v: after appending to A and B: %v", alias, got.Header)
		}
	}
}

func TestDecodeResponseCorrupt(t *testing.T) {
	good := codec.EncodeResponse(&core.Response{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x")})
	for _, b := range [][]byte{nil, {1}, {9, 0, 0, 200}, {1, 4, 0, 200}, {1, 0, 0, 1}, good[:6], append([]byte{1, 0, 0, 200}, 0xff, 0xff, 0xff)} {
		if _, err := codec.DecodeResponse(b); !errors.Is(err, core.ErrCorruptRecord) {
			t.Errorf("DecodeResponse(%x) error %v; want ErrCorruptRecord", b, err)
		}
		for range 3 { // the in-place decoder, also once it has seen the bytes
			if _, err := codec.DecodeResponseInPlace(bytes.Clone(b)); !errors.Is(err, core.ErrCorruptRecord) {
				t.Errorf("DecodeResponseInPlace(%x) error %v; want ErrCorruptRecord", b, err)
			}
		}
	}
}

// TestDecodeResponseInPlaceSharesRepeatedHeaders checks that the in-place
// decoder decodes a header encoding it sees again once and shares the map,
// that the shared map is a copy that no record's bytes can change, and that
// headers meeting in one slot of the table never answer for each other.
func TestDecodeResponseInPlaceSharesRepeatedHeaders(t *testing.T) {
	run := strconv.FormatInt(time.Now().UnixNano(), 10)
	want := http.Header{"Content-Type": {"application/json"}, "X-Run": {run}, "Vary": {"A", "B"}}
	enc := codec.EncodeResponse(&core.Response{Status: 201, Header: want, Body: []byte(`{"id":1}`)})
	var bufs [][]byte
	var maps []http.Header
	for range 4 {
		b := bytes.Clone(enc)
		got, err := codec.DecodeResponseInPlace(b)
		if err != nil || got.Status != 201 || string(got.Body) != `{"id":1}` || !reflect.DeepEqual(got.Header, want) {
			t.Fatalf("DecodeResponseInPlace = %+v, %v", got, err)
		}
		bufs, maps = append(bufs, b), append(maps, got.Header)
	}
	same := func(a, b http.Header) bool {
		return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
	}
	if same(maps[0], maps[1]) || !same(maps[1], maps[2]) || !same(maps[2], maps[3]) {
		t.Errorf("header maps shared as %v %v %v; want the first apart, the rest one map",
			same(maps[0], maps[1]), same(maps[1], maps[2]), same(maps[2], maps[3]))
	}
	for _, b := range bufs[1:] {
		clear(b)
	}
	if !reflect.DeepEqual(maps[3], want) {
		t.Errorf("shared header after its records' bytes were overwritten = %v; want %v", maps[3], want)
	}

	// Four times as many encodings as the table has slots, each seen three
	// times: every decode answers with its own header.
	for round := range 3 {
		for i := range 256 {
			h := http.Header{"Location": {"/r/" + strconv.Itoa(i) + "/" + run}}
			got, err := codec.DecodeResponseInPlace(codec.EncodeResponse(&core.Response{Status: 200, Header: h}))
			if err != nil || !reflect.DeepEqual(got.Header, h) {
				t.Fatalf("round %d, header %d: got %v, %v; want %v", round, i, got.Header, err, h)
			}
		}
	}
}

// TestDecodeResponseRefusesImpossibleRecords checks that records which
// parse but cannot be a stored final response are refused: a forged record
// must not reach a client as an interim status, a status HTTP does not
// have, a header that splits the response, or fields AppendHeader never
// writes.
func TestDecodeResponseRefusesImpossibleRecords(t *testing.T) {
	// record encodes a header by hand, fields in the order given.
	record := func(status int, flags byte, fields [][2]string, body string) []byte {
		b := []byte{1, flags, byte(status >> 8), byte(status)}
		b = binary.AppendUvarint(b, uint64(len(fields)))
		for _, f := range fields {
			b = binary.AppendUvarint(b, uint64(len(f[0])))
			b = append(b, f[0]...)
			b = binary.AppendUvarint(b, 1)
			b = binary.AppendUvarint(b, uint64(len(f[1])))
			b = append(b, f[1]...)
		}
		return append(b, body...)
	}
	ok := [][2]string{{"Content-Type", "text/plain"}}
	for name, b := range map[string][]byte{
		"Status100":        record(100, 0, ok, "x"),
		"Status101":        record(101, 0, ok, "x"),
		"Status199":        record(199, 0, ok, "x"),
		"Status600":        record(600, 0, ok, "x"),
		"Status999":        record(999, 0, ok, "x"),
		"Status0":          record(0, 0, ok, "x"),
		"NameWithSpace":    record(200, 0, [][2]string{{"Set Cookie", "a=1"}}, ""),
		"NameWithColon":    record(200, 0, [][2]string{{"X:Y", "a"}}, ""),
		"NameWithNewline":  record(200, 0, [][2]string{{"X\r\nSet-Cookie", "a=1"}}, ""),
		"EmptyName":        record(200, 0, [][2]string{{"", "a"}}, ""),
		"ValueWithCRLF":    record(200, 0, [][2]string{{"Location", "/a\r\nSet-Cookie: a=1"}}, ""),
		"ValueWithLF":      record(200, 0, [][2]string{{"Location", "/a\nb"}}, ""),
		"ValueWithNUL":     record(200, 0, [][2]string{{"Location", "/a\x00"}}, ""),
		"NamesUnsorted":    record(200, 0, [][2]string{{"B", "1"}, {"A", "2"}}, ""),
		"NameRepeated":     record(200, 0, [][2]string{{"A", "1"}, {"A", "2"}}, ""),
		"OmittedWithABody": record(200, 1, ok, "x"),
	} {
		if _, err := codec.DecodeResponse(b); !errors.Is(err, core.ErrCorruptRecord) {
			t.Errorf("%s: DecodeResponse(%q) error %v; want ErrCorruptRecord", name, b, err)
		}
		for range 3 { // the in-place decoder, also once it has seen the bytes
			if _, err := codec.DecodeResponseInPlace(bytes.Clone(b)); !errors.Is(err, core.ErrCorruptRecord) {
				t.Errorf("%s: DecodeResponseInPlace(%q) error %v; want ErrCorruptRecord", name, b, err)
			}
		}
	}
	// What the engine stores still decodes: every final status, obs-text
	// and tabs in values, lower-case names, empty values.
	for _, resp := range []*core.Response{
		{Status: 200, Header: http.Header{"x-lower": {"\t\xff\xfe"}, "X-Empty": {""}}, Body: []byte("a")},
		{Status: 599, Header: http.Header{"!#$%&'*+-.^_`|~09Az": {"v"}}},
		{Status: 204, Header: http.Header{"Location": {"/x"}}, BodyOmitted: true},
	} {
		if _, err := codec.DecodeResponse(codec.EncodeResponse(resp)); err != nil {
			t.Errorf("DecodeResponse(EncodeResponse(%+v)): %v", resp, err)
		}
	}
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(codec.EncodeResponse(&core.Response{Status: 201, Header: http.Header{"A": {"1", "2"}}, Body: []byte("hi")}))
	f.Add([]byte{1, 0, 0, 200, 0})
	f.Add([]byte{1, 0, 0, 101, 0})
	f.Add(codec.EncodeResponse(&core.Response{Status: 200, Header: http.Header{"A": {"1\r\nB: 2"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := codec.DecodeResponse(b)
		if err != nil {
			return
		}
		if resp.Status < 200 || resp.Status > 599 || (resp.BodyOmitted && len(resp.Body) > 0) {
			t.Fatalf("decoded an impossible record: status %d, omitted %v with %d body bytes", resp.Status, resp.BodyOmitted, len(resp.Body))
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
		again, err := codec.DecodeResponse(codec.EncodeResponse(resp))
		if err != nil || again.Status != resp.Status || !bytes.Equal(again.Body, resp.Body) || !reflect.DeepEqual(again.Header, resp.Header) {
			t.Fatalf("re-encoding a decoded record changed it: %+v vs %+v (%v)", resp, again, err)
		}
		// The in-place decoder reads the same record, copying nothing.
		in := bytes.Clone(b)
		shared, err := codec.DecodeResponseInPlace(in)
		if err != nil || shared.Status != resp.Status || shared.BodyOmitted != resp.BodyOmitted ||
			!bytes.Equal(shared.Body, resp.Body) || !reflect.DeepEqual(shared.Header, resp.Header) {
			t.Fatalf("DecodeResponseInPlace = %+v, %v; want %+v", shared, err, resp)
		}
		if len(shared.Body) > 0 && &shared.Body[0] != &in[len(in)-len(shared.Body)] {
			t.Fatalf("DecodeResponseInPlace copied the body")
		}
	})
}

// FuzzDecodeHeader checks that DecodeHeader never panics and decodes only
// what may be sent: token names in AppendHeader's order, values without
// CR, LF or NUL; re-encoded, it decodes to the same header.
func FuzzDecodeHeader(f *testing.F) {
	f.Add(codec.AppendHeader(nil, http.Header{"A": {"1", "2"}, "B": {""}}))
	f.Add(codec.AppendHeader(nil, http.Header{"A": {"1\r\nB: 2"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := codec.DecodeHeader(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("DecodeHeader read %d of %d bytes", n, len(b))
		}
		for name, vals := range h {
			if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("\"(),/:;<=>?@[\\]{}", r) }) {
				t.Fatalf("decoded a header name that is not a token: %q", name)
			}
			for _, v := range vals {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("decoded a header value with CR, LF or NUL: %q", v)
				}
			}
		}
		again, _, err := codec.DecodeHeader(codec.AppendHeader(nil, h))
		if err != nil || !reflect.DeepEqual(again, h) {
			t.Fatalf("re-encoding a decoded header changed it: %v vs %v (%v)", h, again, err)
		}
	})
}
