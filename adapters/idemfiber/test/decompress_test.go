package idemfiber_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/idemkit/idemkit/adapters/idemfiber"
	"github.com/idemkit/idemkit/core"
)

func gzipped(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func deflated(t *testing.T, p []byte) []byte { // fasthttp's deflate: the zlib format
	t.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func brotlied(t *testing.T, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := brotli.NewWriter(&b)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

// echoApp serves POST /echo behind the middleware on a loopback socket:
// the handler answers with the body it reads from c.Body() and counts its
// runs.
func echoApp(t *testing.T, engine *core.Engine, runs *atomic.Int64) string {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(recover.New())
	app.Post("/echo", idemfiber.Middleware(engine), func(c *fiber.Ctx) error {
		runs.Add(1)
		return c.Status(201).Send(c.Body())
	})
	return listen(t, app)
}

func post(t *testing.T, url, key, encoding string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(core.KeyHeader, key)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// TestCompressedBodies: a compressed body is fingerprinted as the handler
// sees it (decoded, as c.Body() decodes it), so the same payload sent plain
// is a replay; a decoded body over the limit is 413 and a malformed
// stream 400, both before the handler runs.
func TestCompressedBodies(t *testing.T) {
	payload := []byte(`{"amount": 1200, "currency": "EUR", "note": "` + strings.Repeat("n", 3000) + `"}`)
	over := bytes.Repeat([]byte("z"), 64<<10+1)
	cases := []struct {
		name     string
		encoding string
		encode   func(*testing.T, []byte) []byte
	}{
		{"Gzip", "gzip", gzipped},
		{"Deflate", "deflate", deflated},
		{"Br", "br", brotlied},
		{"Brotli", "brotli", brotlied},
		// c.Body() decodes codings in the order listed.
		{"GzipThenDeflate", "gzip, deflate", func(t *testing.T, p []byte) []byte { return gzipped(t, deflated(t, p)) }},
		// and stops at the first coding it does not know.
		{"GzipThenUnknown", "gzip, x-unknown", gzipped},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var runs atomic.Int64
			url := echoApp(t, core.New(newMemStore(t), core.WithMaxBodyBytes(64<<10)), &runs) + "/echo"
			status, body, _ := post(t, url, `"c-`+tc.name+`"`, tc.encoding, tc.encode(t, payload))
			if status != 201 || !bytes.Equal(body, payload) {
				t.Fatalf("compressed POST: %d, %d bytes (equal=%v); want 201 echoing the decoded payload", status, len(body), bytes.Equal(body, payload))
			}
			status, body, h := post(t, url, `"c-`+tc.name+`"`, "", payload)
			if status != 201 || !bytes.Equal(body, payload) || h.Get("Idempotency-Replayed") != "true" || runs.Load() != 1 {
				t.Errorf("same payload sent plain: %d replayed=%q runs=%d; want a replay: the fingerprint is over the decoded body", status, h.Get("Idempotency-Replayed"), runs.Load())
			}
			if status, _, _ := post(t, url, `"c-over-`+tc.name+`"`, tc.encoding, tc.encode(t, over)); status != 413 {
				t.Errorf("decoded body one byte over the limit: %d; want 413", status)
			}
			if status, _, _ := post(t, url, `"c-bad-`+tc.name+`"`, tc.encoding, []byte("not compressed at all")); status != 400 {
				t.Errorf("malformed stream: %d; want 400 invalid-body", status)
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("handler ran %d times; want once (refused bodies never reach it)", n)
			}
		})
	}
	t.Run("UnknownCoding", func(t *testing.T) {
		var runs atomic.Int64
		url := echoApp(t, core.New(newMemStore(t)), &runs) + "/echo"
		if status, body, _ := post(t, url, `"c-unknown"`, "x-unknown", payload); status != 201 || !bytes.Equal(body, payload) {
			t.Errorf("unknown coding: %d; want 201 with the body as sent (c.Body() leaves it alone)", status)
		}
	})
}

// TestGzipBombBounded sends a ~260 KB gzip body that inflates to 256 MiB.
// It must get 413 with the handler not run, and the server must allocate
// about the body limit, not the inflated size: c.Body() inflated the whole
// body before any size check (docs/contract.md C-FP-2).
func TestGzipBombBounded(t *testing.T) {
	// 256 gzip members of 1 MiB of zeros each: one gzip body (RFC 1952
	// allows several members), cheap to build.
	bomb := bytes.Repeat(gzipped(t, make([]byte, 1<<20)), 256)
	t.Logf("bomb: %d bytes of gzip, 256 MiB inflated", len(bomb))

	var runs atomic.Int64
	url := echoApp(t, core.New(newMemStore(t)), &runs) + "/echo"
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	status, _, _ := post(t, url, `"bomb"`, "gzip", bomb)
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("status %d; allocated %d MiB while serving it", status, allocated>>20)
	if status != 413 || runs.Load() != 0 {
		t.Errorf("gzip bomb: status %d, handler runs %d; want 413 and no run", status, runs.Load())
	}
	if allocated > 32<<20 {
		t.Errorf("allocated %d MiB serving a gzip bomb; want decompression stopped at the 1 MiB body limit (< 32 MiB)", allocated>>20)
	}
}
