package idemfiber

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/andybalholm/brotli"
)

// readLikeEngine reads r as the engine reads a body of unknown length:
// into 4 KiB chunks, until EOF or an error.
func readLikeEngine(r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4<<10)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func encode(t *testing.T, coding string, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "deflate":
		w = zlib.NewWriter(&b)
	case "br":
		w = brotli.NewWriterLevel(&b, brotli.DefaultCompression)
	}
	w.Write(p)
	w.Close()
	return b.Bytes()
}

// TestStreamedDecoderBound: the bound on a streamed compressed body's
// compressed bytes (rawSlack plus 1/rawRatio ahead of the decoded bytes)
// lets through incompressible bodies far larger than the slack, in every
// coding and nested, whatever the decoders read ahead, and stops a stream
// that decodes to nothing one byte past rawSlack, as too large
// (docs/contract.md C-FP-2).
func TestStreamedDecoderBound(t *testing.T) {
	noise := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	for _, codings := range [][]string{{"gzip"}, {"deflate"}, {"br"}, {"gzip", "deflate"}, {"br", "gzip", "deflate"}} {
		raw := noise
		for i := len(codings) - 1; i >= 0; i-- {
			raw = encode(t, codings[i], raw)
		}
		d := &decoder{encodings: codings}
		s := &rawStream{r: bytes.NewReader(raw), d: d}
		d.src, d.raw = s, s
		got, err := readLikeEngine(d)
		if err != nil || !bytes.Equal(got, noise) || !bytes.Equal(s.buf, raw) {
			t.Errorf("%q, %d MiB of noise in %d compressed bytes: %d bytes, kept %d compressed, err %v; want the whole body and every compressed byte kept",
				codings, len(noise)>>20, len(raw), len(got), len(s.buf), err)
		}
	}

	empty := bytes.Repeat([]byte{0, 0, 0, 0xff, 0xff}, 1<<20) // empty stored blocks
	d := &decoder{encodings: []string{"deflate"}}
	s := &rawStream{r: io.MultiReader(bytes.NewReader([]byte{0x78, 0x01}), bytes.NewReader(empty)), d: d}
	d.src, d.raw = s, s
	got, err := readLikeEngine(d)
	var mbe *http.MaxBytesError
	if len(got) != 0 || !errors.As(err, &mbe) || len(s.buf) != rawSlack+1 {
		t.Errorf("5 MiB of empty deflate blocks: %d bytes, kept %d compressed, err %v; want an http.MaxBytesError one byte past %d compressed bytes", len(got), len(s.buf), err, rawSlack)
	}
}
