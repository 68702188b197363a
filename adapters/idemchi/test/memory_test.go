package idemchi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/idemkit/idemkit/adapters/idemchi"
	"github.com/idemkit/idemkit/core"
)

// firstReads counts request bodies whose first Read has been called: by
// then the middleware has made whatever buffer it makes for the body.
type firstReads struct {
	mu    sync.Mutex
	n     int
	cond  *sync.Cond
	limit int
}

type signalBody struct {
	io.ReadCloser
	once sync.Once
	f    *firstReads
}

func (b *signalBody) Read(p []byte) (int, error) {
	b.once.Do(func() {
		b.f.mu.Lock()
		b.f.n++
		b.f.mu.Unlock()
		b.f.cond.Broadcast()
	})
	return b.ReadCloser.Read(p)
}

// waitFor waits until n bodies were read from, or timeout.
func (f *firstReads) waitFor(n int, timeout time.Duration) int {
	timer := time.AfterFunc(timeout, f.cond.Broadcast)
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.n < n && time.Now().Before(deadline) {
		f.cond.Wait()
	}
	return f.n
}

// heapInuse returns the heap in use after two collections (the second
// empties sync.Pools, whose contents survive one).
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func rssKiB() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
		}
	}
	return "?"
}

// TestMemoryFollowsBytesReceived opens many connections to a real loopback
// server, each promising a 1 MiB body and sending one byte of it, and holds
// them open while every request sits in the middleware reading its body.
// The heap must grow with the bytes received, not with the bytes promised
// (docs/contract.md C-FP-2): well under 64 KiB per
// connection, where a buffer of the declared length costs 1 MiB each.
func TestMemoryFollowsBytesReceived(t *testing.T) {
	const conns = 300
	for _, tc := range []struct {
		name    string
		headers string
		first   string // the one body byte, framed
	}{
		{"ContentLength", "Content-Length: 1048576\r\n", "{"},
		{"Chunked", "Transfer-Encoding: chunked\r\n", "1\r\n{\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &firstReads{}
			f.cond = sync.NewCond(&f.mu)
			r := chi.NewRouter()
			r.Use(func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					req.Body = &signalBody{ReadCloser: req.Body, f: f}
					next.ServeHTTP(w, req)
				})
			})
			r.Use(idemchi.Middleware(core.New(newMemStore(t))))
			r.Post("/p", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) })
			srv := httptest.NewServer(r)
			defer srv.Close()
			addr := srv.Listener.Addr().String()

			before := heapInuse()
			var open []net.Conn
			defer func() {
				for _, c := range open {
					c.Close()
				}
			}()
			for i := 0; i < conns; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatalf("dial %d: %v", i, err)
				}
				open = append(open, c)
				req := fmt.Sprintf("POST /p HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \"mem-%d\"\r\n%s\r\n%s", i, tc.headers, tc.first)
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			if n := f.waitFor(conns, 30*time.Second); n != conns {
				t.Fatalf("%d of %d requests reached the body read", n, conns)
			}
			time.Sleep(100 * time.Millisecond) // let every reader block in Read
			during := heapInuse()
			growth := int64(during) - int64(before)
			t.Logf("%d connections promising 1 MiB, one byte sent: heap in use grew %d KiB (%d KiB per connection); RSS %s",
				conns, growth>>10, growth/conns>>10, rssKiB())
			if growth > conns*64<<10 {
				t.Errorf("heap grew %d KiB for %d connections that sent one body byte each; want < %d KiB: memory must follow the bytes received, not the declared length",
					growth>>10, conns, conns*64)
			}

			// The requests end when their clients go away: 400, handler not run.
			c := open[0]
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, " 400 ") {
				t.Errorf("body cut short: status line %q (%v); want 400 invalid-body", line, err)
			}
		})
	}
}
