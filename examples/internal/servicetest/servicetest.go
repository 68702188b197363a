// Package servicetest checks that an example service implements the
// example contract (the README's "Example services" section) over HTTP.
// Every example's test starts its routes on a loopback server and calls
// [Check].
package servicetest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	// A slow request and its duplicate: one runs, the other gets 409.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		do(t, http.MethodPost, base+"/payments?delay_ms=600", `"svc-key-slow"`, "client-a", payment)
	}()
	time.Sleep(200 * time.Millisecond)
	if r := do(t, http.MethodPost, base+"/payments?delay_ms=600", `"svc-key-slow"`, "client-a", payment); r.status != http.StatusConflict {
		t.Errorf("duplicate in flight: %d; want 409", r.status)
	}
	wg.Wait()
	// hold_ms: the handler finishes after its client gave up; the retry
	// gets that response replayed, not a second run.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/payments?hold_ms=400", strings.NewReader(payment))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", `"svc-key-hold"`)
	req.Header.Set("X-Api-Key", "client-a")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("hold_ms=400 with a 100 ms client timeout: got status %d; want the client to time out", resp.StatusCode)
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
// server over the memory store, with the examples' engine options, and
// runs [Check] against it.
func CheckRoutes(t *testing.T, routes func(*core.Engine, *service.Payments) http.Handler) {
	t.Helper()
	store := memstore.New()
	defer store.Close()
	engine := core.New(store, service.EngineOptions(slog.New(slog.DiscardHandler))...)
	srv := httptest.NewServer(routes(engine, &service.Payments{}))
	defer srv.Close()
	Check(t, srv.URL)
}
