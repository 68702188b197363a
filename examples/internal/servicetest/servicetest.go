// Package servicetest checks that an example service implements the
// example contract (the README's "Example services" section) over HTTP.
// Every example's test starts its routes on a loopback server and calls
// [Check].
package servicetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idemkit/idemkit/core"
	"github.com/idemkit/idemkit/core/memstore"
	"github.com/idemkit/idemkit/examples/internal/service"
)

type reply struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, key, apiKey, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if apiKey != "" {
		req.Header.Set("X-Api-Key", apiKey)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func executions(t *testing.T, base string) int64 {
	t.Helper()
	r := do(t, http.MethodGet, base+"/stats", "", "", "")
	var s struct {
		Executions int64 `json:"executions"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &s) != nil {
		t.Fatalf("GET /stats: %d %q", r.status, r.body)
	}
	return s.Executions
}

// Check drives the service at base through the example contract.
func Check(t *testing.T, base string) {
	t.Helper()
	const payment = `{"amount": 1200, "currency": "EUR"}`
	if r := do(t, http.MethodGet, base+"/healthz", "", "", ""); r.status != http.StatusOK {
		t.Fatalf("GET /healthz: %d", r.status)
	}
	first := do(t, http.MethodPost, base+"/payments", `"svc-key-1"`, "client-a", payment)
	var p struct {
		ID        string `json:"id"`
		Amount    int64  `json:"amount"`
		Currency  string `json:"currency"`
		Execution int64  `json:"execution"`
	}
	if first.status != http.StatusCreated || json.Unmarshal(first.body, &p) != nil || p.ID == "" || p.Amount != 1200 || p.Currency != "EUR" || p.Execution != 1 {
		t.Fatalf("first POST /payments: %d %q; want 201 with the payment and execution 1", first.status, first.body)
	}
	again := do(t, http.MethodPost, base+"/payments", `"svc-key-1"`, "client-a", payment)
	if again.status != http.StatusCreated || string(again.body) != string(first.body) || again.header.Get("Idempotency-Replayed") != "true" {
		t.Errorf("retry: %d %q replayed=%q; want the first response replayed", again.status, again.body, again.header.Get("Idempotency-Replayed"))
	}
	other := do(t, http.MethodPost, base+"/payments", `"svc-key-1"`, "client-b", payment)
	if other.status != http.StatusCreated || other.header.Get("Idempotency-Replayed") != "" {
		t.Errorf("same key, other X-Api-Key: %d replayed=%q; want a fresh 201 (keys scoped by X-Api-Key)", other.status, other.header.Get("Idempotency-Replayed"))
	}
	if r := do(t, http.MethodPost, base+"/payments", `"svc-key-1"`, "client-a", `{"amount": 1, "currency": "EUR"}`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("same key, other payload: %d; want 422", r.status)
	}
	if r := do(t, http.MethodPost, base+"/payments", "", "client-a", payment); r.status != http.StatusBadRequest {
		t.Errorf("no key: %d; want 400 (key required)", r.status)
	}
	for i := 0; i < 2; i++ {
		if r := do(t, http.MethodPost, base+"/payments?fail=1", `"svc-key-fail"`, "client-a", payment); r.status != http.StatusInternalServerError {
			t.Errorf("fail=1 attempt %d: %d; want 500", i+1, r.status)
		}
	}
	// A slow request and its duplicate: one runs, the other gets 409. The
	// duplicate is sent once the first has started (its execution is
	// counted before it sleeps), not after a guess.
	var wg sync.WaitGroup
	wg.Add(1)
	before := executions(t, base)
	go func() {
		defer wg.Done()
		do(t, http.MethodPost, base+"/payments?delay_ms=1000", `"svc-key-slow"`, "client-a", payment)
	}()
	for deadline := time.Now().Add(10 * time.Second); executions(t, base) == before; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the slow request never started")
		}
	}
	if r := do(t, http.MethodPost, base+"/payments?delay_ms=1000", `"svc-key-slow"`, "client-a", payment); r.status != http.StatusConflict {
		t.Errorf("duplicate in flight: %d; want 409", r.status)
	}
	wg.Wait()
	// hold_ms: the handler finishes after its client gave up; the retry
	// gets that response replayed, not a second run.
	// The client gives up once the handler has started.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/payments?hold_ms=400", strings.NewReader(payment))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", `"svc-key-hold"`)
	req.Header.Set("X-Api-Key", "client-a")
	req.Header.Set("Content-Type", "application/json")
	gaveUp := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gaveUp <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); executions(t, base) < 6; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the hold_ms handler did not start within 10s")
		}
	}
	cancel()
	if err := <-gaveUp; err == nil {
		t.Errorf("hold_ms=400, client gone once the handler started: got a response; want the client to have given up")
	}
	var held reply
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		held = do(t, http.MethodPost, base+"/payments?hold_ms=400", `"svc-key-hold"`, "client-a", payment)
		if held.status != http.StatusConflict || time.Now().After(deadline) {
			break
		}
	}
	if held.status != http.StatusCreated || held.header.Get("Idempotency-Replayed") != "true" {
		t.Errorf("retry after the client timed out: %d replayed=%q; want the first 201 replayed (a client that goes away decides nothing)", held.status, held.header.Get("Idempotency-Replayed"))
	}
	if n := executions(t, base); n != 6 {
		t.Errorf("executions = %d; want 6 (first, client-b, two fail=1, slow, held)", n)
	}
}

// CheckRoutes mounts routes (an example's net/http routes) on a loopback
// server as the example runs it (its http.Server, default limits), over the
// memory store with the examples' engine options, and runs [Check] against
// it.
func CheckRoutes(t *testing.T, routes func(*core.Engine, *service.Payments) http.Handler) {
	t.Helper()
	Check(t, ServeRoutes(t, service.DefaultLimits, routes))
}

// ServeRoutes serves routes on a loopback port, as service.Main does, with
// limits, until the test ends, and returns the base URL.
func ServeRoutes(t *testing.T, limits service.Limits, routes func(*core.Engine, *service.Payments) http.Handler) string {
	t.Helper()
	store := memstore.New()
	engine := core.New(store, append(service.EngineOptions(slog.New(slog.DiscardHandler)), core.WithMaxBodyBytes(limits.MaxBody))...)
	t.Cleanup(func() { // after the server has closed, as service.Setup's close function
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		engine.Shutdown(ctx)
		store.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := limits.Server(ln.Addr().String(), routes(engine, &service.Payments{}))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestLimits are the limits of the limit checks: short deadlines, so that a
// slow client is cut off quickly; the rest as the defaults.
func TestLimits(t *testing.T) service.Limits {
	t.Helper()
	f, err := service.ParseArgs([]string{"-read-header-timeout=1s", "-read-timeout=2s", "-write-timeout=5s", "-idle-timeout=5s"})
	if err != nil {
		t.Fatal(err)
	}
	return f.Limits
}

// CheckRoutesLimits serves routes with [TestLimits] and runs [CheckLimits].
func CheckRoutesLimits(t *testing.T, routes func(*core.Engine, *service.Payments) http.Handler) {
	t.Helper()
	limits := TestLimits(t)
	CheckLimits(t, ServeRoutes(t, limits, routes), limits)
}

// CheckLimits checks, over raw loopback connections, that the server at
// base applies limits: a body sent at one byte a second is cut off within
// the read timeout (plus a generous margin), and a request with 60,000
// header fields is refused (431, or the connection closed), not served.
func CheckLimits(t *testing.T, base string, limits service.Limits) {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	t.Run("SlowBody", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		head := "POST /payments HTTP/1.1\r\nHost: example\r\nIdempotency-Key: \"slow-body\"\r\nX-Api-Key: client-a\r\n" +
			"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		done := make(chan struct{})
		defer close(done)
		go func() { // one body byte a second, until the server or the test ends it
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				if _, err := c.Write([]byte{' '}); err != nil {
					return
				}
				select {
				case <-tick.C:
				case <-done:
					return
				}
			}
		}()
		bound := limits.ReadTimeout + 8*time.Second // the body alone would take 100 s
		c.SetReadDeadline(start.Add(bound))
		_, err = io.Copy(io.Discard, c) // until the server closes the connection
		elapsed := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a body sent at 1 byte/s was still being read after %v; want the connection cut off within the read timeout (%v)", elapsed.Round(time.Millisecond), limits.ReadTimeout)
		}
		t.Logf("slow body cut off after %v (read timeout %v)", elapsed.Round(time.Millisecond), limits.ReadTimeout)
	})
	t.Run("HeaderBomb", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var b strings.Builder
		b.WriteString("GET /healthz HTTP/1.1\r\nHost: example\r\n")
		for i := 0; i < 60000; i++ {
			fmt.Fprintf(&b, "X-H%d: v\r\n", i)
		}
		b.WriteString("\r\n")
		go func() { io.WriteString(c, b.String()) }() // the server may stop reading early
		c.SetReadDeadline(time.Now().Add(limits.ReadTimeout + 8*time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("60,000 header fields: no answer within %v; want 431 or the connection closed", limits.ReadTimeout+8*time.Second)
			}
			t.Logf("60,000 header fields (%d bytes): connection closed (%v)", b.Len(), err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("60,000 header fields (%d bytes): %d; want 431 or the connection closed (the server's header limit)", b.Len(), resp.StatusCode)
		} else {
			t.Logf("60,000 header fields (%d bytes): %d", b.Len(), resp.StatusCode)
		}
	})
}
