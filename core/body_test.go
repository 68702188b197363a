package core_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/idemkit/idemkit/core"
)

// readerExchange is a fakeExchange whose body is any reader with any
// declared length, as a server hands it over.
type readerExchange struct {
	*fakeExchange
	r io.Reader
	n int64
}

func (x *readerExchange) Body() (io.Reader, int64) { return x.r, x.n }

// failingReader yields its bytes, then err.
type failingReader struct {
	b   []byte
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// oneByteReader yields one byte per Read, as a slow client does.
type oneByteReader struct{ r io.Reader }

func (r oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return r.r.Read(p[:1])
}

func problemCode(t *testing.T, resp *core.Response) string {
	t.Helper()
	if resp == nil {
		t.Fatal("nothing sent")
	}
	var p core.Problem
	if err := json.Unmarshal(resp.Body, &p); err != nil {
		t.Fatalf("problem body %q: %v", resp.Body, err)
	}
	return p.Code
}

// TestBodyReadErrors drives every body-read failure through Serve: a body
// shorter than its declared length, a reader that fails, and the server's
// own limit (http.MaxBytesError) each refuse the request with the
// documented problem (docs/problems.md), and the handler never runs.
func TestBodyReadErrors(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 40<<10) // spans several read chunks
	cases := []struct {
		name   string
		r      io.Reader
		n      int64
		status int
		code   string
	}{
		{"ShortSmallBody", strings.NewReader("abc"), 10, 400, core.CodeInvalidBody},
		{"ShortLargeBody", bytes.NewReader(big), 100 << 10, 400, core.CodeInvalidBody},
		{"ReaderError", &failingReader{b: []byte("ab"), err: errors.New("connection reset")}, -1, 400, core.CodeInvalidBody},
		{"ReaderErrorDeclared", &failingReader{b: big, err: errors.New("connection reset")}, 64 << 10, 400, core.CodeInvalidBody},
		{"MaxBytesError", &failingReader{b: big, err: &http.MaxBytesError{Limit: 1000}}, -1, 413, core.CodeBodyTooLarge},
		{"UnknownLengthOverLimit", bytes.NewReader(make([]byte, 1<<20+1)), -1, 413, core.CodeBodyTooLarge},
		{"DeclaredOverLimit", strings.NewReader("x"), 1<<20 + 1, 413, core.CodeBodyTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := core.New(newStore(t))
			x := &readerExchange{fakeExchange: newFake(`"body-`+tc.name+`"`, "", created), r: tc.r, n: tc.n}
			e.Serve(x)
			if x.runs != 0 {
				t.Errorf("handler ran %d times; want 0: an unreadable body is refused before the handler", x.runs)
			}
			if x.sent == nil || x.sent.Status != tc.status {
				t.Fatalf("sent %+v; want status %d", x.sent, tc.status)
			}
			if got := problemCode(t, x.sent); got != tc.code {
				t.Errorf("problem code %q; want %q", got, tc.code)
			}
		})
	}
}

// TestBodyArrivesWhole checks that a body read in many small pieces,
// across chunk boundaries, reaches the handler whole and with its length,
// with and without a declared length.
func TestBodyArrivesWhole(t *testing.T) {
	for _, size := range []int{1, 4<<10 - 1, 4 << 10, 4<<10 + 1, 8 << 10, 100 << 10, 1 << 20} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i * 7)
		}
		for _, declared := range []bool{true, false} {
			n := int64(-1)
			if declared {
				n = int64(size)
			}
			var seen []byte
			e := core.New(newStore(t))
			x := &readerExchange{fakeExchange: newFake(`"whole"`, "", func(b []byte) (*core.Response, error) {
				seen = append([]byte(nil), b...)
				return &core.Response{Status: 201, Header: http.Header{}}, nil
			}), r: oneByteReaderIf(size < 200<<10, bytes.NewReader(body)), n: n}
			e.Serve(x)
			if x.runs != 1 || !bytes.Equal(seen, body) {
				t.Errorf("size %d declared %v: runs=%d, handler saw %d bytes (equal=%v); want the whole body once", size, declared, x.runs, len(seen), bytes.Equal(seen, body))
			}
		}
	}
}

func oneByteReaderIf(slow bool, r io.Reader) io.Reader {
	if slow {
		return oneByteReader{r}
	}
	return r
}

// TestBodyMemoryFollowsBytesReceived: a client that declares the largest
// body allowed and sends one byte before the connection breaks must not
// cost the declared length in allocations (docs/contract.md C-FP-2).
func TestBodyMemoryFollowsBytesReceived(t *testing.T) {
	e := core.New(newStore(t))
	const rounds = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < rounds; i++ {
		x := &readerExchange{
			fakeExchange: newFake(`"promise"`, "", created),
			r:            &failingReader{b: []byte("{"), err: io.ErrUnexpectedEOF},
			n:            1 << 20,
		}
		e.Serve(x)
		if x.sent == nil || x.sent.Status != 400 {
			t.Fatalf("sent %+v; want 400 invalid-body", x.sent)
		}
	}
	runtime.ReadMemStats(&after)
	perRequest := (after.TotalAlloc - before.TotalAlloc) / rounds
	t.Logf("allocated %d bytes per request declaring 1 MiB and sending 1 byte", perRequest)
	if perRequest > 64<<10 {
		t.Errorf("allocated %d bytes per request; want far below the declared 1 MiB (memory follows bytes received)", perRequest)
	}
}
