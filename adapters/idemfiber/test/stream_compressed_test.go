package idemfiber_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/core"
)

// streamLimit is the body limit of the streamed-and-compressed tests.
const streamLimit = 64 << 10

// streamApp serves, with fiber's StreamRequestBody, POST /echo behind the
// middleware (limit streamLimit) and POST /plain without it, both answering
// 201 with what c.Body() returns. It reports the handler runs behind the
// middleware and, for the last connection answered, the bytes the server
// read from it before it wrote the first byte of its answer.
func streamApp(t *testing.T) (addr string, runs, readBeforeAnswer *atomic.Int64) {
	t.Helper()
	runs, readBeforeAnswer = new(atomic.Int64), new(atomic.Int64)
	engine := core.New(newMemStore(t), core.WithMaxBodyBytes(streamLimit))
	app := fiber.New(fiber.Config{DisableStartupMessage: true, StreamRequestBody: true})
	app.Use(recover.New())
	app.Post("/echo", idemfiber.Middleware(engine), func(c *fiber.Ctx) error {
		runs.Add(1)
		return c.Status(201).Send(c.Body())
	})
	app.Post("/plain", func(c *fiber.Ctx) error { return c.Status(201).Send(c.Body()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go app.Listener(countingListener{ln, readBeforeAnswer})
	t.Cleanup(func() { app.ShutdownWithTimeout(5 * time.Second) })
	return ln.Addr().String(), runs, readBeforeAnswer
}

// countingListener counts the bytes the server reads from each connection
// until it first writes to it; what fasthttp reads after answering (the
// rest of a refused body, as the start of a next request) is not counted.
type countingListener struct {
	net.Listener
	readBeforeAnswer *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, readBeforeAnswer: l.readBeforeAnswer}, nil
}

type countingConn struct {
	net.Conn
	readBeforeAnswer *atomic.Int64
	read             atomic.Int64
	answered         atomic.Bool
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	if !c.answered.Swap(true) {
		c.readBeforeAnswer.Store(c.read.Load())
	}
	return c.Conn.Write(p)
}

// streamed is the answer to one chunked request.
type streamed struct {
	status int
	body   []byte
	header http.Header
	wrote  int64 // body bytes the client managed to write before the answer
}

// postChunked sends body chunked with the given Content-Encoding (and key,
// unless empty) over a fresh connection, writing as the server reads, and
// stops writing once the answer has arrived.
func postChunked(t *testing.T, addr, path, key, encoding string, body io.Reader) streamed {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	// A safety net against a hung server, not a measure.
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	head := "POST " + path + " HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
	if key != "" {
		head += core.KeyHeader + ": " + key + "\r\n"
	}
	if encoding != "" {
		head += "Content-Encoding: " + encoding + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatalf("write header: %v", err)
	}
	var stop atomic.Bool
	wrote := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { wrote <- n }()
		buf := make([]byte, 32<<10)
		w := bufio.NewWriterSize(conn, 40<<10)
		for !stop.Load() {
			m, err := body.Read(buf)
			if m > 0 {
				fmt.Fprintf(w, "%x\r\n", m)
				w.Write(buf[:m])
				w.WriteString("\r\n")
				if w.Flush() != nil {
					return
				}
				n += int64(m)
			}
			if err != nil {
				w.WriteString("0\r\n\r\n")
				w.Flush()
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		stop.Store(true)
		conn.Close()
		t.Fatalf("POST %s: reading the answer: %v (client wrote %d body bytes)", path, err, <-wrote)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stop.Store(true)
	conn.Close() // unblocks a writer the server no longer reads
	return streamed{status: resp.StatusCode, body: b, header: resp.Header, wrote: <-wrote}
}

// repeated reads prefix, then unit over and over, n bytes in all.
func repeated(prefix, unit []byte, n int64) io.Reader {
	return io.LimitReader(io.MultiReader(bytes.NewReader(prefix), &cycle{unit: unit}), n)
}

type cycle struct {
	unit []byte
	off  int
}

func (c *cycle) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], c.unit[c.off:])
		n += m
		c.off = (c.off + m) % len(c.unit)
	}
	return n, nil
}

// gzipHeader is a gzip member header without a name or time.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// storedBlock is a non-final deflate stored block of 65535 bytes of noise:
// its compressed size is its decoded size.
func storedBlock() []byte {
	b := []byte{0, 0xff, 0xff, 0, 0}
	r := rand.New(rand.NewPCG(1, 2))
	for len(b) < 5+65535 {
		b = binary.LittleEndian.AppendUint64(b, r.Uint64())
	}
	return b[:5+65535]
}

// TestStreamedCompressedBodyBounded sends, with StreamRequestBody, chunked
// compressed bodies of 64 MiB and stops writing when the server answers. A
// streamed body that is also compressed must be decoded from the stream,
// and its raw bytes bounded too, not read whole by c.Body() first
// (docs/contract.md C-FP-2: memory follows the bytes received): each must
// be refused (413 body-too-large, or 400 invalid-body for a malformed
// stream) after the server read about the limit, the handler not run and
// nothing stored, so that a clean retry with the same key runs once.
func TestStreamedCompressedBodyBounded(t *testing.T) {
	const total = 64 << 20
	emptyGzip := gzipped(t, nil)
	zeros := gzipped(t, make([]byte, 1<<20))
	cases := []struct {
		name     string
		encoding string
		body     func() io.Reader
		status   int
		code     string
	}{
		// 64 MiB of stored (incompressible) deflate data in one gzip member.
		{"GzipStored", "gzip", func() io.Reader { return repeated(gzipHeader, storedBlock(), total) }, 413, core.CodeBodyTooLarge},
		// Gzip members of 1 MiB of zeros each: 64 GiB inflated.
		{"GzipBomb", "gzip", func() io.Reader { return repeated(nil, zeros, total) }, 413, core.CodeBodyTooLarge},
		// A zlib header then empty stored blocks: no output at all.
		{"EmptyDeflateBlocks", "deflate", func() io.Reader { return repeated([]byte{0x78, 0x01}, []byte{0, 0, 0, 0xff, 0xff}, total) }, 413, core.CodeBodyTooLarge},
		// Empty gzip members: no output at all.
		{"EmptyGzipMembers", "gzip", func() io.Reader { return repeated(nil, emptyGzip, total) }, 413, core.CodeBodyTooLarge},
		// Not gzip at all.
		{"Malformed", "gzip", func() io.Reader { return repeated([]byte("not gzip "), []byte("at all "), total) }, 400, core.CodeInvalidBody},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, runs, read := streamApp(t)
			key := `"s-` + tc.name + `"`
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			got := postChunked(t, addr, "/echo", key, tc.encoding, tc.body())
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d %s; server read %d KiB before answering, client wrote %d KiB of %d MiB, %d MiB allocated", got.status,
				bytes.TrimSpace(got.body[:min(len(got.body), 60)]), read.Load()>>10, got.wrote>>10, total>>20, allocated>>20)
			if got.status != tc.status || !bytes.Contains(got.body, []byte(tc.code)) {
				t.Errorf("status %d, body %.200q; want %d %s", got.status, got.body, tc.status, tc.code)
			}
			// The adapter lets the compressed bytes run 256 KiB and an eighth
			// ahead of the decoded ones; fasthttp reads ahead by a buffer.
			if n := read.Load(); n > 512<<10 {
				t.Errorf("the server read %d KiB of a %d KiB-limit streamed compressed body before refusing it; want about the limit (< 512 KiB): the raw stream must be decoded as it is read and bounded (docs/contract.md C-FP-2)", n>>10, streamLimit>>10)
			}
			if allocated > 32<<20 {
				t.Errorf("allocated %d MiB serving it; want about the limit (< 32 MiB) (docs/contract.md C-FP-2)", allocated>>20)
			}
			if n := runs.Load(); n != 0 {
				t.Errorf("handler ran %d times; want 0: a refused body never reaches it", n)
			}
			payload := []byte(`{"amount": 100}`)
			for i, want := range []string{"", "true"} {
				got := postChunked(t, addr, "/echo", key, "gzip", bytes.NewReader(gzipped(t, payload)))
				if got.status != 201 || !bytes.Equal(got.body, payload) || got.header.Get("Idempotency-Replayed") != want {
					t.Errorf("clean retry %d with the same key: %d %q replayed=%q; want 201 echoing the payload, replayed=%q: nothing was stored for the refused body", i+1, got.status, got.body, got.header.Get("Idempotency-Replayed"), want)
				}
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("handler ran %d times over the two clean retries; want once", n)
			}
		})
	}
}

// TestStreamedCompressedBodyAsWithoutMiddleware sends valid chunked
// compressed bodies within the limit: the guarded handler sees through
// c.Body() exactly what a handler without the middleware sees (the decoded
// body), and the replay is byte-identical.
func TestStreamedCompressedBodyAsWithoutMiddleware(t *testing.T) {
	text := []byte(`{"note": "` + strings.Repeat("the quick brown fox ", 4000)[:streamLimit-20] + `"}`)
	noise := storedBlock()[5 : 5+60<<10]
	cases := []struct {
		name     string
		encoding string
		payload  []byte
		encode   func(*testing.T, []byte) []byte
	}{
		{"Gzip", "gzip", text, gzipped},
		{"GzipNoise", "gzip", noise, gzipped},
		{"GzipStored", "gzip", noise, func(t *testing.T, p []byte) []byte {
			var b bytes.Buffer
			w, _ := gzip.NewWriterLevel(&b, gzip.NoCompression)
			w.Write(p)
			w.Close()
			return b.Bytes()
		}},
		{"Deflate", "deflate", text, deflated},
		{"Br", "br", text, brotlied},
		{"BrNoise", "br", noise, brotlied},
		{"GzipThenDeflate", "gzip, deflate", text, func(t *testing.T, p []byte) []byte { return gzipped(t, deflated(t, p)) }},
		{"GzipThenDeflateNoise", "gzip, deflate", noise, func(t *testing.T, p []byte) []byte { return gzipped(t, deflated(t, p)) }},
		{"GzipThenUnknown", "gzip, x-unknown", text, gzipped},
		// c.Body() ignores bytes after a zlib stream.
		{"DeflateThenTrailing", "deflate", text, func(t *testing.T, p []byte) []byte { return append(deflated(t, p), "trailing bytes"...) }},
		{"Empty", "gzip", nil, gzipped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, runs, _ := streamApp(t)
			raw := tc.encode(t, tc.payload)
			plain := postChunked(t, addr, "/plain", "", tc.encoding, bytes.NewReader(raw))
			if plain.status != 201 || !bytes.Equal(plain.body, tc.payload) {
				t.Fatalf("without the middleware: %d, %d bytes; want 201 echoing the %d decoded bytes", plain.status, len(plain.body), len(tc.payload))
			}
			key := `"w-` + tc.name + `"`
			first := postChunked(t, addr, "/echo", key, tc.encoding, bytes.NewReader(raw))
			if first.status != 201 || !bytes.Equal(first.body, plain.body) {
				t.Errorf("guarded: %d, %d bytes %.120q; want 201 and the %d bytes c.Body() returns without the middleware", first.status, len(first.body), first.body, len(plain.body))
			}
			replay := postChunked(t, addr, "/echo", key, tc.encoding, bytes.NewReader(raw))
			if replay.status != first.status || !bytes.Equal(replay.body, first.body) || replay.header.Get("Idempotency-Replayed") != "true" {
				t.Errorf("retry: %d, %d bytes, replayed=%q; want the first response byte for byte, replayed", replay.status, len(replay.body), replay.header.Get("Idempotency-Replayed"))
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("handler ran %d times; want once", n)
			}
		})
	}
}

// TestEmptyCompressedBody sends empty bodies labelled compressed, buffered
// and streamed. Every coding encodes even an empty body as some bytes, so
// an empty coded body (or an empty input to a later coding) is malformed:
// 400 invalid-body, the handler not run, nothing stored (docs/contract.md
// C-FP-2). c.Body() would hand the handler its decoder's error text ("EOF",
// "brotli: truncated input") as the body, while the fingerprint was of an
// empty body.
func TestEmptyCompressedBody(t *testing.T) {
	cases := []struct{ name, encoding string }{
		{"Gzip", "gzip"},
		{"Deflate", "deflate"},
		{"Br", "br"},
		// A gzip of nothing, labelled as br inside gzip: br's input is empty.
		{"GzipThenBr", "gzip, br"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if strings.Contains(tc.encoding, ",") {
				body = gzipped(t, nil)
			}
			payload := []byte(`{"amount": 100}`)
			var runs atomic.Int64
			url := echoApp(t, core.New(newMemStore(t)), &runs) + "/echo"
			key := `"empty-` + tc.name + `"`
			if status, b, _ := post(t, url, key, tc.encoding, body); status != 400 || !bytes.Contains(b, []byte(core.CodeInvalidBody)) {
				t.Errorf("buffered: %d %q; want 400 invalid-body", status, b)
			}
			if status, b, _ := post(t, url, key, "", payload); status != 201 || !bytes.Equal(b, payload) || runs.Load() != 1 {
				t.Errorf("buffered, clean retry with the same key: %d %q, %d runs; want 201 echoing the payload, run once", status, b, runs.Load())
			}

			addr, sruns, _ := streamApp(t)
			got := postChunked(t, addr, "/echo", key, tc.encoding, bytes.NewReader(body))
			if got.status != 400 || !bytes.Contains(got.body, []byte(core.CodeInvalidBody)) {
				t.Errorf("streamed: %d %q; want 400 invalid-body", got.status, got.body)
			}
			got = postChunked(t, addr, "/echo", key, "gzip", bytes.NewReader(gzipped(t, payload)))
			if got.status != 201 || !bytes.Equal(got.body, payload) || sruns.Load() != 1 {
				t.Errorf("streamed, clean retry with the same key: %d %q, %d runs; want 201 echoing the payload, run once", got.status, got.body, sruns.Load())
			}
		})
	}
}

// TestLongContentEncodingRefused: a body wrapped in more content codings
// than any client uses is refused with 400 invalid-body, buffered and
// streamed, before a decoder is made for each coding: 600 nested gzips
// cost one decoder each (tens of MiB), and past 255 bytes of
// Content-Encoding fiber's own c.Body() stops decoding, so the handler
// would see another body than the one fingerprinted.
func TestLongContentEncodingRefused(t *testing.T) {
	cases := []struct {
		name string
		n    int
		pad  int // spaces before each coding after the first
	}{{"FiveCodings", 5, 0}, {"SixHundredCodings", 600, 0}, {"TwoCodingsPaddedPast255Bytes", 2, 300}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte("x")
			for range tc.n {
				body = gzipped(t, body)
			}
			encoding := strings.TrimSuffix(strings.Repeat("gzip,"+strings.Repeat(" ", tc.pad+1), tc.n), ","+strings.Repeat(" ", tc.pad+1))
			payload := []byte(`{"amount": 100}`)
			var runs atomic.Int64
			url := echoApp(t, core.New(newMemStore(t)), &runs) + "/echo"
			key := `"codings-` + tc.name + `"`
			if status, b, _ := post(t, url, key, encoding, body); status != 400 || !bytes.Contains(b, []byte(core.CodeInvalidBody)) || runs.Load() != 0 {
				t.Errorf("buffered, %d codings: %d %.200q, %d runs; want 400 invalid-body, no run (docs/contract.md C-FP-2)", tc.n, status, b, runs.Load())
			}
			if status, b, _ := post(t, url, key, "", payload); status != 201 || !bytes.Equal(b, payload) || runs.Load() != 1 {
				t.Errorf("buffered, clean retry with the same key: %d %.200q, %d runs; want 201 echoing the payload, run once", status, b, runs.Load())
			}

			addr, sruns, _ := streamApp(t)
			got := postChunked(t, addr, "/echo", key, encoding, bytes.NewReader(body))
			if got.status != 400 || !bytes.Contains(got.body, []byte(core.CodeInvalidBody)) || sruns.Load() != 0 {
				t.Errorf("streamed, %d codings: %d %.200q, %d runs; want 400 invalid-body, no run", tc.n, got.status, got.body, sruns.Load())
			}
		})
	}

	// Four codings, the most accepted, still decode as fiber does.
	body := []byte(`{"amount": 4}`)
	for range 4 {
		body = gzipped(t, body)
	}
	var runs atomic.Int64
	url := echoApp(t, core.New(newMemStore(t)), &runs) + "/echo"
	if status, b, _ := post(t, url, `"codings-four"`, "gzip, gzip, gzip, gzip", body); status != 201 || string(b) != `{"amount": 4}` || runs.Load() != 1 {
		t.Errorf("four codings: %d %.200q, %d runs; want 201 echoing the decoded body, run once", status, b, runs.Load())
	}
}
