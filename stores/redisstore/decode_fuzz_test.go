package redisstore

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/codec"
)

// FuzzCompletedRecord feeds the decoder of a completed record's value (the
// state byte, the fingerprint, then core's encoding of the response)
// arbitrary bytes, as a damaged or forged Redis value would hold: it never
// panics; it refuses what is malformed with an error wrapping
// core.ErrStoreUnavailable (and core.ErrCorruptRecord where the value is
// not a record at all); a value stored under another fingerprint is a
// mismatch; a replay is exactly what codec.DecodeResponse reads from the
// encoding, whose own checks (a final status, header fields that may be
// sent) FuzzDecodeResponse in core/codec covers.
func FuzzCompletedRecord(f *testing.F) {
	fp := core.Fingerprint{1, 2, 3}
	rec := func(fp core.Fingerprint, resp *core.Response) []byte {
		return codec.AppendResponse(append([]byte{stateCompleted}, fp[:]...), resp)
	}
	f.Add(rec(fp, &core.Response{Status: 201, Header: http.Header{"A": {"1", "2"}}, Body: []byte("hi")}))
	f.Add(rec(core.Fingerprint{9}, &core.Response{Status: 200, Header: http.Header{}}))
	f.Add(rec(fp, &core.Response{Status: 200, Header: http.Header{}, BodyOmitted: true}))
	f.Add([]byte{statePending})
	f.Add(append([]byte{stateCompleted}, fp[:5]...))
	f.Fuzz(func(t *testing.T, v []byte) {
		s := &Store{prefix: DefaultPrefix}
		c, err := s.completed("claim", "k", string(v), fp)
		want, werr := codec.DecodeResponse(bytes.Clone(v[min(len(v), headerLen):]))
		switch {
		case len(v) < headerLen || v[0] != stateCompleted:
			if err == nil || !errors.Is(err, core.ErrCorruptRecord) {
				t.Fatalf("completed(%q) = %+v, %v; want an error wrapping core.ErrCorruptRecord", v, c, err)
			}
		case !bytes.Equal(v[1:headerLen], fp[:]):
			if err != nil || c.Status != core.ClaimMismatch {
				t.Fatalf("a record of another fingerprint: %+v, %v; want a mismatch", c, err)
			}
		case werr != nil:
			if err == nil || !errors.Is(err, core.ErrStoreUnavailable) {
				t.Fatalf("completed accepted what codec.DecodeResponse refuses (%v): %+v, %v", werr, c, err)
			}
		default:
			if err != nil || c.Status != core.ClaimReplay || c.Response == nil {
				t.Fatalf("completed(%q) = %+v, %v; want the replay codec.DecodeResponse reads", v, c, err)
			}
			got := c.Response
			if got.Status != want.Status || got.BodyOmitted != want.BodyOmitted || !bytes.Equal(got.Body, want.Body) || len(got.Header) != len(want.Header) {
				t.Fatalf("completed read %+v; codec.DecodeResponse reads %+v", got, want)
			}
			for name, vals := range got.Header {
				if strings.Join(vals, "\n") != strings.Join(want.Header[name], "\n") {
					t.Fatalf("field %s: %q; codec.DecodeResponse reads %q", name, vals, want.Header[name])
				}
			}
		}
	})
}
